"""The dashboard: a Starlette app whose ``lifespan`` owns the database engine, the Redis pool
(also arq's, to queue scans) and the secret box; routes are plain data."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from billing.catalogue import BUNDLED, load_catalogue
from ccbb.settings import Settings, get_settings
from store import credits as store_credits
from store.crypto import SecretBox
from store.db import make_engine, session_factory
from store.sessions import SESSION_DAYS
from web import (
    affiliate,
    affiliate_admin,
    affiliate_api,
    affiliate_stats,
    api,
    auth,
    billing,
    clickbank,
    confirmation,
    credits_api,
    demo_mail,
    i18n,
    monitoring_api,
    monitoring_page,
    password_reset,
    scans,
    site,
)
from web.body_limit import BodyLimit
from web.csrf import CsrfMiddleware
from web.headers import SecurityHeaders
from web.i18n import N_, _
from web.ins_store import InsStore
from web.reads import Reads
from web.sessions import SessionCookies
from web.signing import session_secret
from web.templating import render
from web.visit_counter import VisitCounter

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


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
        if user is None and not (path.startswith(PUBLIC_PATHS) or path in site.PUBLIC_PAGES):
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
    *confirmation.PUBLIC_PATHS,
    *password_reset.PUBLIC_PATHS,
    *demo_mail.PUBLIC_PATHS,
    *affiliate.PUBLIC_PATHS,
)


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON errors under /api/; elsewhere Starlette's plain ones."""
    if request.url.path.startswith("/api/"):
        return api.error_response(request, exc)
    if isinstance(exc, HTTPException):
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return error_page(request, exc.status_code, str(exc.detail), exc.headers)
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(request, 500, "")


_ERROR_TITLES = {
    404: (N_("Page not found"), N_("There is nothing at this address: check it, or start "
                                   "again from the dashboard.")),
    405: (N_("Not allowed"), N_("This address does not take that kind of request.")),
    500: (N_("Something went wrong on our side"), N_("The error is logged; try again in a "
                                                     "moment.")),
}  # fmt: skip


def error_page(
    request: Request, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error as a page of the app, with its navigation (never a traceback)."""
    title, text = _ERROR_TITLES.get(status, (detail or N_("Error"), ""))
    title, text = _(title), _(text) if text else text
    if status == 404 and detail and detail != "Not Found":
        text = f"{detail} {text}"
    try:
        return render(
            request, "error.html", {"title": title, "detail": text}, status, headers=headers
        )
    except Exception:  # the page itself broke: a plain answer still says what happened
        log.exception("the error page failed")
        return PlainTextResponse(title, status_code=status, headers=headers)


async def healthz(request: Request) -> Response:
    await request.app.state.redis.ping()
    return JSONResponse({"ok": True})


def proxy_headers(settings: Settings) -> list[Middleware]:
    """uvicorn's proxy-header handling, for CCBB_TRUSTED_PROXIES only (none by default): the
    client address of any other peer is the peer's, whatever X-Forwarded-For says."""
    trusted = [item.strip() for item in settings.trusted_proxies.split(",") if item.strip()]
    if not trusted:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)]


def create_app(settings: Settings | None = None, *, freeze_gc: bool = False) -> ASGIApp:
    """The dashboard. ``freeze_gc``: the process serves this app for the rest of its life
    (``ccbb web``, ``ccbb run``), so what its start made is frozen out of the garbage collector
    (``gc.freeze``); not for an app made in a process that goes on to make others (tests)."""
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
        ins_store = InsStore(settings.sqlalchemy_url, session_factory(engine))
        await ins_store.start()  # where ClickBank's notifications are kept: see web.ins_store
        app.state.ins_store = ins_store
        credit_writes = store_credits.Writes(settings.sqlalchemy_url)  # spends: store.credits
        await credit_writes.start()
        app.state.settings = settings
        app.state.catalogue = catalogue
        app.state.sessions = session_factory(engine)
        app.state.reads = reads
        app.state.credit_writes = credit_writes
        app.state.redis = redis
        app.state.box = SecretBox.from_settings(settings)
        app.state.api_rate = api.ApiRateLimit(redis_url, settings.api_rate)
        app.state.signing_secret = session_secret(settings)
        app.state.visits = VisitCounter(app.state.sessions, settings.affiliate_visit_flush_seconds)
        app.state.visits.start()
        if freeze_gc:
            # what exists once the app has started (modules, tables, templates, pools: ~170,000
            # objects) stays for the process's life: out of the collector's sight, a full
            # collection takes ~0.5 ms instead of ~200 ms (a pause that alone made the INS p99)
            gc.collect()
            gc.freeze()
        try:
            yield {}
        finally:
            await app.state.visits.stop()  # the referral visits gathered, before the engine goes
            await redis.aclose()
            await engine.dispose()
            await reads.close()
            await ins_store.close()
            await credit_writes.close()

    routes = [
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        *site.routes,  # before scans.routes: "/" is the home page, or the dashboard of a user
        *auth.routes,
        *scans.routes,
        *api.routes,
        *billing.routes,
        *credits_api.routes,
        *clickbank.routes,
        *confirmation.routes,
        *password_reset.routes,
        *demo_mail.routes,
        *monitoring_page.routes,
        *monitoring_api.routes,
        *affiliate.routes,
        *affiliate_stats.routes,
        *affiliate_api.routes,
        *affiliate_admin.routes,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
        middleware=[
            *proxy_headers(settings),
            Middleware(BodyLimit),  # before anything reads a body
            Middleware(
                SessionCookies,
                key=session_secret(settings).encode(),
                secure=settings.secure_cookies,
                max_age=SESSION_DAYS * 24 * 3600,
            ),
            Middleware(CsrfMiddleware),
            Middleware(AuthGate),
            Middleware(affiliate.ReferralLinks),
            Middleware(
                i18n.LocaleMiddleware,
                save_choice=auth.remember_locale,
                secure=settings.secure_cookies,
            ),
        ],
    )
    # outermost: the headers go on every response, Starlette's own 500 page included
    return SecurityHeaders(app, hsts=settings.secure_cookies)
