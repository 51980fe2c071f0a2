"""The affiliate program on the web: the referral link (``/r/REFID`` and ``/?ref=REFID``) and
the Affiliate page (join, your link)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from affiliates import commissions, messages, payout_dates, program, rules
from store import affiliates as store_aff
from store import payouts as store_pay
from store.models import User
from web import engine_messages
from web.i18n import N_, Translated, _
from web.templating import render

log = logging.getLogger(__name__)

UNIQUE_KEY = "ccbb:aff:uv:{}:{}"  # a Redis set of the day's visitor hashes, kept 2 days
LANDING_PAGE = "/"  # the public home page (the dashboard once logged in)


def referral_url(request: Request, ref_id: str) -> str:
    base = request.app.state.settings.public_url.rstrip("/")
    return f"{base}/?ref={ref_id}"


async def _land(request: Request, ref: str) -> Response:
    state = request.app.state
    now = datetime.now(UTC)
    current = request.scope.get("user")  # set by web.app.AuthGate, which runs before
    session_user = current.id if current is not None else None
    target = "/" if isinstance(session_user, int) else LANDING_PAGE
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    async with state.sessions() as session:
        affiliate = await program.active_affiliate(session, ref=ref)
        if affiliate is None or affiliate.id is None:
            return response  # unknown or revoked: land normally, count nothing
        ip = request.client.host if request.client else ""
        visitor = rules.visitor_hash(
            state.signing_secret, ip=ip, user_agent=request.headers.get("user-agent", ""),
            day=now.date(),
        )  # fmt: skip
        key = UNIQUE_KEY.format(affiliate.ref_id, now.date().isoformat())
        unique = bool(await state.redis.sadd(key, visitor))
        if unique:
            await state.redis.expire(key, 2 * 86400)
        await store_aff.count_visit(
            session, affiliate_id=affiliate.id, day=now.date(), unique=unique
        )
    earlier = rules.read_landing(state.signing_secret, request.cookies.get(rules.COOKIE))
    if earlier is not None and rules.within_window(earlier.landed_at, now):
        return response  # the first landing wins
    landing = rules.Landing(
        affiliate.ref_id, now, session_user if isinstance(session_user, int) else None
    )
    response.set_cookie(
        rules.COOKIE, rules.landing_cookie(state.signing_secret, landing),
        max_age=rules.COOKIE_MAX_AGE, httponly=True, samesite="lax",
        secure=state.settings.secure_cookies,
    )  # fmt: skip
    return response


async def referral_link(request: Request) -> Response:
    return await _land(request, str(request.path_params["ref"]))


class ReferralLinks:
    """``/?ref=REFID`` is the referral link too (inside the login gate, which lets ``/`` and
    ``/r/`` through and says who is logged in)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and b"ref=" in scope["query_string"]:
            request = Request(scope, receive)
            ref = request.query_params.get("ref")
            if ref:
                response = await _land(request, ref)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def attribute_signup(request: Request, user: User) -> None:
    """Called by the sign-up: the account goes to the affiliate whose link it came from."""
    state = request.app.state
    landing = rules.read_landing(state.signing_secret, request.cookies.get(rules.COOKIE))
    if landing is None:
        return
    async with state.sessions() as session:
        await program.attribute_signup(session, user=user, landing=landing, now=datetime.now(UTC))


async def affiliate_page(request: Request) -> Response:
    user = request.scope["user"]
    state = request.app.state
    async with state.sessions() as session:
        affiliate = await store_aff.get_by_user(session, user_id=user.id)
        entries = (
            await store_aff.commissions_of(session, affiliate_id=affiliate.id)
            if affiliate is not None and affiliate.id is not None
            else []
        )
        payouts, paid = [], Decimal("0.00")
        if affiliate is not None and affiliate.id is not None:
            payouts = await store_pay.payouts_of(session, affiliate_id=affiliate.id)
            paid = await store_pay.paid_of(session, affiliate_id=affiliate.id)
    if request.method == "GET":
        return _page(request, affiliate, entries=entries, payouts=payouts, paid=paid)
    if affiliate is not None:
        return _page(request, affiliate, message=_(messages.ALREADY_MEMBER))
    form = await request.form()
    values = {
        "paypal_email": str(form.get("paypal_email", "")).strip(),
        "website": str(form.get("website", "")).strip(),
    }
    errors = rules.join_problems(
        adult=form.get("adult") == "yes", accept_terms=form.get("accept_terms") == "yes",
        **values,
    )  # fmt: skip
    if errors:
        return _page(request, None, errors=errors, values=values, status_code=400)
    async with state.sessions() as session:
        try:
            affiliate = await program.join(session, user_id=user.id, **values)
        except program.AlreadyMember:
            affiliate = await store_aff.get_by_user(session, user_id=user.id)
    return _page(request, affiliate, message=_(messages.JOINED))


KIND_WORDS = Translated(
    {
        store_aff.SALE: N_("Sale"),
        store_aff.UPSELL: N_("Upsell"),
        store_aff.REBILL: N_("Renewal"),
        store_aff.REVERSAL: N_("Reversal"),
    }
)
REVERSED_BY = Translated(
    {"RFND": N_("Refund"), "CGBK": N_("Chargeback"), "INSF": N_("Payment returned")}
)


def commission_note(entry: store_aff.AffiliateCommission) -> str:
    """A commission's note (stored in English) in the page's language."""
    if entry.kind == store_aff.REVERSAL:
        kind, sep, receipt = entry.note.partition(" of ")
        if sep:
            words = REVERSED_BY.get(kind, kind)
            return _(messages.REVERSAL_NOTE).format(kind=words, receipt=receipt)
    return engine_messages.translate(entry.note)


def _page(
    request: Request,
    affiliate: store_aff.Affiliate | None,
    *,
    message: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    entries: list[store_aff.AffiliateCommission] | None = None,
    payouts: list[store_pay.PayoutView] | None = None,
    paid: Decimal = Decimal("0.00"),
) -> Response:
    settings = request.app.state.settings
    now = datetime.now(UTC)
    status_note = None
    if affiliate is not None and affiliate.status == store_aff.REFUSED:
        status_note = _(messages.REFUSED)
    elif affiliate is not None and affiliate.status == store_aff.REVOKED:
        status_note = _(messages.REVOKED)
    ctx = {
        "affiliate": affiliate,
        "link": referral_url(request, affiliate.ref_id) if affiliate else None,
        "status_note": status_note,
        "message": message,
        "errors": errors or {},
        "values": values or {},
        "entries": list(reversed(entries or [])),
        "balance": commissions.balance(entries or [], paid=paid, now=now),
        "payouts": payouts or [],  # every payout made, newest first
        "next_payout": payout_dates.next_payout_date(now.date(), settings.payout_country),
        "minimum": settings.payout_minimum,
        "kind_words": KIND_WORDS,
        "note": commission_note,
    }
    return render(request, "affiliate.html", ctx, status_code)


routes = [
    Route("/r/{ref}", referral_link),
    Route("/affiliate", affiliate_page, methods=["GET", "POST"]),
]
PUBLIC_PATHS = ("/r/",)
