"""E-mail address confirmation: the mail sent at sign-up (and again on request), the link's
page, and the rule that an unconfirmed account may log in but not scan.

Confirmation applies only when the product can send mail (``CCBB_SMTP_HOST`` set, as in
``ccbb run --demo``): without it nobody could ever confirm."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from notify import messages
from notify.email import Mail, mail_enabled, queue_mail
from store import mail as store_mail
from store import users as store_users
from web.i18n import N_, _
from web.signing import sign, unsign
from web.templating import render

PURPOSE = "confirm e-mail"
VALID_FOR = 7 * 24 * 3600  # seconds a confirmation link works
RESEND_EVERY = 60  # seconds: a second resend within this is the same mail (sent once)

# user-facing strings (one place; translated when shown, English in the JSON API)
NOT_CONFIRMED = N_(
    "Confirm your e-mail address first: we sent a link to %(email)s. No mail? Send it again "
    "from Confirm your address."
)
CONFIRMED = N_("Your e-mail address is confirmed: you can scan now.")
ALREADY = N_("Your e-mail address was already confirmed.")
BAD_LINK = N_("This confirmation link is not valid any more: log in and send yourself a new one.")
RESENT = N_("We sent the confirmation mail again to %(email)s: follow its link.")
TITLE = N_("Confirm your address")


class EmailNotConfirmed(Exception):
    """The user has not confirmed their e-mail address yet (and must, to scan)."""


def confirm_link(settings: Any, user_id: int, email: str) -> str:
    token = sign(settings, PURPOSE, {"u": user_id, "e": email})
    return f"{settings.public_url.rstrip('/')}/confirm?t={token}"


async def send_confirmation(state: Any, *, user_id: int, email: str, bucket: int = 0) -> bool:
    """Queue the confirmation mail (never sent inside the request: a job sends it).
    ``bucket`` tells resends apart; the same bucket is the same mail, queued once."""
    parts = messages.confirmation(confirm_link(state.settings, user_id, email))
    mail = Mail(f"confirm:{user_id}:{bucket}", email, parts.subject, parts.text, parts.html)
    return await queue_mail(state.sessions, state.redis, mail)


async def after_signup(state: Any, *, user_id: int, email: str) -> None:
    """A new account waits for its address to be confirmed (when mail can be sent)."""
    if not mail_enabled(state.settings):
        return
    async with state.sessions() as session:
        await store_mail.require_confirmation(session, user_id=user_id)
    await send_confirmation(state, user_id=user_id, email=email)


async def check_confirmed(state: Any, *, user_id: int) -> None:
    """Raises EmailNotConfirmed (its message says what to do) when the user may not scan."""
    async with state.sessions() as session:
        if not await store_mail.is_confirmed(session, user_id=user_id):
            user = await store_users.get_user(session, user_id=user_id)
            raise EmailNotConfirmed(_(NOT_CONFIRMED) % {"email": user.email if user else "you"})


async def is_confirmed(state: Any, *, user_id: int) -> bool:
    async with state.sessions() as session:
        return await store_mail.is_confirmed(session, user_id=user_id)


async def confirm(request: Request) -> Response:
    data = unsign(request.app.state.settings, PURPOSE, request.query_params.get("t", ""), VALID_FOR)
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return render(request, "message.html", {"title": _(TITLE), "error": _(BAD_LINK)}, 400)
    async with request.app.state.sessions() as session:
        changed = await store_mail.confirm(session, user_id=data["u"])
    text = _(CONFIRMED if changed else ALREADY)
    return render(request, "message.html", {"title": _(TITLE), "message": text})


async def resend(request: Request) -> Response:
    user = request.scope.get("user")
    if user is None:
        return RedirectResponse("/login?next=/confirm/resend", status_code=303)
    state = request.app.state
    if request.method == "GET":
        confirmed = await is_confirmed(state, user_id=user.id)
        return render(request, "confirm_resend.html", {"confirmed": confirmed, "email": user.email})
    if await is_confirmed(state, user_id=user.id):
        return RedirectResponse("/confirm/resend", status_code=303)
    bucket = int(time.time() // RESEND_EVERY)
    await send_confirmation(state, user_id=user.id, email=user.email, bucket=bucket)
    return render(
        request,
        "confirm_resend.html",
        {"confirmed": False, "email": user.email, "message": _(RESENT) % {"email": user.email}},
    )


routes = [
    Route("/confirm", confirm),
    Route("/confirm/resend", resend, methods=["GET", "POST"]),
]
PUBLIC_PATHS = ("/confirm",)  # /confirm/resend sends the logged-out to the login page
