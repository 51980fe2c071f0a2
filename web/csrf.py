"""CSRF protection for every state-changing request of the dashboard (synchronizer token).

A POST, PUT, PATCH or DELETE passes only with the token of its own browser session (see
:meth:`web.sessions.BrowserSession.csrf_token`), sent as the form field ``csrftoken`` or the
``X-CSRFToken`` header. Pre-login forms (login, sign-up) have a session too (a pre-session), so
there is no "no cookie, no check" case, and nothing in the request (a bearer header, a content
type) skips the check. The only exemptions are :data:`EXEMPT_PREFIXES`: the JSON API, which
authenticates by bearer token only and never reads a cookie (the route-table test in
``tests/security/test_csrf.py`` holds every unsafe route to one or the other).

Why not asgi-csrf (used before): it skips requests that carry no cookie (login CSRF), skips
any request with an Authorization header, and raised on multipart bodies and non-UTF-8 cookie
headers or forms (500). ``starlette-csrf`` reads the token from a header only (plain HTML forms
cannot send one) and also skips cookie-less requests by design. This middleware is small: it
buffers the body (bounded by :class:`web.body_limit.BodyLimit`, which runs first), takes the
token from it with Starlette's own form parser, and replays the body to the application."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.i18n import N_, in_language, of_request
from web.sessions import browser

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# bearer-only (never cookie-authenticated: see web.app.AuthGate), and the webhooks other services
# post (no cookie, no form: they prove themselves their own way — ClickBank's notifications
# decrypt with the vendor's secret key, see web.clickbank.ins_endpoint)
EXEMPT_PREFIXES: tuple[str, ...] = ("/api/", "/clickbank/ins")
FIELD = "csrftoken"
HEADER = "x-csrftoken"

# the messages, in the language of the browser that sent the form (web.i18n.of_request)
REFUSED = N_(
    "This form could not be accepted: it was not sent from this site's own page, or the page "
    "is older than your last login or logout. Go back, reload the page, and send it again."
)
UNREADABLE = N_("The form could not be read. Reload the page and send it again.")


def is_exempt(path: str) -> bool:
    return path.startswith(EXEMPT_PREFIXES)


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then what the server sends (a disconnect)."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _form_token(scope: Scope, body: bytes) -> str | None:
    """The ``csrftoken`` field of a urlencoded or multipart body (None if absent)."""
    content_type = Request(scope).headers.get("content-type", "").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=1000)
        return next((value for name, value in pairs if name == FIELD), None)
    if content_type.startswith("multipart/form-data"):
        form = await Request(scope, replay(body, _no_more)).form(max_files=20, max_fields=1000)
        try:
            value = form.get(FIELD)
            return value if isinstance(value, str) else None
        finally:
            await form.close()
    return None


async def _no_more() -> Message:
    return {"type": "http.disconnect"}


class CsrfMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        expected = browser(scope).csrf_token()
        body = await read_body(receive)
        sent = Request(scope).headers.get(HEADER)
        if sent is None:
            try:
                sent = await _form_token(scope, body)
            except (MultiPartException, FormParserError, ValueError):
                answer = in_language(of_request(scope), UNREADABLE)
                await PlainTextResponse(answer, status_code=400)(scope, receive, send)
                return
        if (
            expected is None
            or sent is None
            or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())
        ):
            answer = in_language(of_request(scope), REFUSED)
            await PlainTextResponse(answer, status_code=403)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)
