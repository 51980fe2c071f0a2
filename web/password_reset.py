"""Forgotten passwords: a mail with a signed link valid one hour and usable once (it names
the password it replaces: once changed, the link is dead), and the same answer whether the
address has an account or not."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from notify import messages
from notify.email import Mail, mail_enabled, queue_mail
from store import sessions as store_sessions
from store import users as store_users
from store.models import User
from web import auth, i18n
from web.i18n import N_, _
from web.signing import sign, unsign
from web.templating import render

PURPOSE = "reset password"
VALID_FOR = 3600  # seconds

# user-facing strings (one place, translated when shown)
SENT = N_(
    "If %(email)s has an account, a mail with a link to choose a new password is on its way. "
    "The link works once, within one hour."
)
NO_MAIL = N_("This server sends no e-mail: ask its administrator to reset your password.")
BAD_LINK = N_("This link is not valid any more (used, or older than one hour): ask for a new one.")
DONE = N_("Password changed: log in with the new one.")


def reset_link(settings: object, user: User) -> str:
    token = sign(settings, PURPOSE, {"u": user.id, "p": auth.pw_stamp(user)})  # type: ignore[arg-type]
    return f"{settings.public_url.rstrip('/')}/password/reset?t={token}"  # type: ignore[attr-defined]


async def forgot(request: Request) -> Response:
    state = request.app.state
    if request.method == "GET":
        return render(request, "password_forgot.html", {"mail": mail_enabled(state.settings)})
    form = await request.form()
    email = store_users.normalize_email(str(form.get("email", "")))
    if not mail_enabled(state.settings):
        return render(request, "password_forgot.html", {"error": _(NO_MAIL)}, 400)
    async with state.sessions() as session:
        user = await store_users.get_user_by_email(session, email=email)
    if user is not None:
        with i18n.speaking(user.locale or i18n.current()):  # the account's language
            parts = messages.password_reset(reset_link(state.settings, user))
        # one mail per password: asking twice sends the same link once
        key = f"reset:{user.id}:{auth.pw_stamp(user)}"
        await queue_mail(
            state.sessions,
            state.redis,
            Mail(key, user.email, parts.subject, parts.text, parts.html),
        )
    # the same page either way: nobody learns which addresses have accounts
    return render(
        request, "password_forgot.html", {"message": _(SENT) % {"email": email}, "mail": True}
    )


async def _user_of(request: Request, token: str) -> User | None:
    data = unsign(request.app.state.settings, PURPOSE, token, VALID_FOR)
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    async with request.app.state.sessions() as session:
        user = await store_users.get_user(session, user_id=data["u"])
    if user is None or data.get("p") != auth.pw_stamp(user):
        return None  # used already (the password changed) or for a deleted account
    return user


async def reset(request: Request) -> Response:
    if request.method == "GET":
        token = request.query_params.get("t", "")
        if await _user_of(request, token) is None:
            return render(request, "password_reset.html", {"error": _(BAD_LINK)}, 400)
        return render(request, "password_reset.html", {"token": token})
    form = await request.form()
    token = str(form.get("t", ""))
    user = await _user_of(request, token)
    if user is None:
        return render(request, "password_reset.html", {"error": _(BAD_LINK)}, 400)
    new = str(form.get("password", ""))
    if problem := auth.password_problem(new):
        return render(
            request, "password_reset.html", {"token": token, "errors": {"password": problem}}, 400
        )
    async with request.app.state.sessions() as session:
        fresh = await session.get(User, user.id)
        assert fresh is not None
        fresh.password_hash = auth.hash_password(new)
        session.add(fresh)
        await session.commit()
    async with request.app.state.sessions() as session:  # every session of the account ends
        await store_sessions.delete_user_sessions(session, user_id=user.id or 0)
    auth.forget_user(request.app.state, user.id or 0)  # this process forgets them now
    return RedirectResponse("/login?reset=1", status_code=303)


routes = [
    Route("/password/forgot", forgot, methods=["GET", "POST"]),
    Route("/password/reset", reset, methods=["GET", "POST"]),
]
PUBLIC_PATHS = ("/password/",)
