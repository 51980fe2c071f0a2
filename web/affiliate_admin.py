"""The operator's page of the affiliate program (``/admin/affiliates``): every member with their
referrals and self-referrals flagged, the flagged self-referrals in detail, and the decisions of
``ccbb affiliates refuse|revoke|block|reinstate`` as buttons.

Operators are the accounts with ``is_admin`` (``ccbb user create --admin``). Anyone else gets
the 404 page, the same as for an address that does not exist: the page does not even admit to
being there. The decisions are POST forms, checked by the CSRF middleware like every form; the
member is named by REF ID in the path and looked up by it (an operator may act on any member —
that is the job; there is nothing of another user's to reach by changing the id)."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from affiliates import rules
from store import affiliates as store_aff
from web.i18n import N_, gettext
from web.templating import render

log = logging.getLogger(__name__)

ACTIONS = {
    "refuse": store_aff.REFUSED,
    "revoke": store_aff.REVOKED,
    "block": store_aff.BLOCKED,
    "reinstate": store_aff.ACTIVE,
}
DONE = {
    store_aff.REFUSED: N_("%(ref)s is refused: the link counts nothing and earns nothing."),
    store_aff.REVOKED: N_("%(ref)s is revoked: no commission from now on."),
    store_aff.BLOCKED: N_("%(ref)s is blocked: no commission, and the balance is not paid."),
    store_aff.ACTIVE: N_("%(ref)s is active again."),
}
UNKNOWN_ACTION = N_("Choose refuse, revoke, block or reinstate.")
MAX_REASON = 500


def _operator(request: Request) -> None:
    user = request.scope.get("user")
    if user is None or not user.is_admin:
        raise HTTPException(status_code=404)


async def admin_page(request: Request) -> Response:
    _operator(request)
    status = request.query_params.get("status")
    status = status if status in store_aff.STATUSES else None
    async with request.app.state.sessions() as session:
        members = await store_aff.list_members(session, status=status)
        flagged = await store_aff.flagged_referrals(session)
    done = request.query_params.get("done", "")
    ref = rules.normalize_ref(request.query_params.get("ref", ""))
    message = gettext(DONE[done]) % {"ref": ref} if done in DONE and ref else None
    ctx = {
        "members": members,
        "flagged": flagged,
        "statuses": store_aff.STATUSES,
        "status": status,
        "message": message,
    }
    return render(request, "admin_affiliates.html", ctx)


async def set_status(request: Request) -> Response:
    _operator(request)
    ref_id = rules.normalize_ref(str(request.path_params["ref"]))
    form = await request.form()
    action = str(form.get("action", ""))
    if action not in ACTIONS:
        raise HTTPException(status_code=400, detail=gettext(UNKNOWN_ACTION))
    if ref_id is None:
        raise HTTPException(status_code=404)
    reason = str(form.get("reason", "")).strip()[:MAX_REASON]
    async with request.app.state.sessions() as session:
        found = await store_aff.set_status(
            session, ref_id=ref_id, status=ACTIONS[action], reason=reason
        )
    if found is None:
        raise HTTPException(status_code=404)
    operator = request.scope["user"]
    log.info("operator %s: affiliate %s is now %s (%s)", operator.id, ref_id, found.status, reason)
    return RedirectResponse(f"/admin/affiliates?done={found.status}&ref={ref_id}", status_code=303)


routes = [
    Route("/admin/affiliates", admin_page),
    Route("/admin/affiliates/{ref}/status", set_status, methods=["POST"]),
]
