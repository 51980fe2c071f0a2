"""Accounts: sign up, log in, log out, change password. argon2id hashes, signed HttpOnly
SameSite session cookies, CSRF on every form (asgi-csrf), login attempts throttled per account
and per IP in Redis, and errors that never tell which e-mails exist."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from billing import messages
from ccbb import jobs
from store import credits as store_credits
from store import scans as store_scans
from store import users as store_users
from store.models import User, table_of
from web import affiliate
from web.templating import render

hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# hashed once so that an unknown e-mail costs the same time as a wrong password
_DUMMY_HASH = hasher.hash("not a password of anyone")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
USER_TABLE = table_of(User)
# the user and their credits balance (the header shows it) in one primary-key read
_USER_BY_ID = (
    select(USER_TABLE, store_credits.ACCOUNT.c.balance.label("credits_balance"))
    .select_from(
        USER_TABLE.outerjoin(
            store_credits.ACCOUNT, store_credits.ACCOUNT.c.user_id == USER_TABLE.c.id
        )
    )
    .where(USER_TABLE.c.id == bindparam("user_id"))
)
ACCOUNT_LIMIT, IP_LIMIT, WINDOW = 5, 30, 15 * 60  # failures allowed per 15 minutes


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    return None


async def current_user(request: Request) -> User | None:
    user_id = request.session.get("user_id")
    if not isinstance(user_id, int):
        return None
    found = await _user(request, user_id)
    if found is None or request.session.get("pw") != _pw_stamp(found[0]):
        request.session.clear()  # deleted user, or password changed elsewhere
        return None
    request.scope["credits"] = found[1]  # the header's balance (base.html)
    return found[0]


# Each process keeps the users it saw for USER_CACHE_SECONDS: a burst of requests (a page and
# its assets, a script) reads its user once. Short, because a password changed (or an account
# deleted) through another web process must end the other sessions quickly: within these
# seconds; through this process, at once. (15,000 dashboards polling every 15 s mostly miss it:
# the reads are cheap, see web.reads.)
USER_CACHE_SECONDS = 5.0
USER_CACHE_MAX = 50_000


# what the cache holds per user id: until when, the user, their credits balance
_Cached = tuple[float, User, int]


def _user_cache(request: Request) -> dict[int, _Cached]:
    return _cache_of(request.app.state)


def _cache_of(state: Any) -> dict[int, _Cached]:
    cache: dict[int, _Cached] | None = getattr(state, "user_cache", None)
    if cache is None:
        cache = state.user_cache = {}
    return cache


def forget_user(state: Any, user_id: int) -> None:
    """Drop the user from this process's cache (their balance or password changed)."""
    _cache_of(state).pop(user_id, None)


async def _user(request: Request, user_id: int) -> tuple[User, int] | None:
    """The user and their credits balance (cached USER_CACHE_SECONDS)."""
    cache = _user_cache(request)
    now = time.monotonic()
    hit = cache.get(user_id)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]

    found = await request.app.state.reads.rows(_USER_BY_ID, {"user_id": user_id})
    if not found:
        cache.pop(user_id, None)
        return None
    values = dict(found[0])
    balance = int(values.pop("credits_balance") or 0)
    user = User(**values)
    if len(cache) >= USER_CACHE_MAX:
        for key in [k for k, (until, *_) in cache.items() if until <= now]:
            del cache[key]
        if len(cache) >= USER_CACHE_MAX:
            cache.clear()
    cache[user_id] = (now + USER_CACHE_SECONDS, user, balance)
    return user, balance


def _pw_stamp(user: User) -> str:
    """Changes when the password does: sessions made with the old one end."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _login(request: Request, user: User) -> None:
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["pw"] = _pw_stamp(user)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _throttled(request: Request, email: str) -> bool:
    redis = request.app.state.redis
    account = f"ccbb:login:acct:{hashlib.sha256(email.encode()).hexdigest()}"
    ip = f"ccbb:login:ip:{_client_ip(request)}"
    counts = [int(await redis.get(account) or 0), int(await redis.get(ip) or 0)]
    return counts[0] >= ACCOUNT_LIMIT or counts[1] >= IP_LIMIT


async def _record_failure(request: Request, email: str) -> None:
    redis = request.app.state.redis
    for key in (
        f"ccbb:login:acct:{hashlib.sha256(email.encode()).hexdigest()}",
        f"ccbb:login:ip:{_client_ip(request)}",
    ):
        if await redis.incr(key) == 1:  # the window starts with the first failure
            await redis.expire(key, WINDOW)


async def login(request: Request) -> Response:
    if request.method == "GET":
        message = "Your account was deleted." if request.query_params.get("deleted") else None
        ctx = {"next": request.query_params.get("next", "/"), "message": message}
        return render(request, "login.html", ctx)
    form = await request.form()
    email = store_users.normalize_email(str(form.get("email", "")))
    password = str(form.get("password", ""))
    nxt = str(form.get("next", "/"))
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    if await _throttled(request, email):
        error = "Too many attempts. Wait 15 minutes, then try again."
        return render(request, "login.html", {"email": email, "next": nxt, "error": error}, 429)
    async with request.app.state.sessions() as session:
        user = await store_users.get_user_by_email(session, email=email)
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        await _record_failure(request, email)
        return render(request, "login.html", {"email": email, "next": nxt,
                      "error": "Wrong e-mail or password."}, 400)  # fmt: skip
    await request.app.state.redis.delete(
        f"ccbb:login:acct:{hashlib.sha256(email.encode()).hexdigest()}"
    )
    _login(request, user)
    return RedirectResponse(nxt, status_code=303)


async def signup(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "signup.html")
    form = await request.form()
    email = store_users.normalize_email(str(form.get("email", "")))
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if not EMAIL_RE.match(email):
        errors["email"] = "Enter an e-mail address such as you@example.com."
    if problem := password_problem(password):
        errors["password"] = problem
    if not errors:
        try:
            async with request.app.state.sessions() as session:
                user = await store_users.create_user(
                    session, email=email, password_hash=hash_password(password)
                )
        except IntegrityError:
            # same page as a success would lead to, without saying the account exists
            errors["email"] = "This address cannot be used. Log in if you already have an account."
        else:
            await _welcome_credits(request, user)
            await affiliate.attribute_signup(request, user)
            _login(request, user)
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
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def account(request: Request) -> Response:
    user = request.scope["user"]
    if request.method == "GET":
        return render(request, "account.html")
    form = await request.form()
    errors: dict[str, Any] = {}
    if not verify_password(user.password_hash, str(form.get("current", ""))):
        errors["current"] = "This is not your current password."
    new = str(form.get("new", ""))
    if problem := password_problem(new):
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
    _user_cache(request).pop(fresh.id or 0, None)  # this process ends the other sessions now
    _login(request, fresh)
    return render(request, "account.html", {"message": "Password changed."})


async def delete_account(request: Request) -> Response:
    """Deletes the account and all its data, once the password confirms it: running scans are
    cancelled first so that no worker writes for a user who is gone."""
    user = request.scope["user"]
    form = await request.form()
    if not verify_password(user.password_hash, str(form.get("password", ""))):
        errors = {"delete": "This is not your password: the account was not deleted."}
        return render(request, "account.html", {"errors": errors}, 400)
    state = request.app.state
    async with state.sessions() as session:
        active = await store_scans.list_active_ids(session, user_id=user.id)
    for scan_id in active:
        await jobs.cancel_scan(state.sessions, state.redis, scan_id)
    async with state.sessions() as session:
        await store_users.delete_user(session, user_id=user.id)
    _user_cache(request).pop(user.id, None)
    request.session.clear()
    return RedirectResponse("/login?deleted=1", status_code=303)


routes = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/signup", signup, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/account", account, methods=["GET", "POST"]),
    Route("/account/delete", delete_account, methods=["POST"]),
]
PUBLIC_PATHS = ("/login", "/signup", "/healthz", "/static/")
