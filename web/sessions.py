"""The browser's session cookie: a random id, nothing else (no user id, nothing to decode).

Every browser that sees a form gets an id (a *pre-session*, kept nowhere) so that even the login
and sign-up forms carry a CSRF token bound to it (:mod:`web.csrf`). Logging in replaces it with
a fresh id whose SHA-256 is a row of ``user_session`` (:mod:`store.sessions`): the session is
the row, and deleting the row ends it wherever the cookie was copied to.

:class:`SessionCookies` is the ASGI middleware that reads the cookie into
``scope["ccbb.session"]`` (a :class:`BrowserSession`) and writes it back when it changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "ccbb_session"
# the CSRF token, readable by the page's scripts (for an X-CSRFToken header); a copy only: the
# server checks what a form or header sends against its own HMAC of the session id
CSRF_COOKIE = "csrftoken"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
SCOPE_KEY = "ccbb.session"


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class BrowserSession:
    """This request's session id (``None``: the browser sent none, or a malformed one) and
    whether the response must set (or clear) the cookie."""

    __slots__ = ("_key", "changed", "id", "sent_token")

    def __init__(self, session_id: str | None, key: bytes, sent_token: str | None) -> None:
        self.id = session_id
        self._key = key
        self.changed = False
        self.sent_token = sent_token

    def ensure_id(self) -> str:
        """The session id, made now (a pre-session) if the browser had none."""
        if self.id is None:
            self.replace(new_session_id())
        assert self.id is not None
        return self.id

    def replace(self, session_id: str | None) -> None:
        self.id = session_id
        self.changed = True

    def csrf_token(self) -> str | None:
        """The CSRF token of this session: HMAC(server key, session id)."""
        if self.id is None:
            return None
        digest = hmac.new(self._key, b"csrf\0" + self.id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def browser(request: Request | Scope) -> BrowserSession:
    scope = request.scope if isinstance(request, Request) else request
    found: BrowserSession = scope[SCOPE_KEY]
    return found


class SessionCookies:
    """Reads ``ccbb_session`` (any bytes: the header is taken as Latin-1, as HTTP says) and
    sets or clears it, and the CSRF cookie, on the way out."""

    def __init__(
        self, app: ASGIApp, *, key: bytes, secure: bool, max_age: int = 14 * 24 * 3600
    ) -> None:
        self.app = app
        self.key = key
        self.secure = secure
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = b"; ".join(v for k, v in scope["headers"] if k == b"cookie").decode("latin-1")
        cookies = cookie_parser(raw) if raw else {}
        sid = cookies.get(COOKIE, "")
        state = BrowserSession(
            sid if _ID_RE.fullmatch(sid) else None, self.key, cookies.get(CSRF_COOKIE)
        )
        scope[SCOPE_KEY] = state

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = state.csrf_token()
                if state.changed or token != state.sent_token:
                    headers = MutableHeaders(scope=message)
                    if state.changed:
                        headers.append("set-cookie", self._cookie(COOKIE, state.id, http_only=True))
                    headers.append("set-cookie", self._cookie(CSRF_COOKIE, token, http_only=False))
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    def _cookie(self, name: str, value: str | None, *, http_only: bool) -> str:
        cookie: SimpleCookie = SimpleCookie()
        cookie[name] = value or ""
        morsel = cookie[name]
        morsel["path"] = "/"
        morsel["samesite"] = "Lax"
        morsel["max-age"] = str(self.max_age if value else 0)
        morsel["httponly"] = http_only
        morsel["secure"] = self.secure
        return morsel.OutputString()
