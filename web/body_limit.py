"""Request bodies are capped before anything reads them (authentication included): a body
declared larger than its route's limit is refused at once with 413, and a streamed one
(chunked, or lying about its length) is cut off as soon as it passes the limit, so a request
holds at most the limit in memory whatever it sends.

Every form and JSON body of the app is a few kilobytes; :data:`ROUTE_LIMITS` lists the routes
that need more (none yet)."""

from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.i18n import DEFAULT, N_, in_language, of_request

DEFAULT_LIMIT = 64 * 1024
ROUTE_LIMITS: dict[str, int] = {}  # exact path → its limit in bytes

TOO_LARGE = N_("The request is too large: at most %(kb)s KB may be sent here.")


def limit_for(path: str) -> int:
    return ROUTE_LIMITS.get(path, DEFAULT_LIMIT)


class BodyTooLarge(Exception):
    """Raised by the wrapped ``receive`` once a body passes its limit."""


def too_large(path: str, limit: int, locale: str = DEFAULT) -> Response:
    """The refusal: JSON in English under /api/, else plain text in ``locale``."""
    if path.startswith("/api/"):
        message = TOO_LARGE % {"kb": limit // 1024}
        return JSONResponse({"error": "too_large", "message": message}, status_code=413)
    message = in_language(locale, TOO_LARGE) % {"kb": limit // 1024}
    return PlainTextResponse(message, status_code=413, headers={"Connection": "close"})


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = limit_for(path)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit or declared < 0:
                    await too_large(path, limit, of_request(scope))(scope, receive, send)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if seen - len(message.get("body", b"")) > limit:  # said so already
                        return {"type": "http.disconnect"}
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # a response under way (a download whose disconnect listener read the body) is
            # cut short: the server closes the connection
            if not started:
                await too_large(path, limit, of_request(scope))(scope, receive, send)
