"""Reading a scan's report for the dashboard and the API: a page of the detailed table, the
tag audit, the failed pages and the CSV export rows (keyword-only functions on an
``AsyncSession``).

A scan that finished has its table made once (:mod:`store.report_table`): a page of it, in
any order and with a status filter, is a slice of a precomputed order and 50 rows read by
position; text filters (ASIN prefix, name or page substring) pick the matching rows in SQL and
keep the precomputed order. A scan that did not finish (or finished before that table existed)
has its table made on the fly from what was saved, by the same pure functions: both show the
same rows in the same order.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from scanner.crawl import FailedPage
from scanner.report import CSV_COLUMNS, summary
from scanner.scan import ScanReport
from store import report_table
from store.models import (
    AUDIT_TABLE,
    LINK_TABLE,
    ORDER_TABLE,
    PAGE_TABLE,
    PRODUCT_TABLE,
    ROW_TABLE,
)
from store.report_table import AuditLink, Row
from store.scans import load_report

R, ORD, L, P, A = ROW_TABLE, ORDER_TABLE, LINK_TABLE, PRODUCT_TABLE, AUDIT_TABLE
FAILED_SHOWN = 200
EXPORT_CHUNK = 1000  # rows per read while exporting
_ROW_COLUMNS = (
    R.c.seq, R.c.marketplace, R.c.asin, R.c.status, R.c.title, R.c.availability,
    R.c.detail_page_url, R.c.error, R.c.href, R.c.links_count, R.c.pages_count, R.c.pages,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TableQuery:
    """What the detailed table shows: one grain, filters, an order, a page."""

    grain: str = "product"  # product | link (report_table.GRAINS)
    status: str = ""  # '' for all
    asin: str = ""  # a prefix, upper case
    name: str = ""  # a substring of the product's name, any case
    page: str = ""  # a substring of a page the link is on, any case
    sort: str = ""  # a key of report_table.SORT_KEYS; '' is "problems"
    descending: bool = False
    page_number: int = 1
    per_page: int = 50

    @property
    def text_filtered(self) -> bool:
        return bool(self.asin or self.name or self.page)


@dataclass(slots=True)
class TablePage:
    total: int  # rows matching
    page_number: int  # the page shown (clamped to the last)
    rows: list[Row]


@dataclass(slots=True)
class Findings:
    """What the report page shows besides the table."""

    audit: list[AuditLink]
    failed: list[FailedPage]
    failed_total: int
    summary: dict[str, Any] | None = None  # made on the fly (unfinished scans), else None
    extra: dict[str, Any] = field(default_factory=dict)


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


# ---- the detailed table -----------------------------------------------------------------


async def table_page(session: AsyncSession, *, scan_id: int, query: TableQuery) -> TablePage:
    """The page ``query.page_number`` (clamped to the last) of the scan's detailed table."""
    conn = await session.connection()
    page = await _precomputed_page(conn, scan_id, query)
    if page is not None:
        return page
    report = await load_report(session, scan_id=scan_id)
    rows = _filtered(report, query)
    number = min(query.page_number, last_page(len(rows), query.per_page))
    first = (number - 1) * query.per_page
    return TablePage(len(rows), number, rows[first : first + query.per_page])


def _order_of(scan_id: int, query: TableQuery) -> Select[Any]:
    return select(ORD.c.rows, ORD.c.seqs).where(
        ORD.c.scan_id == scan_id,
        ORD.c.grain == query.grain,
        ORD.c.sort == (query.sort or "problems"),
        ORD.c.descending == query.descending,
        ORD.c.status == query.status,
    )


def _order_slice(scan_id: int, query: TableQuery, first: int, count: int) -> Select[Any]:
    """The order's row count and the ``seq`` of its rows ``first`` to ``first + count``."""
    order = _order_of(scan_id, query)
    return order.with_only_columns(ORD.c.rows, func.substr(ORD.c.seqs, first * 4 + 1, count * 4))


async def _precomputed_page(
    conn: AsyncConnection, scan_id: int, query: TableQuery
) -> TablePage | None:
    per = query.per_page
    if query.text_filtered:
        seqs = await _matching_seqs(conn, scan_id, query)
        if seqs is None:
            return None
        number = min(query.page_number, last_page(len(seqs), per))
        shown = seqs[(number - 1) * per : number * per]
        return TablePage(len(seqs), number, await _rows_at(conn, scan_id, shown))
    found = (
        await conn.execute(_order_slice(scan_id, query, (query.page_number - 1) * per, per))
    ).first()
    if found is None:
        return None
    total, chunk = int(found[0]), bytes(found[1] or b"")
    number = min(query.page_number, last_page(total, per))
    if number != query.page_number:
        stmt = _order_slice(scan_id, query, (number - 1) * per, per)
        chunk = bytes((await conn.execute(stmt)).one()[1] or b"")
    return TablePage(total, number, await _rows_at(conn, scan_id, report_table.unpack(chunk)))


SMALL_MATCH = 2_000  # matches ordered in Python; more read the precomputed order


async def _matching_seqs(
    conn: AsyncConnection, scan_id: int, query: TableQuery
) -> list[int] | None:
    """The seqs of the rows the text filters keep, in the query's order (None: no
    precomputed table). A few matches (an ASIN, a rare name) are ordered here by the
    functions that made the precomputed orders; many keep the precomputed order."""
    order = (await conn.execute(_order_of(scan_id, query).with_only_columns(ORD.c.rows))).first()
    if order is None:
        return None
    conds: list[ColumnElement[bool]] = [R.c.scan_id == scan_id, R.c.grain == query.grain]
    if len(query.asin) == 10:
        conds.append(R.c.asin == query.asin)  # the (scan_id, asin) index
    elif query.asin:
        conds.append(R.c.asin.startswith(query.asin, autoescape=True))
    if query.name:
        conds.append(R.c.title.icontains(query.name, autoescape=True))
    if query.status:
        conds.append(R.c.status == query.status)
    if query.page:
        on = select(L.c.marketplace, L.c.asin, L.c.href).where(
            L.c.scan_id == scan_id, L.c.page.icontains(query.page, autoescape=True)
        )
        keys = {tuple(k) for k in (await conn.execute(on.distinct())).all()}
        if query.grain == "product":
            keys = {(m, a) for m, a, _ in keys}
    stmt = select(*_ROW_COLUMNS).where(*conds).order_by(R.c.seq).limit(SMALL_MATCH + 1)
    found = (await conn.execute(stmt)).all()
    if len(found) <= SMALL_MATCH:  # all of them
        if query.page:
            width = 2 if query.grain == "product" else 3
            found = [r for r in found if (r.marketplace, r.asin, r.href or "")[:width] in keys]
        rows = [_row(r) for r in found]
        return [found[n].seq for n in report_table.ordered(rows, query.sort or "problems",
                                                           query.descending)]  # fmt: skip
    # many: which seqs match, in the precomputed order
    kept_q = select(R.c.seq, R.c.marketplace, R.c.asin, R.c.href).where(*conds)
    matching = (await conn.execute(kept_q)).all()
    if query.page:
        width = 2 if query.grain == "product" else 3
        kept = {r.seq for r in matching if (r.marketplace, r.asin, r.href or "")[:width] in keys}
    else:
        kept = {r.seq for r in matching}
    blob = (await conn.execute(_order_of(scan_id, query))).one()[1]
    return [s for s in report_table.unpack(bytes(blob or b"")) if s in kept]


async def _rows_at(conn: AsyncConnection, scan_id: int, seqs: list[int]) -> list[Row]:
    """The rows at positions ``seqs``, in that order."""
    if not seqs:
        return []
    stmt = select(*_ROW_COLUMNS).where(R.c.scan_id == scan_id, R.c.seq.in_(seqs))
    by_seq = {r.seq: r for r in (await conn.execute(stmt)).all()}
    return [_row(by_seq[s]) for s in seqs]


def _row(r: Any) -> Row:
    return Row(
        r.marketplace, r.asin, r.status, r.title, r.availability, r.detail_page_url, r.error,
        r.href, int(r.links_count), int(r.pages_count), r.pages.split("\n") if r.pages else [],
    )  # fmt: skip


def _filtered(report: ScanReport, query: TableQuery) -> list[Row]:
    """The table of ``report`` with the query's filters and order, in Python (what the SQL of
    the precomputed path keeps, in the same order)."""
    rows = report_table.table_rows(report)[query.grain]
    name = query.name.lower()
    kept = [
        r
        for r in rows
        if (not query.status or r.status == query.status)
        and r.asin.startswith(query.asin)
        and (not name or name in (r.title or "").lower())
    ]
    if query.page:
        needle = query.page.lower()
        keys: set[tuple[str, ...]] = set()
        for link in report.links:
            if needle in link.page.lower():
                for asin in link.target.asins:
                    keys.add((link.target.marketplace, asin))
                    keys.add((link.target.marketplace, asin, link.href))
        if query.grain == "product":
            kept = [r for r in kept if (r.marketplace, r.asin) in keys]
        else:
            kept = [r for r in kept if (r.marketplace, r.asin, r.href or "") in keys]
    order = report_table.ordered(kept, query.sort or "problems", query.descending)
    return [kept[n] for n in order]


# ---- the rest of the report page ----------------------------------------------------------


async def findings(session: AsyncSession, *, scan_id: int, finished: bool) -> Findings:
    """The tag audit and the failed pages (and, for a scan that did not finish, the summary of
    what it saved)."""
    conn = await session.connection()
    failed_q = (
        select(PAGE_TABLE.c.url, PAGE_TABLE.c.status, PAGE_TABLE.c.error, PAGE_TABLE.c.referrers)
        .where(PAGE_TABLE.c.scan_id == scan_id, PAGE_TABLE.c.ok.is_(False))
        .order_by(PAGE_TABLE.c.url)
        .limit(FAILED_SHOWN)
    )
    failed = [
        FailedPage(url, status, error or "", refs.split("\n") if refs else [])
        for url, status, error, refs in (await conn.execute(failed_q)).all()
    ]
    count_q = select(func.count()).where(
        PAGE_TABLE.c.scan_id == scan_id, PAGE_TABLE.c.ok.is_(False)
    )
    failed_total = int((await conn.execute(count_q)).scalar_one())
    if finished:
        audit_q = (
            select(A.c.href, A.c.tag, A.c.pages, A.c.links, A.c.first_pages)
            .where(A.c.scan_id == scan_id)
            .order_by(A.c.seq)
        )
        audit = [
            AuditLink(href, tag, int(pages), int(links), first.split("\n") if first else [])
            for href, tag, pages, links, first in (await conn.execute(audit_q)).all()
        ]
        has_table = (
            await conn.execute(select(literal(1)).where(ORD.c.scan_id == scan_id).limit(1))
        ).first() is not None
        if has_table:
            return Findings(audit, failed, failed_total)
    report = await load_report(session, scan_id=scan_id)
    return Findings(report_table.audit(report), failed, failed_total, summary(report))


# ---- the CSV export -----------------------------------------------------------------------


def _export_conditions(scan_id: int, query: TableQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [P.c.scan_id == scan_id]
    if query.status:
        conds.append(P.c.status == query.status)
    if query.asin:
        conds.append(P.c.asin.startswith(query.asin, autoescape=True))
    if query.name:
        conds.append(P.c.title.icontains(query.name, autoescape=True))
    return conds


def _code_point(conn: AsyncConnection, column: Any) -> Any:
    """``column`` compared by code point, as Python compares (and SQLite does by default)."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


async def export_rows(
    session: AsyncSession, *, scan_id: int, query: TableQuery
) -> AsyncIterator[Sequence[Any]]:
    """The rows of the CSV export (``scanner.report.CSV_COLUMNS``), as ``ccbb scan --format
    csv`` writes them: one per link occurrence and product by page and link, then one per
    product no link led to; only the products (and, with ``query.page``, the pages) the
    filters keep. Streamed from the database, EXPORT_CHUNK rows at a time."""
    conn = await session.connection()
    conds = _export_conditions(scan_id, query)
    join = L.join(
        P,
        and_(P.c.scan_id == L.c.scan_id, P.c.marketplace == L.c.marketplace, P.c.asin == L.c.asin),
    )
    link_conds = [L.c.scan_id == scan_id, *conds]
    if query.page:
        link_conds.append(L.c.page.icontains(query.page, autoescape=True))
    linked = (
        select(
            L.c.page,
            L.c.href,
            L.c.kind,
            L.c.tag,
            L.c.asin,
            L.c.marketplace,
            P.c.title,
            P.c.status,
            P.c.availability,
            P.c.error,
        )
        .select_from(join)
        .where(*link_conds)
        .order_by(_code_point(conn, L.c.page), _code_point(conn, L.c.href), L.c.occurrence, L.c.id)
    )
    assert len(linked.selected_columns) == len(CSV_COLUMNS)
    result = await conn.stream(linked.execution_options(yield_per=EXPORT_CHUNK))
    async for part in result.partitions(EXPORT_CHUNK):
        for row in part:
            yield row
    if query.page:
        return  # a product no link led to is on no page
    has_link = (
        select(literal(1))
        .where(L.c.scan_id == P.c.scan_id, L.c.marketplace == P.c.marketplace, L.c.asin == P.c.asin)
        .exists()
    )
    unlinked = (
        select(P.c.asin, P.c.marketplace, P.c.title, P.c.status, P.c.availability, P.c.error)
        .where(*conds, ~has_link)
        .order_by(_code_point(conn, P.c.marketplace), P.c.asin)
    )
    result = await conn.stream(unlinked.execution_options(yield_per=EXPORT_CHUNK))
    async for part in result.partitions(EXPORT_CHUNK):
        for row in part:
            yield ("", "", "", "", *row)
