"""Scans in the dashboard: the list with live progress, the New Scan form, cancel and re-run,
the report (summary, donut, tag audit, failed pages, detailed table) and its CSV export.

Every route that takes a scan id answers 404 unless the scan is the logged-in user's. The
detailed table is filtered, sorted and paginated in SQL on ``scan_product``/``scan_link``: one
row per product and Amazon link as written on the site, with the pages it is on."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ccbb import jobs
from scanner.classify import Status
from scanner.report import STATUS_LABELS, STATUS_ORDER
from store import credentials as store_credentials
from store import scans as store_scans
from store.models import (
    ACTIVE_STATES,
    LINK_TABLE,
    PAGE_TABLE,
    PRODUCT_TABLE,
    Scan,
    ScanState,
    table_of,
    utcnow,
)
from web import new_scan, settings_page
from web.charts import donut, percent
from web.settings_page import user_id
from web.templating import render

PER_PAGE = 50
DASHBOARD_LIMIT = 100
MAX_PAGES_LIMIT = 100_000
MAX_PREFIXES = 50
STATUS_COLORS = {
    STATUS_LABELS[Status.AVAILABLE]: "#16a34a",
    STATUS_LABELS[Status.REMOVED]: "#dc2626",
    STATUS_LABELS[Status.OUT_OF_STOCK]: "#d97706",
    STATUS_LABELS[Status.ERROR]: "#64748b",
}
ACTIVE = tuple(s.value for s in ACTIVE_STATES)
SCAN_TABLE = table_of(Scan)
_STATUS_VALUES = frozenset(s.value for s in Status)
P, L = PRODUCT_TABLE, LINK_TABLE

# the detailed table: sortable columns → SQL expressions (see _rows_query)
SORTS = ("name", "asin", "link", "status", "stock", "href", "pages")
CSV_HEADER = (
    "name", "asin", "marketplace", "product_link", "status", "stock", "amazon_link",
    "pages_count", "pages",
)  # fmt: skip


async def _own_scan(request: Request) -> Scan:
    """The scan of the URL, if it is the user's; else 404."""
    scan_id = request.path_params["scan_id"]
    async with request.app.state.sessions() as session:
        scan = await store_scans.get_scan(session, scan_id=scan_id, user_id=user_id(request))
    if scan is None:
        raise HTTPException(status_code=404, detail="No such scan.")
    return scan


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


def _percent_done(row: dict[str, Any]) -> int:
    if row["state"] == ScanState.DONE.value:
        return 100
    if row["state"] == ScanState.QUEUED.value:
        return 0
    whole = int(row["pages_discovered"]) + int(row["products_found"])
    part = int(row["pages_crawled"]) + int(row["products_checked"])
    if whole <= 0:
        return 0
    return max(
        0, min(99 if row["state"] == ScanState.RUNNING.value else 100, int(100 * part / whole))
    )


_PROGRESS_COLUMNS = (
    "phase", "pages_crawled", "pages_discovered", "products_found", "products_checked",
)  # fmt: skip


async def _progress_rows(request: Request) -> list[dict[str, Any]]:
    """The user's scans, newest first, as the dashboard shows them: one SQL query for the
    rows, one Redis round trip for the live counters of the active ones."""
    t = SCAN_TABLE
    stmt = (
        select(
            t.c.id,
            t.c.site,
            t.c.state,
            t.c.created_at,
            t.c.started_at,
            t.c.finished_at,
            t.c.error,
            *(t.c[c] for c in _PROGRESS_COLUMNS),
        )
        .where(t.c.user_id == user_id(request))
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(DASHBOARD_LIMIT)
    )
    async with request.app.state.sessions() as session:
        conn = await session.connection()
        rows = [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
    active = [r for r in rows if r["state"] in ACTIVE]
    if active:
        async with request.app.state.redis.pipeline(transaction=False) as pipe:
            for r in active:
                pipe.hgetall(jobs.PROGRESS_KEY.format(r["id"]))
            live = await pipe.execute()
        for r, fields in zip(active, live, strict=True):
            decoded = {
                (k.decode() if isinstance(k, bytes) else str(k)): (
                    v.decode() if isinstance(v, bytes) else str(v)
                )
                for k, v in (fields or {}).items()
            }
            for name in _PROGRESS_COLUMNS:
                if name in decoded:
                    r[name] = decoded[name] if name == "phase" else _int(decoded[name])
    now = utcnow()
    out = []
    for r in rows:
        out.append(
            {
                "id": r["id"],
                "site": r["site"],
                "state": r["state"],
                "phase": r["phase"] or "",
                "error": r["error"],
                "pages_crawled": int(r["pages_crawled"]),
                "pages_discovered": int(r["pages_discovered"]),
                "products_found": int(r["products_found"]),
                "products_checked": int(r["products_checked"]),
                "elapsed": _elapsed(r["started_at"], r["finished_at"], now),
                "created_at": r["created_at"].strftime("%Y-%m-%d %H:%M UTC"),
                "percent": _percent_done(r),
                "active": r["state"] in ACTIVE,
            }
        )
    return out


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


async def dashboard(request: Request, error: str | None = None, status: int = 200) -> Response:
    rows = await _progress_rows(request)
    message = "Scan queued." if request.query_params.get("queued") else None
    if request.query_params.get("cancelled"):
        message = "Scan cancelled."
    ctx = {"scans": rows, "message": message, "error": error}
    return render(request, "dashboard.html", ctx, status)


async def progress_json(request: Request) -> Response:
    return JSONResponse(await _progress_rows(request))


async def cancel(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    if scan.state in ACTIVE:
        async with request.app.state.sessions() as session:
            await store_scans.cancel_scan(session, scan_id=scan.id)
        await jobs.request_cancel(request.app.state.redis, scan.id)
    return RedirectResponse("/?cancelled=1", status_code=303)


async def rerun(request: Request) -> Response:
    scan = await _own_scan(request)
    async with request.app.state.sessions() as session:
        credential = await store_credentials.get_credential(
            session, credential_id=scan.credential_id, user_id=user_id(request)
        )
        if credential is None:
            return await dashboard(
                request,
                error="The Amazon credentials of this scan were deleted: start a New Scan.",
                status=400,
            )
        new = await store_scans.create_scan(
            session,
            user_id=user_id(request),
            site=scan.site,
            marketplace=scan.marketplace,
            partner_tag=scan.partner_tag,
            options=dict(scan.options or {}),
            credential_id=credential.id,
        )
    await jobs.enqueue_scan(request.app.state.redis, new)
    return RedirectResponse("/?queued=1", status_code=303)


# ---- report ---------------------------------------------------------------------------------


class TableQuery:
    """The detailed table's filters, sort and page, read from the query string."""

    def __init__(self, request: Request) -> None:
        q = request.query_params
        self.asin = q.get("asin", "").strip().upper()[:16]
        status = q.get("status", "").strip()
        self.status = status if status in {s.value for s in Status} else ""
        sort = q.get("sort", "")
        self.sort = sort if sort in SORTS else ""
        self.dir = "desc" if q.get("dir") == "desc" else "asc"
        try:
            self.page = max(1, int(q.get("page", "1")))
        except ValueError:
            self.page = 1

    def params(self, **changes: Any) -> str:
        values = {
            "asin": self.asin,
            "status": self.status,
            "sort": self.sort,
            "dir": self.dir,
            "page": self.page,
        } | changes
        if values["dir"] == "asc":
            values.pop("dir")
        if values["page"] == 1:
            values.pop("page")
        return urlencode({k: v for k, v in values.items() if v})


def _rows_query(scan_id: int, tq: TableQuery) -> tuple[Select[Any], Select[Any]]:
    """(rows, count): one row per product × Amazon link as on the site."""
    join = P.outerjoin(
        L,
        and_(L.c.scan_id == P.c.scan_id, L.c.marketplace == P.c.marketplace, L.c.asin == P.c.asin),
    )
    pages = func.count(func.distinct(L.c.page)).label("pages_count")
    conds: list[ColumnElement[bool]] = [P.c.scan_id == scan_id]
    if tq.asin:
        conds.append(P.c.asin == tq.asin)
    if tq.status:
        conds.append(P.c.status == tq.status)
    base = (
        select(
            P.c.title,
            P.c.asin,
            P.c.marketplace,
            P.c.detail_page_url,
            P.c.status,
            P.c.availability,
            L.c.href,
            pages,
        )
        .select_from(join)
        .where(*conds)
        .group_by(
            P.c.id,
            P.c.title,
            P.c.asin,
            P.c.marketplace,
            P.c.detail_page_url,
            P.c.status,
            P.c.availability,
            L.c.href,
        )
    )
    keys: dict[str, Any] = {
        "name": func.coalesce(P.c.title, ""),
        "asin": P.c.asin,
        "link": func.coalesce(P.c.detail_page_url, ""),
        "status": P.c.status,
        "stock": func.coalesce(P.c.availability, ""),
        "href": func.coalesce(L.c.href, ""),
        "pages": pages,
    }
    order: list[Any] = []
    if tq.sort:
        key = keys[tq.sort]
        order.append(key.desc() if tq.dir == "desc" else key.asc())
    order += [P.c.asin.asc(), P.c.marketplace.asc(), func.coalesce(L.c.href, "").asc()]
    rows = base.order_by(*order)
    count = select(func.count()).select_from(base.subquery())
    return rows, count


async def _pages_of(
    conn: Any, scan_id: int, rows: Sequence[Any]
) -> dict[tuple[str, str, str], list[str]]:
    """The pages each (marketplace, ASIN, href) of ``rows`` is on, sorted."""
    asins = sorted({r.asin for r in rows})
    out: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    if not asins:
        return {}
    stmt = select(L.c.marketplace, L.c.asin, L.c.href, L.c.page).where(
        L.c.scan_id == scan_id, L.c.asin.in_(asins)
    )
    for marketplace, asin, href, page in (await conn.execute(stmt)).all():
        out[(marketplace, asin, href)].add(page)
    return {k: sorted(v) for k, v in out.items()}


def _row_dict(r: Any, pages: list[str]) -> dict[str, Any]:
    status = r.status
    label = STATUS_LABELS[Status(status)] if status in _STATUS_VALUES else status
    return {
        "name": r.title or "",
        "asin": r.asin,
        "marketplace": r.marketplace,
        "link": _web_url(r.detail_page_url) or f"https://{r.marketplace}/dp/{r.asin}",
        "status": status,
        "status_label": label,
        "stock": r.availability or "",
        "href": r.href or "",
        "pages_count": int(r.pages_count),
        "pages": pages,
    }


def _web_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) address (never ``javascript:`` in a link), else None."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


async def report(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    tq = TableQuery(request)
    rows_q, count_q = _rows_query(scan.id, tq)
    async with request.app.state.sessions() as session:
        conn = await session.connection()
        total_rows = int((await conn.execute(count_q)).scalar_one())
        pages_total = max(1, math.ceil(total_rows / PER_PAGE))
        page = min(tq.page, pages_total)
        tq.page = page
        found = (await conn.execute(rows_q.limit(PER_PAGE).offset((page - 1) * PER_PAGE))).all()
        on = await _pages_of(conn, scan.id, found)
        failed = (
            await conn.execute(
                select(PAGE_TABLE.c.url, PAGE_TABLE.c.status, PAGE_TABLE.c.error)
                .where(PAGE_TABLE.c.scan_id == scan.id, PAGE_TABLE.c.ok.is_(False))
                .order_by(PAGE_TABLE.c.url)
                .limit(200)
            )
        ).all()
        audit_rows = (await conn.execute(_audit_query(scan))).all()
        by_status_live: dict[str, int] = {}
        if scan.summary is None:  # unfinished: count what was saved
            stmt = (
                select(P.c.status, func.count()).where(P.c.scan_id == scan.id).group_by(P.c.status)
            )
            by_status_live = {s: int(n) for s, n in (await conn.execute(stmt)).all()}
    rows = [_row_dict(r, on.get((r.marketplace, r.asin, r.href or ""), [])) for r in found]
    s = scan.summary or {
        "urls_scanned": scan.pages_crawled,
        "total_products": scan.products_checked,
        "total_links": 0,
        "unique_links": 0,
        "by_status": {st.value: by_status_live.get(st.value, 0) for st in STATUS_ORDER},
        "tag_audit": {"missing_tag": 0, "other_tag": 0},
    }
    counts = {STATUS_LABELS[st]: int(s["by_status"].get(st.value, 0)) for st in STATUS_ORDER}
    total_products = sum(counts.values())
    legend = [
        {
            "status": st.value,
            "label": STATUS_LABELS[st],
            "count": counts[STATUS_LABELS[st]],
            "percent": percent(counts[STATUS_LABELS[st]], total_products),
        }
        for st in STATUS_ORDER
    ]
    ctx = {
        "scan": scan,
        "summary": s,
        "chart": donut(counts, STATUS_COLORS),
        "legend": legend,
        "audit": [
            {"href": a.href, "tag": a.tag, "pages": int(a.pages), "links": int(a.links)}
            for a in audit_rows
        ],
        "failed": failed,
        "rows": rows,
        "tq": tq,
        "total_rows": total_rows,
        "pages_total": pages_total,
        "statuses": [(st.value, STATUS_LABELS[st]) for st in STATUS_ORDER],
        "sorts": SORTS,
        "export_query": tq.params(page=1, sort=tq.sort),
    }
    return render(request, "report.html", ctx)


def _audit_query(scan: Scan) -> Select[Any]:
    """Distinct links without the partner tag or with another one (most pages first)."""
    tag_bad: ColumnElement[bool] = L.c.tag.is_(None) | (L.c.tag == "")
    if scan.partner_tag:
        tag_bad = or_(tag_bad, L.c.tag != scan.partner_tag)
    return (
        select(
            L.c.href,
            L.c.tag,
            func.count(func.distinct(L.c.page)).label("pages"),
            func.count(func.distinct(L.c.occurrence)).label("links"),
        )
        .where(L.c.scan_id == scan.id, tag_bad)
        .group_by(L.c.href, L.c.tag)
        .order_by(func.count(func.distinct(L.c.occurrence)).desc(), L.c.href)
        .limit(100)
    )


async def export_csv(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    scan_id = scan.id
    tq = TableQuery(request)
    rows_q, _ = _rows_query(scan_id, tq)
    sessions = request.app.state.sessions

    async def body() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        yield _drain(buf)
        async with sessions() as session:
            conn = await session.connection()
            result = await conn.stream(rows_q.execution_options(yield_per=500))
            async for chunk in result.partitions(500):
                on = await _pages_of(conn, scan_id, chunk)
                for r in chunk:
                    d = _row_dict(r, on.get((r.marketplace, r.asin, r.href or ""), []))
                    writer.writerow(
                        (
                            d["name"],
                            d["asin"],
                            d["marketplace"],
                            d["link"],
                            d["status"],
                            d["stock"],
                            d["href"],
                            d["pages_count"],
                            " ".join(d["pages"]),
                        )
                    )
                yield _drain(buf)

    name = f"scan-{scan_id}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _drain(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text


routes = [
    Route("/", dashboard),
    *new_scan.routes,
    Route("/scans/progress.json", progress_json),
    Route("/scans/{scan_id:int}", report),
    Route("/scans/{scan_id:int}/export.csv", export_csv),
    Route("/scans/{scan_id:int}/cancel", cancel, methods=["POST"]),
    Route("/scans/{scan_id:int}/rerun", rerun, methods=["POST"]),
    *settings_page.routes,
]
