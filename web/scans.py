"""Scans in the dashboard (placeholder until the dashboard issue lands its pages)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from web.templating import render


async def dashboard(request: Request) -> Response:
    return render(request, "dashboard.html", {"scans": []})


routes = [Route("/", dashboard)]
