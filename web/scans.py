"""Scans in the dashboard: the list with live progress, cancel, re-run and delete; the New
Scan form (:mod:`web.new_scan`) and the report (:mod:`web.report_page`) are routed here too.

Every route that takes a scan id answers 404 unless the scan is the logged-in user's."""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ccbb import jobs
from store import credentials as store_credentials
from store import scan_list
from store import scans as store_scans
from store.models import ACTIVE_STATES, ScanState, utcnow
from web import confirmation, first_run, new_scan, report_page, settings_page
from web.auth import forget_user
from web.i18n import _
from web.report_page import own_scan
from web.settings_page import user_id
from web.table.pagination import get_page_number
from web.templating import render

DASHBOARD_LIMIT = 100  # scans per dashboard page
ACTIVE = tuple(s.value for s in ACTIVE_STATES)
assert scan_list.LIVE_COLUMNS == jobs.LIVE_FIELDS


# ---- dashboard ------------------------------------------------------------------------------


def _elapsed(started: datetime | None, finished: datetime | None, now: datetime) -> str:
    if started is None:
        return "—"
    seconds = max(0, int(((finished or now) - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@lru_cache(maxsize=50_000)
def _span(started: datetime | None, finished: datetime) -> str:
    return _elapsed(started, finished, finished)


@lru_cache(maxsize=50_000)
def _created_text(created: datetime) -> str:
    return created.strftime("%Y-%m-%d %H:%M UTC")


def _percent_done(state: str, crawled: int, discovered: int, found: int, checked: int) -> int:
    if state == ScanState.DONE.value:
        return 100
    if state == ScanState.QUEUED.value:
        return 0
    whole = int(discovered) + int(found)
    part = int(crawled) + int(checked)
    if whole <= 0:
        return 0
    return max(0, min(99 if state == ScanState.RUNNING.value else 100, int(100 * part / whole)))


def _page_param(request: Request) -> int:
    return get_page_number(request.query_params)


async def _progress_rows(request: Request, page: int = 1) -> list[dict[str, Any]]:
    """A page of the user's scans, newest first, as the dashboard shows them: one SQL query
    for the rows, one Redis round trip for the live counters of the active ones."""
    rows = await scan_list.scan_page(
        request.app.state.reads,
        user_id=user_id(request),
        limit=DASHBOARD_LIMIT,
        offset=(page - 1) * DASHBOARD_LIMIT,
    )
    running = [r["id"] for r in rows if r["state"] in ACTIVE]
    live = await jobs.read_progress(request.app.state.redis, running) if running else {}
    now = utcnow()
    out = []
    for r in rows:
        counters = {name: r[name] for name in jobs.LIVE_FIELDS} | live.get(r["id"], {})
        phase, crawled, discovered, found, checked = (counters[n] for n in jobs.LIVE_FIELDS)
        state = r["state"]
        out.append(
            {
                "id": r["id"],
                "site": r["site"],
                "state": state,
                "phase": phase or "",
                "error": r["error"],
                "pages_crawled": int(crawled),
                "pages_discovered": int(discovered),
                "products_found": int(found),
                "products_checked": int(checked),
                "elapsed": (
                    _span(r["started_at"], r["finished_at"])  # settled: the same every poll
                    if r["finished_at"] is not None
                    else _elapsed(r["started_at"], None, now)
                ),
                "created_at": _created_text(r["created_at"]),
                "percent": _percent_done(state, crawled, discovered, found, checked),
                "active": state in ACTIVE,
            }
        )
    return out


async def dashboard(
    request: Request,
    error: str | None = None,
    status: int = 200,
    error_link: dict[str, str] | None = None,
) -> Response:
    """The user's scans, DASHBOARD_LIMIT per page (``?page=2``: the next older ones)."""

    total = await scan_list.count_scans(request.app.state.reads, user_id=user_id(request))
    pages_total = max(1, math.ceil(total / DASHBOARD_LIMIT))
    page = min(_page_param(request), pages_total)
    rows = await _progress_rows(request, page)
    message = _("Scan queued.") if request.query_params.get("queued") else None
    if request.query_params.get("cancelled"):
        message = _("Scan cancelled.")
    if request.query_params.get("deleted"):
        message = _("Scan deleted, with everything it found.")
    first = (page - 1) * DASHBOARD_LIMIT + 1
    ctx = {
        "scans": rows,
        "message": message,
        "error": error,
        "error_link": error_link,
        "page": page,
        "pages_total": pages_total,
        "total": total,
        "first": first,
        "last": first + len(rows) - 1,
        "guide": await first_run.steps(request, user_id(request)),
    }
    return render(request, "dashboard.html", ctx, status)


async def progress_json(request: Request) -> Response:
    """The live rows of a dashboard page (``?page=N``, as the page itself)."""
    return JSONResponse(await _progress_rows(request, _page_param(request)))


async def cancel(request: Request) -> Response:
    scan = await own_scan(request)
    assert scan.id is not None
    if scan.state in ACTIVE:
        await jobs.cancel_scan(request.app.state.sessions, request.app.state.redis, scan.id)
        forget_user(request.app.state, user_id(request))  # a refund changes the header's balance
    return RedirectResponse("/?cancelled=1", status_code=303)


async def rerun(request: Request) -> Response:
    scan = await own_scan(request)
    async with request.app.state.sessions() as session:
        credential = await store_credentials.get_credential(
            session, credential_id=scan.credential_id, user_id=user_id(request)
        )
        if credential is None:
            return await dashboard(
                request,
                error=_("The Amazon credentials of this scan were deleted: start a New Scan."),
                status=400,
            )
    if problem := new_scan.stored_problem(scan.site, scan.partner_tag or ""):
        return await dashboard(request, error=problem, status=400)
    again = new_scan.ScanRequest(
        site=scan.site,
        marketplace=scan.marketplace,
        partner_tag=scan.partner_tag or "",
        options=dict(scan.options or {}),
        saved=credential,
    )
    try:
        await new_scan.queue_scan(request.app.state, user_id=user_id(request), req=again)
    except new_scan.TooManyActiveScans as exc:
        return await dashboard(request, error=str(exc), status=409)
    except new_scan.NoCredits as exc:
        return await dashboard(
            request, error=str(exc), status=402, error_link=new_scan.BILLING_LINK
        )
    except confirmation.EmailNotConfirmed as exc:
        return await dashboard(request, error=str(exc), status=403)
    return RedirectResponse("/?queued=1", status_code=303)


async def confirm_delete(request: Request) -> Response:
    """Asks before deleting (a page of its own: no script needed)."""
    scan = await own_scan(request)
    return render(request, "delete_scan.html", {"scan": scan, "active": scan.state in ACTIVE})


async def delete(request: Request) -> Response:
    """Deletes the scan and what it holds (a running one is cancelled first)."""
    scan = await own_scan(request)
    assert scan.id is not None
    await delete_scan(request, scan.id, scan.state)
    return RedirectResponse("/?deleted=1", status_code=303)


async def delete_scan(request: Request, scan_id: int, state: str) -> None:
    """Cancel (if active) and delete the user's scan ``scan_id``; its Redis keys go too."""
    state_obj = request.app.state
    if state in ACTIVE:
        await jobs.cancel_scan(state_obj.sessions, state_obj.redis, scan_id)
    async with state_obj.sessions() as session:
        await store_scans.delete_scan(session, scan_id=scan_id, user_id=user_id(request))
    await state_obj.redis.delete(jobs.PROGRESS_KEY.format(scan_id))


routes = [  # "/" is web.site.home: the dashboard for a logged-in user
    *new_scan.routes,
    Route("/scans/progress.json", progress_json),
    *report_page.routes,
    Route("/scans/{scan_id:int}/cancel", cancel, methods=["POST"]),
    Route("/scans/{scan_id:int}/rerun", rerun, methods=["POST"]),
    Route("/scans/{scan_id:int}/delete", confirm_delete, methods=["GET"]),
    Route("/scans/{scan_id:int}/delete", delete, methods=["POST"]),
    *settings_page.routes,
]
