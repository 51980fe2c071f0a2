"""Jinja2 templates of the dashboard (server-rendered; autoescaped; translated, see web.i18n)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from web import engine_messages, i18n
from web.sessions import browser

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
i18n.install(templates.env)
templates.env.filters["engine"] = engine_messages.translate  # the engine's sentences


def csrf_token(request: Request) -> str:
    """The CSRF token of the browser's session for this page's forms (a page with forms gives
    a browser without a session its pre-session: see web.sessions)."""
    state = browser(request)
    state.ensure_id()
    return state.csrf_token() or ""


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = getattr(request.app.state, "settings", None)
    ctx = {
        "user": request.scope.get("user"),
        "csrf_token": csrf_token(request),
        "credits_enabled": bool(settings and settings.credits_enabled),
        "credits": request.scope.get("credits"),
        # can log in, cannot scan until the address is confirmed: every page says so
        "email_unconfirmed": bool(request.scope.get("email_unconfirmed")),
        # the contact addresses every page gives
        "support_email": getattr(settings, "support_email", ""),
        "affiliates_email": getattr(settings, "affiliates_email", ""),
        **i18n.template_context(request),
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)
