"""Scans in the dashboard: the list with live progress, the New Scan form, cancel and re-run,
the report (summary, donut, tag audit, failed pages, detailed table) and its CSV export.

Every route that takes a scan id answers 404 unless the scan is the logged-in user's. The
detailed table has one row per product and Amazon link as written on the site, with the pages
it is on. For a scan that finished, it was made once at the end (:mod:`store.report_table`):
a page of it, in any order and with any status filter, is a slice of a precomputed order and
50 rows read by position. For a scan that did not finish (or finished before that table
existed) it is filtered, sorted and paginated in SQL on ``scan_product``/``scan_link``."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ccbb import jobs
from scanner.classify import Status
from scanner.report import STATUS_ORDER
from store import credentials as store_credentials
from store import report_table
from store import scans as store_scans
from store.models import (
    ACTIVE_STATES,
    AUDIT_TABLE,
    LINK_TABLE,
    ORDER_TABLE,
    PAGE_TABLE,
    PRODUCT_TABLE,
    ROW_TABLE,
    Scan,
    ScanState,
    table_of,
    utcnow,
)
from web import fields, first_run, new_scan, settings_page
from web.charts import donut, percent
from web.i18n import _, status_word
from web.settings_page import user_id
from web.templating import render, templates

PER_PAGE = 50
DASHBOARD_LIMIT = 100  # scans per dashboard page
CSV_CHUNK = 1000  # rows per read while exporting
URL_SHOWN = 80  # characters of a long URL the tables show (the link keeps all of it)
STATUS_COLORS = {  # by status; pages name the statuses in their language (web.i18n)
    Status.AVAILABLE: "#16a34a",
    Status.REMOVED: "#dc2626",
    Status.OUT_OF_STOCK: "#d97706",
    Status.ERROR: "#64748b",
}
ACTIVE = tuple(s.value for s in ACTIVE_STATES)
SCAN_TABLE = table_of(Scan)
P, L, R, ORD, A = PRODUCT_TABLE, LINK_TABLE, ROW_TABLE, ORDER_TABLE, AUDIT_TABLE

# the detailed table: sortable columns (see store.report_table.SORT_KEYS and _rows_query)
SORTS = report_table.SORTS
CSV_HEADER = (
    "name", "asin", "marketplace", "product_link", "status", "stock", "amazon_link",
    "pages_count", "pages",
)  # fmt: skip


def short_url(url: str | None, limit: int = URL_SHOWN) -> str:
    """``url`` as a table shows it: at most ``limit`` characters, the middle cut out."""
    if not url or len(url) <= limit:
        return url or ""
    tail = min(24, limit // 3)
    return f"{url[: limit - tail - 1]}…{url[-tail:]}"


templates.env.filters["short_url"] = short_url


async def _own_scan(request: Request) -> Scan:
    """The scan of the URL, if it is the user's; else 404."""
    scan_id = fields.path_id(request, "scan_id")
    async with request.app.state.sessions() as session:
        scan = await store_scans.get_scan(session, scan_id=scan_id, user_id=user_id(request))
    if scan is None:
        raise HTTPException(status_code=404, detail=_("No such scan."))
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


# built once: each poll only binds the user and the page
_PROGRESS_QUERY = (
    select(
        SCAN_TABLE.c.id,
        SCAN_TABLE.c.site,
        SCAN_TABLE.c.state,
        SCAN_TABLE.c.created_at,
        SCAN_TABLE.c.started_at,
        SCAN_TABLE.c.finished_at,
        SCAN_TABLE.c.error,
        *(SCAN_TABLE.c[c] for c in jobs.LIVE_FIELDS),
    )
    .where(SCAN_TABLE.c.user_id == bindparam("user_id"))
    .order_by(SCAN_TABLE.c.created_at.desc(), SCAN_TABLE.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_SCAN_COUNT = select(func.count()).where(SCAN_TABLE.c.user_id == bindparam("user_id"))


MAX_PAGE = 1_000_000  # a page number past every list (clamped to the last page anyway)


def page_number(raw: str) -> int:
    """``?page=`` as a number from 1 to MAX_PAGE (not a number: 1; a huge one: MAX_PAGE)."""
    if not (raw.isascii() and raw.isdigit()):
        return 1
    if len(raw) > 7:
        return MAX_PAGE
    return max(1, min(int(raw), MAX_PAGE))


def _page_param(request: Request) -> int:
    return page_number(request.query_params.get("page", "1"))


async def _progress_rows(request: Request, page: int = 1) -> list[dict[str, Any]]:
    """A page of the user's scans, newest first, as the dashboard shows them: one SQL query
    for the rows, one Redis round trip for the live counters of the active ones."""
    params = {
        "user_id": user_id(request),
        "limit": DASHBOARD_LIMIT,
        "offset": (page - 1) * DASHBOARD_LIMIT,
    }
    rows = await request.app.state.reads.rows(_PROGRESS_QUERY, params)
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


async def dashboard(request: Request, error: str | None = None, status: int = 200) -> Response:
    """The user's scans, DASHBOARD_LIMIT per page (``?page=2``: the next older ones)."""

    found = await request.app.state.reads.rows(_SCAN_COUNT, {"user_id": user_id(request)})
    total = int(next(iter(found[0].values())))
    pages_total = max(1, math.ceil(total / DASHBOARD_LIMIT))
    page = min(_page_param(request), pages_total)
    rows = await _progress_rows(request, page)
    message = _("Scan queued.") if request.query_params.get("queued") else None
    if request.query_params.get("cancelled"):
        message = _("Scan cancelled.")
    first = (page - 1) * DASHBOARD_LIMIT + 1
    ctx = {
        "scans": rows,
        "message": message,
        "error": error,
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
    scan = await _own_scan(request)
    assert scan.id is not None
    if scan.state in ACTIVE:
        await jobs.cancel_scan(request.app.state.sessions, request.app.state.redis, scan.id)
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
        self.page = page_number(q.get("page", "1"))

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
    columns = (
        P.c.title, P.c.asin, P.c.marketplace, P.c.detail_page_url, P.c.status, P.c.availability,
        L.c.href,
    )  # fmt: skip
    base = select(*columns, pages).select_from(join).where(*conds).group_by(P.c.id, *columns)
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
    label = status_word(status)
    return {
        "name": r.title or "",
        "asin": r.asin,
        "marketplace": r.marketplace,
        "link": _web_url(r.detail_page_url) or f"https://{r.marketplace}/dp/{r.asin}",
        "status": status,
        "status_label": label,
        "stock": r.availability or "",
        "href": r.href or "",
        "href_link": _web_url(r.href),
        "pages_count": int(r.pages_count),
        "pages": pages,
    }


def _web_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) address (never ``javascript:`` in a link), else None."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


# ---- the precomputed table (scans that finished) --------------------------------------------

_ROW_COLUMNS = (
    R.c.seq, R.c.marketplace, R.c.asin, R.c.status, R.c.title, R.c.availability,
    R.c.detail_page_url, R.c.href, R.c.pages_count, R.c.pages,
)  # fmt: skip


def _order_of(tq: TableQuery) -> tuple[str, bool]:
    """(sort, descending) of ``scan_order`` for the query: no sort is the default order, which
    is by ASIN."""
    if not tq.sort:
        return "asin", False
    return tq.sort, tq.dir == "desc"


def _order_slice(scan_id: int, tq: TableQuery, first: int, count: int) -> Select[Any]:
    """The order's row count and the ``seq`` of its rows ``first`` to ``first + count``."""
    sort, descending = _order_of(tq)
    return select(ORD.c.rows, func.substr(ORD.c.seqs, first * 4 + 1, count * 4)).where(
        ORD.c.scan_id == scan_id,
        ORD.c.sort == sort,
        ORD.c.descending == descending,
        ORD.c.status == tq.status,
    )


async def _rows_at(conn: AsyncConnection, scan_id: int, seqs: list[int]) -> list[Any]:
    """The rows at positions ``seqs``, in that order."""
    if not seqs:
        return []
    stmt = select(*_ROW_COLUMNS).where(R.c.scan_id == scan_id, R.c.seq.in_(seqs))
    by_seq = {r.seq: r for r in (await conn.execute(stmt)).all()}
    return [by_seq[s] for s in seqs]


async def _rows_of_asin(conn: AsyncConnection, scan_id: int, tq: TableQuery) -> list[Any]:
    """The rows of the ASIN filter (one product's links: a handful), in the table's order."""
    conds = [R.c.scan_id == scan_id, R.c.asin == tq.asin]
    if tq.status:
        conds.append(R.c.status == tq.status)
    rows = (await conn.execute(select(*_ROW_COLUMNS).where(*conds))).all()
    return report_table.sort_rows(rows, tq.sort, _order_of(tq)[1])


def _preview(r: Any) -> list[str]:
    return r.pages.split("\n") if r.pages else []


async def _table_page(
    conn: AsyncConnection, scan_id: int, tq: TableQuery
) -> tuple[int, list[dict[str, Any]]] | None:
    """(rows in all, the rows of page ``tq.page``, which it clamps) from the precomputed table;
    None if the scan has none."""
    found = (
        await conn.execute(_order_slice(scan_id, tq, (tq.page - 1) * PER_PAGE, PER_PAGE))
    ).first()
    if found is None:
        return None
    if tq.asin:
        rows = await _rows_of_asin(conn, scan_id, tq)
        total = len(rows)
        tq.page = min(tq.page, max(1, math.ceil(total / PER_PAGE)))
        shown = rows[(tq.page - 1) * PER_PAGE : tq.page * PER_PAGE]
    else:
        total, chunk = int(found[0]), bytes(found[1] or b"")
        last = max(1, math.ceil(total / PER_PAGE))
        if tq.page > last:
            tq.page = last
            stmt = _order_slice(scan_id, tq, (last - 1) * PER_PAGE, PER_PAGE)
            chunk = bytes((await conn.execute(stmt)).one()[1] or b"")
        shown = await _rows_at(conn, scan_id, report_table.unpack(chunk))
    return total, [_row_dict(r, _preview(r)) for r in shown]


async def _live_table_page(
    conn: AsyncConnection, scan_id: int, tq: TableQuery
) -> tuple[int, list[dict[str, Any]]]:
    """The same from the findings, in SQL (scans that did not finish)."""
    rows_q, count_q = _rows_query(scan_id, tq)
    total = int((await conn.execute(count_q)).scalar_one())
    tq.page = min(tq.page, max(1, math.ceil(total / PER_PAGE)))
    found = (await conn.execute(rows_q.limit(PER_PAGE).offset((tq.page - 1) * PER_PAGE))).all()
    on = await _pages_of(conn, scan_id, found)
    return total, [
        _row_dict(r, on.get((r.marketplace, r.asin, r.href or ""), [])[: report_table.PAGES_SHOWN])
        for r in found
    ]


async def report(request: Request) -> Response:
    scan = await _own_scan(request)
    assert scan.id is not None
    if scan.state == ScanState.DONE.value:
        await first_run.mark(request, user_id(request), "report")
    tq = TableQuery(request)
    async with request.app.state.sessions() as session:
        conn = await session.connection()
        table = await _table_page(conn, scan.id, tq)
        precomputed = table is not None
        if table is None:
            table = await _live_table_page(conn, scan.id, tq)
        total_rows, rows = table
        failed = (
            await conn.execute(
                select(PAGE_TABLE.c.url, PAGE_TABLE.c.status, PAGE_TABLE.c.error)
                .where(PAGE_TABLE.c.scan_id == scan.id, PAGE_TABLE.c.ok.is_(False))
                .order_by(PAGE_TABLE.c.url)
                .limit(200)
            )
        ).all()
        audit_q = _saved_audit_query(scan.id) if precomputed else _audit_query(scan)
        audit_rows = (await conn.execute(audit_q)).all()
        by_status_live: dict[str, int] = {}
        if scan.summary is None:  # unfinished: count what was saved
            stmt = (
                select(P.c.status, func.count()).where(P.c.scan_id == scan.id).group_by(P.c.status)
            )
            by_status_live = {s: int(n) for s, n in (await conn.execute(stmt)).all()}
    pages_total = max(1, math.ceil(total_rows / PER_PAGE))
    s = scan.summary or {
        "urls_scanned": scan.pages_crawled,
        "total_products": scan.products_checked,
        "total_links": 0,
        "unique_links": 0,
        "by_status": {st.value: by_status_live.get(st.value, 0) for st in STATUS_ORDER},
        "tag_audit": {"missing_tag": 0, "other_tag": 0},
    }
    counts = {status_word(st): int(s["by_status"].get(st.value, 0)) for st in STATUS_ORDER}
    total_products = sum(counts.values())
    legend = [
        {
            "status": st.value,
            "label": status_word(st),
            "count": counts[status_word(st)],
            "percent": percent(counts[status_word(st)], total_products),
        }
        for st in STATUS_ORDER
    ]
    ctx = {
        "scan": scan,
        "summary": s,
        "chart": donut(
            counts,
            [STATUS_COLORS[st] for st in STATUS_ORDER],
            title=_("Products by status"),
            units=(_("product"), _("products")),
        ),
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
        "statuses": [(st.value, status_word(st)) for st in STATUS_ORDER],
        "sorts": SORTS,
        "export_query": tq.params(page=1, sort=tq.sort),
    }
    return render(request, "report.html", ctx)


def _saved_audit_query(scan_id: int) -> Select[Any]:
    return (
        select(A.c.href, A.c.tag, A.c.pages, A.c.links)
        .where(A.c.scan_id == scan_id)
        .order_by(A.c.seq)
    )


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
        .limit(report_table.AUDIT_LIMIT)
    )


async def export_csv(request: Request) -> Response:
    """The detailed table as CSV: exactly the filtered rows, in the table's order, every page of
    each. Streamed CSV_CHUNK rows at a time, in constant memory."""
    scan = await _own_scan(request)
    assert scan.id is not None
    scan_id = scan.id
    tq = TableQuery(request)
    sessions = request.app.state.sessions

    async def body() -> AsyncIterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        yield _drain(buf)
        async with sessions() as session:
            conn = await session.connection()
            async for chunk in _export_chunks(conn, scan_id, tq):
                for d in chunk:
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


async def _export_chunks(
    conn: AsyncConnection, scan_id: int, tq: TableQuery
) -> AsyncIterator[list[dict[str, Any]]]:
    """The rows of the export, a chunk at a time, each with all its pages."""
    found = (await conn.execute(_order_slice(scan_id, tq, 0, 0))).first()
    if found is None:  # not precomputed: stream the live query
        rows_q, _ = _rows_query(scan_id, tq)
        result = await conn.stream(rows_q.execution_options(yield_per=CSV_CHUNK))
        async for part in result.partitions(CSV_CHUNK):
            on = await _pages_of(conn, scan_id, part)
            yield [_row_dict(r, on.get((r.marketplace, r.asin, r.href or ""), [])) for r in part]
        return
    if tq.asin:
        yield await _with_all_pages(conn, scan_id, await _rows_of_asin(conn, scan_id, tq))
        return
    total = int(found[0])
    for first in range(0, total, CSV_CHUNK):
        chunk = (await conn.execute(_order_slice(scan_id, tq, first, CSV_CHUNK))).one()[1]
        rows = await _rows_at(conn, scan_id, report_table.unpack(bytes(chunk or b"")))
        yield await _with_all_pages(conn, scan_id, rows)


async def _with_all_pages(
    conn: AsyncConnection, scan_id: int, rows: list[Any]
) -> list[dict[str, Any]]:
    """Rows with all their pages: the kept ones where that is all, else from ``scan_link``."""
    more = [r for r in rows if r.pages_count > report_table.PAGES_SHOWN]
    on = await _pages_of(conn, scan_id, more) if more else {}
    out = []
    for r in rows:
        pages = _preview(r)
        if r.pages_count > report_table.PAGES_SHOWN:
            pages = on[(r.marketplace, r.asin, r.href or "")]
        out.append(_row_dict(r, pages))
    return out


def _drain(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text


routes = [  # "/" is web.site.home: the dashboard for a logged-in user
    *new_scan.routes,
    Route("/scans/progress.json", progress_json),
    Route("/scans/{scan_id:int}", report),
    Route("/scans/{scan_id:int}/export.csv", export_csv),
    Route("/scans/{scan_id:int}/cancel", cancel, methods=["POST"]),
    Route("/scans/{scan_id:int}/rerun", rerun, methods=["POST"]),
    *settings_page.routes,
]
