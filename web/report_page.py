"""A scan's report page (summary, donut, tag audit, failed pages, detailed table) and its CSV
export. Each route reads: parse the query string (:mod:`web.table`), call the store
(:mod:`store.report_query`), render. A scan id of another user is 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ccbb import jobs
from scanner.classify import Status
from scanner.report import STATUS_LABELS, STATUS_ORDER, csv_filename, iter_csv
from store import report_query
from store import scans as store_scans
from store.models import ACTIVE_STATES, Scan, ScanState, utcnow
from store.report_table import SORTS, Row
from web import changes as web_changes
from web import fields, first_run
from web.charts import STATUS_COLORS, donut, percent
from web.i18n import N_, _, gettext, number, share, state_word, status_word
from web.settings_page import user_id
from web.table import link
from web.table.ordering import get_column_controls, get_ordering
from web.table.pagination import get_page_controls, get_page_number
from web.table.search import get_filters
from web.templating import render, templates

PER_PAGE = 50
URL_SHOWN = 80  # characters of a long URL the tables show (the link keeps all of it)
ACTIVE = tuple(s.value for s in ACTIVE_STATES)
EXPORTABLE = (ScanState.DONE.value, ScanState.CANCELLED.value)
REFRESH_SECONDS = 15
_LABELS = {s.value: STATUS_LABELS[s] for s in STATUS_ORDER}
# (id, label, sortable) of each grain's columns
COLUMNS = {
    "product": [
        ("name", N_("Name"), True), ("asin", "ASIN", True), ("link", N_("Product link"), True),
        ("status", N_("Status"), True), ("stock", N_("Stock or reason"), True),
        ("links", N_("Links"), True), ("pages", N_("Pages"), True),
    ],
    "link": [
        ("name", N_("Name"), True), ("asin", "ASIN", True), ("link", N_("Product link"), True),
        ("status", N_("Status"), True), ("stock", N_("Stock or reason"), True),
        ("href", N_("Amazon link as on your site"), True), ("pages", N_("Pages"), True),
    ],
}  # fmt: skip


def short_url(url: str | None, limit: int = URL_SHOWN) -> str:
    """``url`` as a table shows it: at most ``limit`` characters, the middle cut out."""
    if not url or len(url) <= limit:
        return url or ""
    tail = min(24, limit // 3)
    return f"{url[: limit - tail - 1]}…{url[-tail:]}"


templates.env.filters["short_url"] = short_url


def web_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) address (never ``javascript:`` in a link), else None."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


async def own_scan(request: Request) -> Scan:
    """The scan of the URL, if it is the user's; else 404."""
    async with request.app.state.sessions() as session:
        scan = await store_scans.get_scan(
            session, scan_id=fields.path_id(request, "scan_id"), user_id=user_id(request)
        )
    if scan is None:
        raise HTTPException(status_code=404, detail=gettext("No such scan."))
    return scan


def table_query(request: Request) -> tuple[report_query.TableQuery, dict[str, str]]:
    """The table's query and its values for links, from the query string."""
    params = request.query_params
    filters = get_filters(params)
    ordering = get_ordering(params, SORTS)
    query = report_query.TableQuery(
        grain=filters.grain,
        status=filters.status,
        asin=filters.asin,
        name=filters.name,
        page=filters.page,
        sort=ordering.sort,
        descending=ordering.descending,
        page_number=get_page_number(params),
        per_page=PER_PAGE,
    )
    return query, filters.values() | ordering.values()


def _row_view(r: Row) -> dict[str, Any]:
    return {
        "name": r.title or "",
        "asin": r.asin,
        "marketplace": r.marketplace,
        "link": web_url(r.detail_page_url) or f"https://{r.marketplace}/dp/{r.asin}",
        "status": r.status,
        "status_label": status_word(r.status),
        "stock": r.availability or "",
        "reason": r.error or "",
        "href": r.href or "",
        "href_link": web_url(r.href),
        "links_count": r.links_count,
        "pages_count": r.pages_count,
        "pages": r.pages,
    }


def _figures(scan: Scan, made: dict[str, Any] | None, live: dict[str, Any]) -> dict[str, Any]:
    """The summary's figures. A finished scan: its summary. One that did not finish: what it
    saved, with its live counters, and no link counts (they are made at the end): never a
    figure that contradicts another."""
    if scan.summary is not None:
        return {**scan.summary, "final": True}
    saved = made or {"by_status": {}}
    by_status = {s.value: int(saved["by_status"].get(s.value, 0)) for s in STATUS_ORDER}
    found = max(int(live.get("products_found", scan.products_found)), sum(by_status.values()))
    by_status[Status.NOT_CHECKED.value] += found - sum(by_status.values())
    return {
        "urls_scanned": int(live.get("pages_crawled", scan.pages_crawled)),
        "total_products": found,
        "total_links": None,
        "unique_links": None,
        "by_status": by_status,
        "tag_audit": None,
        "final": False,
    }


async def report(request: Request) -> Response:
    scan = await own_scan(request)
    assert scan.id is not None
    if scan.state == ScanState.DONE.value:
        await first_run.mark(request, user_id(request), "report")
    query, values = table_query(request)
    active = scan.state in ACTIVE
    async with request.app.state.sessions() as session:
        page = await report_query.table_page(session, scan_id=scan.id, query=query)
        found = await report_query.findings(
            session, scan_id=scan.id, finished=scan.summary is not None
        )
        changes = await web_changes.load_block(session, scan.id, utcnow().year)
    live = {}
    if active:
        live = (await jobs.read_progress(request.app.state.redis, [scan.id])).get(scan.id, {})
    figures = _figures(scan, found.summary, live)
    counts = {status_word(s): figures["by_status"].get(s.value, 0) for s in STATUS_ORDER}
    total_products = sum(counts.values())
    last = report_query.last_page(page.total, PER_PAGE)
    values["page"] = str(page.page_number)
    ctx = {
        "scan": scan,
        "active": active,
        "refresh": REFRESH_SECONDS if active else None,
        "figures": figures,
        "chart": donut(
            counts,
            [STATUS_COLORS[_LABELS[s.value]] for s in STATUS_ORDER],  # by status, any language
            title=_("Products by status"),
            units=(_("product"), _("products")),
            legend=share,
            number=number,
        ),
        "statuses": [
            {
                "value": s.value,
                "label": status_word(s),
                "count": figures["by_status"].get(s.value, 0),
                "percent": percent(figures["by_status"].get(s.value, 0), total_products),
            }
            for s in STATUS_ORDER
        ],
        "audit": found.audit,
        "failed": found.failed,
        "failed_total": found.failed_total,
        "rows": [_row_view(r) for r in page.rows],
        "grain": query.grain,
        "filters": query,
        "filtered": query.text_filtered or bool(query.status),
        "total_rows": page.total,
        "columns": get_column_controls(
            values,
            [(key, _(label), sortable) for key, label, sortable in COLUMNS[query.grain]],
            get_ordering(values, SORTS),
        ),
        "pages": get_page_controls(values, page.page_number, last),
        "per_product": link(values, per="product", page=1),
        "per_link": link(values, per="link", page=1),
        "exportable": scan.state in EXPORTABLE,
        "export_query": link(values, page=1).split("#")[0],
        "sort": query.sort,
        "descending": query.descending,
        "changes": changes,
    }
    return render(request, "report.html", ctx)


async def export_csv(request: Request) -> Response:
    """The scan's CSV (the shape of ``ccbb scan --format csv``, with the page's filters),
    streamed in constant memory; once the scan is done."""
    scan = await own_scan(request)
    if scan.state not in EXPORTABLE:
        return render(
            request,
            "error.html",
            {
                "title": gettext("Not ready yet"),
                "error": gettext("The scan is %(state)s: its export is ready when it is done.")
                % {"state": state_word(scan.state)},
            },
            status_code=409,
        )
    query, _ = table_query(request)
    return csv_response(request, scan, query)


def csv_response(request: Request, scan: Scan, query: report_query.TableQuery) -> Response:
    """The CSV download of ``scan`` (also the API's)."""
    assert scan.id is not None
    scan_id = scan.id
    sessions = request.app.state.sessions

    async def rows() -> AsyncIterator[str]:
        async with sessions() as session:
            found = report_query.export_rows(session, scan_id=scan_id, query=query)
            batch: list[Any] = []
            async for row in found:
                batch.append(row)
                if len(batch) >= report_query.EXPORT_CHUNK:
                    yield "".join(iter_csv(batch, header=False))
                    batch.clear()
            yield "".join(iter_csv(batch, header=False))

    async def body() -> AsyncIterator[str]:
        yield "".join(iter_csv([]))  # the header
        async for chunk in rows():
            if chunk:
                yield chunk

    name = csv_filename(scan.site, scan.finished_at or scan.created_at)
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


routes = [
    Route("/scans/{scan_id:int}", report),
    Route("/scans/{scan_id:int}/export.csv", export_csv),
]
