"""Accounts: sign up, log in, log out (here or everywhere), change password. argon2id hashes,
server-side sessions behind an opaque HttpOnly SameSite cookie (:mod:`web.sessions`,
:mod:`store.sessions`), CSRF on every form (:mod:`web.csrf`), login attempts throttled in
Redis, and errors that never tell which e-mails exist."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from billing import messages
from ccbb import jobs
from store import credits as store_credits
from store import scans as store_scans
from store import sessions as store_sessions
from store import tokens as store_tokens
from store import users as store_users
from store.models import User, utcnow
from web import affiliate, confirmation, fields, i18n
from web.i18n import N_, _
from web.sessions import browser, new_session_id
from web.templating import render

hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# hashed once so that an unknown e-mail costs the same time as a wrong password
_DUMMY_HASH = hasher.hash("not a password of anyone")
MIN_PASSWORD = 10
# messages of the pages, translated when shown (web.i18n)
PASSWORD_CHANGED = N_("Password changed. Your other sessions are logged out.")
TOKENS_REVOKED = N_("API tokens revoked: %(count)s.")
LOGIN_NOTICES = {
    "deleted": N_("Your account was deleted."),
    "everywhere": N_("You are logged out on every device and browser."),
    "reset": N_("Password changed: log in with the new one."),
}
# login failures allowed per 15 minutes: per account and client address, per client address
PAIR_LIMIT, IP_LIMIT, WINDOW = 5, 30, 15 * 60
SIGNUP_LIMIT, SIGNUP_WINDOW = 10, 60 * 60  # sign-up attempts per client address per hour
TOO_MANY_LOGINS = N_("Too many attempts. Wait 15 minutes, then try again.")
TOO_MANY_SIGNUPS = N_("Too many sign-ups from your address. Wait an hour, then try again.")
BAD_EMAIL = N_("Enter an e-mail address such as you@example.com.")
EMAIL_UNUSABLE = N_("This address cannot be used. Log in if you already have an account.")
WRONG_LOGIN = N_("Wrong e-mail or password.")


def plausible_email(email: str) -> bool:
    """An address that could receive mail, by its syntax (email-validator; no DNS lookup)."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return _("Use at least %(count)d characters.") % {"count": MIN_PASSWORD}
    return None


async def current_user(request: Request) -> User | None:
    """The user whose session the cookie names, or None (no session, ended or expired)."""
    session_id = browser(request).id
    if session_id is None:
        return None
    id_hash = store_sessions.hash_session_id(session_id)
    cache = _user_cache(request)
    now = time.monotonic()
    hit = cache.get(id_hash)
    if hit is not None and hit[0] > now:
        request.scope["credits"] = hit[2]  # the header's balance (base.html)
        request.scope["email_unconfirmed"] = False  # only confirmed accounts are cached
        return hit[1]
    found = await request.app.state.reads.rows(store_sessions.USER_BY_SESSION, {"id_hash": id_hash})
    user = None
    balance = 0
    unconfirmed = False
    if found and found[0]["session_expires_at"] > utcnow():
        values = dict(found[0])
        values.pop("session_expires_at")
        balance = int(values.pop("credits_balance") or 0)
        pending = values.pop("email_pending_user") is not None
        unconfirmed = pending and values.pop("email_confirmed_at") is None
        values.pop("email_confirmed_at", None)
        user = User(**values)
    request.scope["credits"] = balance
    request.scope["email_unconfirmed"] = unconfirmed  # the banner of every page (base.html)
    if unconfirmed:
        # not cached: the banner must go the moment the link is followed, in every process
        # (unconfirmed accounts are few, and this read costs ~50 µs)
        return user
    if len(cache) >= USER_CACHE_MAX:
        for key in [k for k, (until, *_) in cache.items() if until <= now]:
            del cache[key]
        if len(cache) >= USER_CACHE_MAX:
            cache.clear()
    cache[id_hash] = (now + USER_CACHE_SECONDS, user, balance)
    return user


# Each process keeps the sessions it saw for USER_CACHE_SECONDS: a burst of requests (a page
# and its assets, a script) reads its session once. Short, because a session ended through
# another web process (logout, "log out everywhere", a password change, account deletion) must
# stop working quickly: within these seconds; through this process, at once. (15,000
# dashboards polling every 15 s mostly miss it: the reads are cheap, see web.reads.)
USER_CACHE_SECONDS = 5.0
USER_CACHE_MAX = 50_000


# what the cache holds per session: until when, its user (None: no such session), their balance
_Cached = tuple[float, User | None, int]


def _user_cache(request: Request) -> dict[str, _Cached]:
    return _cache_of(request.app.state)


def _cache_of(state: Any) -> dict[str, _Cached]:
    cache: dict[str, _Cached] | None = getattr(state, "user_cache", None)
    if cache is None:
        cache = state.user_cache = {}
    return cache


def _forget(request: Request, session_id: str | None) -> None:
    if session_id is not None:
        _user_cache(request).pop(store_sessions.hash_session_id(session_id), None)


def _forget_user(request: Request, user_id: int) -> None:
    """This process forgets every session of the user at once (others within seconds)."""
    forget_user(request.app.state, user_id)


def forget_user(state: Any, user_id: int) -> None:
    """Drop the user's sessions from this process's cache (their balance, password or sessions
    changed): the next request reads them again."""
    cache = _cache_of(state)
    for key in [k for k, (_t, u, _b) in cache.items() if u is not None and u.id == user_id]:
        del cache[key]


async def remember_locale(request: Request, user_id: int, locale: str) -> None:
    """The language the user switched to (``?lang=``), kept on the account."""
    async with request.app.state.sessions() as session:
        await store_users.set_locale(session, user_id=user_id, locale=locale)
    _forget_user(request, user_id)


async def _login(request: Request, user: User) -> None:
    """A new session (a fresh id: whatever id the browser had before is not reused)."""
    assert user.id is not None
    state = browser(request)
    old = state.id
    session_id = new_session_id()
    async with request.app.state.sessions() as session:
        if old is not None:
            await store_sessions.delete_session(session, session_id=old)
        await store_sessions.create_session(session, session_id=session_id, user_id=user.id)
    _forget(request, old)
    state.replace(session_id)


async def _end_session(request: Request) -> None:
    state = browser(request)
    if state.id is not None:
        async with request.app.state.sessions() as session:
            await store_sessions.delete_session(session, session_id=state.id)
        _forget(request, state.id)
    state.replace(None)


def pw_stamp(user: User) -> str:
    """Changes when the password does (a password reset link made for the old one stops
    working)."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _pair_key(request: Request, email: str) -> str:
    """Failures of one account from one address: the attacker's address is locked out of
    the account, its owner elsewhere is not."""
    account = hashlib.sha256(email.encode()).hexdigest()
    return f"ccbb:login:pair:{account}:{_client_ip(request)}"


async def _throttled(request: Request, email: str) -> bool:
    redis = request.app.state.redis
    pair, ip = _pair_key(request, email), f"ccbb:login:ip:{_client_ip(request)}"
    counts = [int(await redis.get(pair) or 0), int(await redis.get(ip) or 0)]
    return counts[0] >= PAIR_LIMIT or counts[1] >= IP_LIMIT


async def _count(request: Request, key: str, window: int) -> int:
    """One more in ``key``'s window (which starts with the first): the count so far."""
    redis = request.app.state.redis
    count = int(await redis.incr(key))
    if count == 1:
        await redis.expire(key, window)
    return count


async def _record_failure(request: Request, email: str) -> None:
    await _count(request, _pair_key(request, email), WINDOW)
    await _count(request, f"ccbb:login:ip:{_client_ip(request)}", WINDOW)


async def login(request: Request) -> Response:
    if request.method == "GET":
        message = next(
            (_(text) for key, text in LOGIN_NOTICES.items() if key in request.query_params), None
        )
        ctx = {"next": request.query_params.get("next", "/"), "message": message}
        return render(request, "login.html", ctx)
    form = await request.form()
    email = store_users.normalize_email(str(form.get("email", "")))
    password = str(form.get("password", ""))
    nxt = str(form.get("next", "/"))
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    if len(email) > fields.MAX_LENGTHS["email"] or len(password) > fields.MAX_LENGTHS["password"]:
        email, password = email[: fields.MAX_LENGTHS["email"]], ""  # cannot be anyone's
    if await _throttled(request, email):
        error = _(TOO_MANY_LOGINS)
        return render(request, "login.html", {"email": email, "next": nxt, "error": error}, 429)
    async with request.app.state.sessions() as session:
        user = await store_users.get_user_by_email(session, email=email)
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        await _record_failure(request, email)
        return render(request, "login.html", {"email": email, "next": nxt,
                      "error": _(WRONG_LOGIN)}, 400)  # fmt: skip
    await request.app.state.redis.delete(_pair_key(request, email))
    await _login(request, user)
    return RedirectResponse(nxt, status_code=303)


async def signup(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "signup.html")
    form = await request.form()
    email = store_users.normalize_email(str(form.get("email", "")))
    password = str(form.get("password", ""))
    if await _count(request, f"ccbb:signup:ip:{_client_ip(request)}", SIGNUP_WINDOW) > SIGNUP_LIMIT:
        ctx = {"email": email[: fields.MAX_LENGTHS["email"]], "error": _(TOO_MANY_SIGNUPS)}
        return render(request, "signup.html", ctx, 429)
    errors: dict[str, str] = fields.too_long({"email": email, "password": password})
    if "email" in errors:
        email = email[: fields.MAX_LENGTHS["email"]]
    elif not plausible_email(email):
        errors["email"] = _(BAD_EMAIL)
    if problem := password_problem(password):
        errors.setdefault("password", problem)
    if not errors:
        try:
            async with request.app.state.sessions() as session:
                user = await store_users.create_user(
                    session, email=email, password_hash=hash_password(password)
                )
        except IntegrityError:
            # same page as a success would lead to, without saying the account exists
            errors["email"] = _(EMAIL_UNUSABLE)
        else:
            await _welcome_credits(request, user)
            assert user.id is not None
            await confirmation.after_signup(request.app.state, user_id=user.id, email=user.email)
            if chosen := i18n.known(request.cookies.get(i18n.COOKIE)):  # chosen as a visitor
                await remember_locale(request, user.id or 0, chosen)
            await affiliate.attribute_signup(request, user)
            await _login(request, user)
            return RedirectResponse("/", status_code=303)
    return render(request, "signup.html", {"email": email, "errors": errors}, 400)


async def _welcome_credits(request: Request, user: User) -> None:
    """CCBB_SIGNUP_CREDITS for a new account (a trial; the demo gives some), once."""
    settings = request.app.state.settings
    if not settings.credits_enabled or settings.signup_credits <= 0 or user.id is None:
        return
    async with request.app.state.sessions() as session:
        await store_credits.grant(
            session, user_id=user.id, amount=settings.signup_credits, kind="grant",
            source="signup", comment=messages.SIGNUP_CREDITS,
            idempotency_key=f"signup:{user.public_id}",
        )  # fmt: skip


async def logout(request: Request) -> Response:
    await _end_session(request)
    return RedirectResponse("/login", status_code=303)


async def logout_everywhere(request: Request) -> Response:
    """Ends every session of the user, this one included (a copied cookie stops working)."""
    user = request.scope["user"]
    async with request.app.state.sessions() as session:
        await store_sessions.delete_user_sessions(session, user_id=user.id)
    _forget_user(request, user.id)
    browser(request).replace(None)
    return RedirectResponse("/login?everywhere=1", status_code=303)


async def account(request: Request) -> Response:
    user = request.scope["user"]
    if request.method == "GET":
        return render(request, "account.html")
    form = await request.form()
    errors: dict[str, Any] = {}
    if not verify_password(user.password_hash, str(form.get("current", ""))):
        errors["current"] = _("This is not your current password.")
    new = str(form.get("new", ""))
    if len(new) > fields.MAX_LENGTHS["new"]:
        errors["new"] = fields.too_long_message(fields.MAX_LENGTHS["new"])
    elif problem := password_problem(new):
        errors["new"] = problem
    if errors:
        return render(request, "account.html", {"errors": errors}, 400)
    async with request.app.state.sessions() as session:
        fresh = await session.get(User, user.id)
        assert fresh is not None
        fresh.password_hash = hash_password(new)
        session.add(fresh)
        await session.commit()
        await session.refresh(fresh)
    async with request.app.state.sessions() as session:
        # the other sessions end (this one goes on)
        await store_sessions.delete_user_sessions(
            session, user_id=user.id, except_session_id=browser(request).id
        )
        revoked = 0
        if form.get("revoke_tokens"):
            revoked = await store_tokens.revoke_all_tokens(session, user_id=user.id)
    _forget_user(request, user.id)
    await _login(request, fresh)
    message = _(PASSWORD_CHANGED)
    if form.get("revoke_tokens"):
        message += " " + _(TOKENS_REVOKED) % {"count": revoked}
    return render(request, "account.html", {"message": message})


async def delete_account(request: Request) -> Response:
    """Deletes the account and all its data, once the password confirms it: running scans are
    cancelled first so that no worker writes for a user who is gone."""
    user = request.scope["user"]
    form = await request.form()
    if not verify_password(user.password_hash, str(form.get("password", ""))):
        errors = {"delete": _("This is not your password: the account was not deleted.")}
        return render(request, "account.html", {"errors": errors}, 400)
    state = request.app.state
    async with state.sessions() as session:
        active = await store_scans.list_active_ids(session, user_id=user.id)
    for scan_id in active:
        await jobs.cancel_scan(state.sessions, state.redis, scan_id)
    async with state.sessions() as session:
        await store_users.delete_user(session, user_id=user.id)
    _forget_user(request, user.id)  # its sessions went with it (the foreign key cascades)
    browser(request).replace(None)
    return RedirectResponse("/login?deleted=1", status_code=303)


routes = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/signup", signup, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/logout/everywhere", logout_everywhere, methods=["POST"]),
    Route("/account", account, methods=["GET", "POST"]),
    Route("/account/delete", delete_account, methods=["POST"]),
]
PUBLIC_PATHS = ("/login", "/signup", "/healthz", "/static/")
