"""The dashboard: a Starlette app whose ``lifespan`` owns the database engine, the Redis pool
(also arq's, to queue scans) and the secret box; routes are plain data."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from asgi_csrf import asgi_csrf
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from billing.catalogue import BUNDLED, load_catalogue
from ccbb.settings import Settings, get_settings
from store.crypto import SecretBox
from store.db import make_engine, session_factory
from web import affiliate, api, auth, billing, clickbank, credits_api, scans
from web.reads import Reads

STATIC = Path(__file__).parent / "static"


def session_secret(settings: Settings) -> str:
    """Signs session cookies: derived from CCBB_SECRET_KEY, else a key kept in the data dir."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
        return hmac.new(key, b"ccbb session cookies", hashlib.sha256).hexdigest()
    path = settings.data_dir / "session.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


class AuthGate:
    """Puts the caller in ``scope["user"]``: the logged-in user on pages (else /login), the
    owner of the bearer token on the JSON API (else 401; its OpenAPI document is public)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        path = scope["path"]
        is_api = path.startswith("/api/")
        user = await (api.bearer_user(request) if is_api else auth.current_user(request))
        scope["user"] = user
        if is_api and user is not None:
            wait = await request.app.state.api_rate.wait(user.id)
            if wait is not None:
                await api.rate_limited(wait)(scope, receive, send)
                return
        if user is None and not path.startswith(PUBLIC_PATHS):
            response: Response
            if is_api:
                response = api.unauthenticated()
            else:
                response = RedirectResponse(f"/login?next={path}", status_code=303)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


PUBLIC_PATHS = (
    *auth.PUBLIC_PATHS,
    api.PREFIX + "/openapi.json",
    *credits_api.PUBLIC_PATHS,
    *clickbank.PUBLIC_PATHS,
    *affiliate.PUBLIC_PATHS,
)


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON errors under /api/; elsewhere Starlette's plain ones."""
    if request.url.path.startswith("/api/"):
        return api.error_response(request, exc)
    if isinstance(exc, HTTPException):
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse("Internal Server Error", status_code=500)


async def healthz(request: Request) -> Response:
    await request.app.state.redis.ping()
    return JSONResponse({"ok": True})


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    # the plans on sale, checked now: a wrong CCBB_PLANS_FILE stops the start with its mistakes
    catalogue = load_catalogue(settings.plans_file or BUNDLED)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        engine = make_engine(settings.sqlalchemy_url)
        reads = Reads(settings.sqlalchemy_url)  # the hottest reads: see web.reads
        redis_url = settings.redis_url or "redis://127.0.0.1:6379"
        redis = await create_pool(
            RedisSettings.from_dsn(redis_url),
            default_queue_name=settings.queue_name,
        )
        await reads.start()
        app.state.settings = settings
        app.state.catalogue = catalogue
        app.state.sessions = session_factory(engine)
        app.state.reads = reads
        app.state.redis = redis
        app.state.box = SecretBox.from_settings(settings)
        app.state.api_rate = api.ApiRateLimit(redis_url, settings.api_rate)
        app.state.signing_secret = session_secret(settings)
        try:
            yield {}
        finally:
            await redis.aclose()
            await engine.dispose()
            await reads.close()

    routes = [
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        *auth.routes,
        *scans.routes,
        *api.routes,
        *billing.routes,
        *credits_api.routes,
        *clickbank.routes,
        *affiliate.routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=session_secret(settings),
                session_cookie="ccbb_session",
                same_site="lax",
                https_only=settings.secure_cookies,
                max_age=14 * 24 * 3600,
            ),
            Middleware(affiliate.ReferralLinks),
            Middleware(AuthGate),
        ],
    )
    protected: ASGIApp = asgi_csrf(
        app,
        signing_secret=session_secret(settings),
        cookie_secure=settings.secure_cookies,
        # the JSON API authenticates with bearer tokens only, never cookies: no CSRF possible
        skip_if_scope=lambda scope: scope["path"].startswith(("/api/", *clickbank.CSRF_EXEMPT)),
    )
    return protected
