"""Scans: keyword-only CRUD functions on an ``AsyncSession`` (each commits its own work).

Life of a scan: :func:`create_scan` (``queued``) → :func:`mark_running` each time a worker
starts it (``running``, ``attempt`` + 1) → :func:`save_progress` and :func:`save_products`
while it runs → :func:`finish_scan` (``done``) or :func:`fail_scan` (``failed``). The user may
:func:`cancel_scan` a queued or running scan. :func:`finish_scan` replaces everything an earlier
attempt of the same scan wrote, in one transaction: a retried job never leaves duplicates.

Bulk writes: PostgreSQL (asyncpg) gets binary ``COPY`` on the session's own connection, inside
its transaction; other databases get ``executemany`` in chunks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Executable, Table, delete, exists, func, insert, text, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import messages
from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget, LinkKind
from scanner.classify import Status
from scanner.crawl import FailedPage, LinkOccurrence, Progress, UnresolvedLink
from scanner.report import summary, to_json
from scanner.scan import ProductKey, ScanReport
from store import credits, report_table
from store.credentials import get_credential
from store.models import (
    ACTIVE_STATES,
    AUDIT_TABLE,
    FINDINGS_TABLES,
    LINK_TABLE,
    ORDER_TABLE,
    PAGE_TABLE,
    PRODUCT_TABLE,
    REPORT_TABLES,
    ROW_TABLE,
    UNRESOLVED_TABLE,
    Scan,
    ScanState,
    table_of,
    utcnow,
)

__all__ = [  # get_credential is here too, for the worker's convenience
    "NoCredits",
    "ScanNotFound",
    "ScanStateError",
    "TooManyActiveScans",
    "cancel_scan",
    "create_scan",
    "create_scan_spending_credit",
    "delete_scan",
    "fail_scan",
    "finish_scan",
    "get_credential",
    "get_scan",
    "list_active_ids",
    "list_scans",
    "load_products",
    "load_report",
    "mark_running",
    "report_json",
    "save_products",
    "save_progress",
    "unfinished_scans",
]  # fmt: skip

log = logging.getLogger(__name__)

SCAN_TABLE = table_of(Scan)
CHUNK = 5_000  # rows per executemany (SQLite) and per upsert statement
_T = TypeVar("_T")

_PAGE_COLUMNS = ("scan_id", "seq", "url", "ok", "status", "error", "referrers")
_LINK_COLUMNS = ("scan_id", "occurrence", "page", "href", "kind", "tag", "marketplace", "asin")
_PRODUCT_COLUMNS = (
    "scan_id", "marketplace", "asin", "status", "title", "availability", "detail_page_url",
    "error",
)  # fmt: skip
_UNRESOLVED_COLUMNS = ("scan_id", "seq", "page", "href", "kind", "error")


class ScanNotFound(LookupError):
    """No such scan (or it belongs to another user)."""


class ScanStateError(Exception):
    """The scan is not in a state that allows this (e.g. starting a cancelled scan)."""


class TooManyActiveScans(Exception):
    """The user already has as many scans queued or running as allowed."""

    def __init__(self, *, active: int, cap: int) -> None:
        self.active = active
        self.cap = cap
        super().__init__(messages.TOO_MANY_ACTIVE.format(active=active, cap=cap))


class NoCredits(credits.InsufficientCredits):
    """A scan needs a credit and the user has none left."""

    def __init__(self, *, balance: int = 0, needed: int = 1) -> None:
        super().__init__(balance=balance, needed=needed)
        self.args = (messages.NO_CREDITS,)


def spend_key(scan_id: int, created_at: datetime) -> str:
    """The idempotency key of the credit a scan spent (SQLite reuses a deleted scan's id: the
    creation time keeps keys apart)."""
    return f"scan:{scan_id}:{int(created_at.timestamp() * 1000)}"


def refund_key(scan_id: int, created_at: datetime) -> str:
    return f"scan_refund:{scan_id}:{int(created_at.timestamp() * 1000)}"


def _site_name(site: str) -> str:
    return urlsplit(site).hostname or site[:100]


# ---- the scan row -----------------------------------------------------------------------


async def create_scan(
    session: AsyncSession,
    *,
    user_id: int | None,
    site: str,
    marketplace: str,
    partner_tag: str | None,
    options: dict[str, Any] | None = None,
    credential_id: int | None = None,
) -> Scan:
    """A new ``queued`` scan. ``site`` should be the normalised start URL (``ScanConfig.site``);
    ``options`` is what the worker needs to rebuild the ScanConfig (cloak prefixes, max_pages…),
    stored as JSON."""
    scan = Scan(
        user_id=user_id,
        site=site,
        marketplace=marketplace,
        partner_tag=partner_tag,
        options=dict(options or {}),
        credential_id=credential_id,
    )
    session.add(scan)
    await session.commit()
    await session.refresh(scan)
    return scan


async def create_scan_spending_credit(
    session: AsyncSession,
    *,
    user_id: int,
    credits_enabled: bool,
    active_cap: int,
    site: str,
    marketplace: str,
    partner_tag: str | None,
    options: dict[str, Any] | None = None,
    credential_id: int | None = None,
) -> Scan:
    """A new ``queued`` scan paid for with one credit, in one transaction serialised per user
    (the user's credits lock: :func:`store.credits.lock_account`), so that neither the
    active-scan cap nor the balance can be raced: the user's scans queued or running are
    counted, the credit is spent (``credits_enabled``) and the scan row written, all under the
    lock, or nothing is. Raises :class:`TooManyActiveScans` (``active_cap`` reached) or
    :class:`NoCredits`. The ledger row says "Scan #12 of example.com"; its key is
    :func:`spend_key`."""
    try:
        locked = await credits.lock_account(session, user_id=user_id)
        active = (
            await _execute(
                session,
                core_select(func.count())
                .select_from(SCAN_TABLE)
                .where(
                    SCAN_TABLE.c.user_id == user_id,
                    SCAN_TABLE.c.state.in_([s.value for s in ACTIVE_STATES]),
                ),
            )
        ).scalar_one()
        if active >= active_cap:
            raise TooManyActiveScans(active=int(active), cap=active_cap)
        if credits_enabled and locked.balance < 1:
            raise NoCredits(balance=locked.balance)
        scan = Scan(
            user_id=user_id,
            site=site,
            marketplace=marketplace,
            partner_tag=partner_tag,
            options=dict(options or {}),
            credential_id=credential_id,
        )
        session.add(scan)
        await session.flush()
        assert scan.id is not None
        if credits_enabled:
            await credits.revoke(
                session,
                user_id=user_id,
                amount=1,
                kind="scan",
                source="scan",
                comment=messages.SCAN_SPENT.format(scan_id=scan.id, site=_site_name(site)),
                external_id=str(scan.id),
                idempotency_key=spend_key(scan.id, scan.created_at),
                commit=False,
            )
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    await session.refresh(scan)
    return scan


async def refund_scan(
    session: AsyncSession, *, scan_id: int, user_id: int, created_at: datetime, site: str,
    why: str,
) -> credits.LedgerEntry | None:  # fmt: skip
    """Give back the credit the scan spent, once (``scan_refund``, key :func:`refund_key`),
    in the caller's transaction, which holds the user's lock. None when it spent none."""
    spent = await credits.get_entry(session, idempotency_key=spend_key(scan_id, created_at))
    if spent is None or spent.delta >= 0:
        return None
    return await credits.grant(
        session,
        user_id=user_id,
        amount=-spent.delta,
        kind="scan_refund",
        source="scan",
        comment=messages.SCAN_REFUND.format(scan_id=scan_id, site=_site_name(site), why=why),
        external_id=str(scan_id),
        idempotency_key=refund_key(scan_id, created_at),
        commit=False,
    )


async def get_scan(
    session: AsyncSession, *, scan_id: int, user_id: int | None = None
) -> Scan | None:
    """The scan, freshly read; None if there is none or, when ``user_id`` is given, if it
    belongs to someone else."""
    scan = await session.get(Scan, scan_id, populate_existing=True)
    if scan is None or (user_id is not None and scan.user_id != user_id):
        return None
    return scan


async def list_scans(
    session: AsyncSession, *, user_id: int, limit: int = 50, offset: int = 0
) -> list[Scan]:
    """The user's scans, newest first."""
    stmt = (
        select(Scan)
        .where(col(Scan.user_id) == user_id)
        .order_by(col(Scan.created_at).desc(), col(Scan.id).desc())
        .limit(limit)
        .offset(offset)
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())


async def list_active_ids(session: AsyncSession, *, user_id: int) -> list[int]:
    """The ids of the user's scans queued or running."""
    stmt = select(Scan.id).where(
        col(Scan.user_id) == user_id, col(Scan.state).in_([s.value for s in ACTIVE_STATES])
    )
    return [i for i in (await session.exec(stmt)).all() if i is not None]


async def unfinished_scans(session: AsyncSession, *, limit: int | None = None) -> list[Scan]:
    """Scans queued or running, oldest first (for the reaper that restarts lost scans)."""
    stmt = (
        select(Scan)
        .where(col(Scan.state).in_(ACTIVE_STATES))
        .order_by(col(Scan.id))
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(stmt)).all())


async def mark_running(session: AsyncSession, *, scan_id: int) -> int:
    """A worker starts (or starts again) the scan; returns the attempt number (1 the first
    time). Raises ScanNotFound, or ScanStateError if it is done, failed or cancelled: the job
    then has nothing to do."""
    stmt = (
        update(SCAN_TABLE)
        .where(SCAN_TABLE.c.id == scan_id, SCAN_TABLE.c.state.in_(ACTIVE_STATES))
        .values(
            state=ScanState.RUNNING.value,
            attempt=SCAN_TABLE.c.attempt + 1,
            started_at=utcnow(),
            finished_at=None,
            error=None,
            phase="starting",
        )
        .returning(SCAN_TABLE.c.attempt)
    )
    attempt = (await _execute(session, stmt)).scalar_one_or_none()
    await session.commit()
    if attempt is None:
        raise await _state_error(session, scan_id, "started")
    return int(attempt)


async def save_progress(session: AsyncSession, *, scan_id: int, progress: Progress) -> bool:
    """Store the live counters. Returns False when the scan is no longer running (the user
    cancelled it): the worker should stop."""
    stmt = (
        update(SCAN_TABLE)
        .where(SCAN_TABLE.c.id == scan_id, SCAN_TABLE.c.state == ScanState.RUNNING.value)
        .values(
            phase=progress.phase[:64],
            pages_crawled=progress.pages_crawled,
            pages_discovered=progress.pages_discovered,
            products_found=progress.products_found,
            products_checked=progress.products_checked,
            api_requests=progress.api_requests,
        )
        .returning(SCAN_TABLE.c.id)
    )
    still_running = (await _execute(session, stmt)).first() is not None
    await session.commit()
    return still_running


async def fail_scan(session: AsyncSession, *, scan_id: int, reason: str) -> bool:
    """A queued or running scan failed; ``reason`` is shown to the user as is (one line, the
    cause and what to do). A scan that failed before any product was checked gets its credit
    back, in the same transaction (once: a second failure finds it ended). Returns False if
    the scan had already ended."""
    return await _end(session, scan_id, ScanState.FAILED, error=reason)


async def cancel_scan(session: AsyncSession, *, scan_id: int) -> bool:
    """The user stops a queued or running scan. What was saved so far (checked products) is
    kept. A scan cancelled before a worker started it gets its credit back, in the same
    transaction. Returns False if the scan had already ended."""
    return await _end(session, scan_id, ScanState.CANCELLED, error=None)


async def _end(session: AsyncSession, scan_id: int, state: ScanState, error: str | None) -> bool:
    try:
        owner = (
            await _execute(
                session,
                core_select(SCAN_TABLE.c.user_id, SCAN_TABLE.c.created_at, SCAN_TABLE.c.site).where(
                    SCAN_TABLE.c.id == scan_id
                ),
            )
        ).first()
        if owner is None:
            await session.commit()
            return False
        if owner.user_id is not None:  # a refund must not race the user's other credit writes
            await credits.lock_account(session, user_id=owner.user_id)
        values = {"state": state.value, "error": error, "finished_at": utcnow(),
                  "phase": state.value}  # fmt: skip
        refund: str | None = None
        changed = False
        if state is ScanState.CANCELLED:  # still queued: no worker started it
            changed = await _update_if(session, scan_id, (ScanState.QUEUED,), values)
            refund = messages.REFUND_CANCELLED if changed else None
        if not changed:
            changed = await _update_if(session, scan_id, ACTIVE_STATES, values)
            if changed and state is ScanState.FAILED:
                checked = exists().where(PRODUCT_TABLE.c.scan_id == scan_id)
                if not (await _execute(session, core_select(checked))).scalar():
                    refund = messages.REFUND_FAILED
        if refund is not None and owner.user_id is not None:
            await refund_scan(
                session, scan_id=scan_id, user_id=owner.user_id, created_at=owner.created_at,
                site=owner.site, why=refund,
            )  # fmt: skip
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return changed


async def _update_if(
    session: AsyncSession, scan_id: int, states: Sequence[str], values: dict[str, Any]
) -> bool:
    stmt = (
        update(SCAN_TABLE)
        .where(SCAN_TABLE.c.id == scan_id, SCAN_TABLE.c.state.in_([str(s) for s in states]))
        .values(**values)
        .returning(SCAN_TABLE.c.id)
    )
    return (await _execute(session, stmt)).first() is not None


async def delete_scan(session: AsyncSession, *, scan_id: int, user_id: int | None = None) -> bool:
    """Delete the scan and everything it holds (pages, links, products, its report), in one
    transaction. False if there is no such scan (or, with ``user_id``, it is someone else's).
    A running scan should be cancelled first: its worker then finds nothing to save."""
    conds = [SCAN_TABLE.c.id == scan_id]
    if user_id is not None:
        conds.append(SCAN_TABLE.c.user_id == user_id)
    try:
        conn = await session.connection()
        found = (
            await conn.execute(core_select(SCAN_TABLE.c.id).where(*conds).with_for_update())
        ).first()
        if found is None:
            await session.rollback()
            return False
        for table in (*REPORT_TABLES, *FINDINGS_TABLES):
            await conn.execute(delete(table).where(table.c.scan_id == scan_id))
        await conn.execute(delete(SCAN_TABLE).where(SCAN_TABLE.c.id == scan_id))
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return True


async def _state_error(session: AsyncSession, scan_id: int, verb: str) -> Exception:
    stmt = core_select(SCAN_TABLE.c.state).where(SCAN_TABLE.c.id == scan_id)
    state = (await _execute(session, stmt)).scalar_one_or_none()
    if state is None:
        return ScanNotFound(f"no scan {scan_id}")
    return ScanStateError(f"scan {scan_id} is {state}: it cannot be {verb}")


# ---- the report -------------------------------------------------------------------------


async def finish_scan(session: AsyncSession, *, scan_id: int, report: ScanReport) -> None:
    """Store everything the scan found, in one transaction, and mark it ``done`` — or
    ``cancelled`` when the report says it was stopped (``report.cancelled``) or the scan was
    cancelled meanwhile: what a cancelled scan found is kept. Rows an earlier attempt left
    (checkpointed products, a previous finish) are replaced. The scan row takes the report's
    site, marketplace, partner tag and times. The dashboard's detailed table is made here too
    (:mod:`store.report_table`). Raises ScanNotFound."""
    try:
        # the first statement locks the scan row (PostgreSQL) or the database (SQLite) until
        # commit, so a concurrent cancel either comes first (and wins) or waits
        lock = (
            update(SCAN_TABLE)
            .where(SCAN_TABLE.c.id == scan_id)
            .values(phase="saving")
            .returning(SCAN_TABLE.c.state)
        )
        state = (await _execute(session, lock)).scalar_one_or_none()
        if state is None:
            raise ScanNotFound(f"no scan {scan_id}")
        cancelled = state == ScanState.CANCELLED.value or report.cancelled
        conn = await session.connection()
        for table in (*FINDINGS_TABLES, *REPORT_TABLES):
            await conn.execute(delete(table).where(table.c.scan_id == scan_id))
        await _bulk_insert(conn, PAGE_TABLE, _PAGE_COLUMNS, _page_rows(scan_id, report))
        await _bulk_insert(conn, LINK_TABLE, _LINK_COLUMNS, _link_rows(scan_id, report.links))
        await _bulk_insert(
            conn, PRODUCT_TABLE, _PRODUCT_COLUMNS, _product_rows(scan_id, report.products.items())
        )
        await _bulk_insert(
            conn, UNRESOLVED_TABLE, _UNRESOLVED_COLUMNS, _unresolved_rows(scan_id, report)
        )
        # the dashboard's detailed table, its orders and the tag audit (store.report_table)
        rows = report_table.table_rows(report)
        await _bulk_insert(
            conn, ROW_TABLE, report_table.ROW_COLUMNS, report_table.row_records(scan_id, rows)
        )
        await _bulk_insert(
            conn, ORDER_TABLE, report_table.ORDER_COLUMNS, report_table.order_records(scan_id, rows)
        )
        del rows
        audit = report_table.audit_records(scan_id, report)
        await _bulk_insert(conn, AUDIT_TABLE, report_table.AUDIT_COLUMNS, audit)
        done = (
            update(SCAN_TABLE)
            .where(SCAN_TABLE.c.id == scan_id)
            .values(
                state=(ScanState.CANCELLED if cancelled else ScanState.DONE).value,
                error=None,
                site=report.site,
                marketplace=report.marketplace,
                partner_tag=report.partner_tag,
                started_at=report.started_at,
                finished_at=report.finished_at,
                phase="cancelled" if cancelled else "done",
                pages_crawled=len(report.pages),
                products_found=len(report.products),
                products_checked=sum(
                    1 for p in report.products.values() if p.status is not Status.NOT_CHECKED
                ),
                api_requests=report.api_requests,
                truncated=report.truncated,
                summary=summary(report),
                stats=_stats(report),
            )
        )
        await conn.execute(done)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    await _analyze(session, ROW_TABLE)


async def _analyze(session: AsyncSession, table: Table) -> None:
    """Fresh planner statistics for a table that just got a scan's worth of rows (PostgreSQL).
    Until autovacuum gets to it, the planner takes a new scan for a few rows and reads all of
    them to find the 50 of a page (150 ms instead of 1 ms at 200,000 rows)."""
    conn = await session.connection()
    if conn.dialect.name != "postgresql":
        await session.commit()
        return
    try:
        await conn.execute(text(f'ANALYZE "{table.name}"'))
        await session.commit()
    except Exception:  # the scan is saved: slower pages until autovacuum, not a failure
        log.warning("ANALYZE %s failed", table.name, exc_info=True)
        await session.rollback()


async def load_report(
    session: AsyncSession, *, scan_id: int, user_id: int | None = None
) -> ScanReport:
    """The scan's :class:`~scanner.scan.ScanReport`, rebuilt from the database in the scan's own
    order, for ``scanner.report`` (``to_json``, ``iter_json``, ``to_csv``, ``to_text``). A scan
    that did not finish gives what was saved: its checked products, no pages or links.
    Raises ScanNotFound (also when ``user_id`` is given and the scan is someone else's)."""
    scan = await get_scan(session, scan_id=scan_id, user_id=user_id)
    if scan is None:
        raise ScanNotFound(f"no scan {scan_id}")
    pages: list[str] = []
    failed: list[FailedPage] = []
    stmt = (
        core_select(
            PAGE_TABLE.c.ok,
            PAGE_TABLE.c.url,
            PAGE_TABLE.c.status,
            PAGE_TABLE.c.error,
            PAGE_TABLE.c.referrers,
        )
        .where(PAGE_TABLE.c.scan_id == scan_id)
        .order_by(PAGE_TABLE.c.ok.desc(), PAGE_TABLE.c.seq)
    )
    for ok, url, status, error, referrers in await _rows(session, stmt):
        if ok:
            pages.append(url)
        else:
            refs = referrers.split("\n") if referrers else []
            failed.append(FailedPage(url, status, error or "", refs))
    unresolved = [
        UnresolvedLink(page, href, kind, error)
        for page, href, kind, error in await _rows(
            session,
            core_select(
                UNRESOLVED_TABLE.c.page,
                UNRESOLVED_TABLE.c.href,
                UNRESOLVED_TABLE.c.kind,
                UNRESOLVED_TABLE.c.error,
            )
            .where(UNRESOLVED_TABLE.c.scan_id == scan_id)
            .order_by(UNRESOLVED_TABLE.c.seq),
        )
    ]
    links = [link async for link in _load_links(session, scan_id, pages)]
    products = await load_products(session, scan_id=scan_id)
    stats = dict(scan.stats or {})
    api_requests = int(stats.pop("api_requests", scan.api_requests))
    robots_skipped = int(stats.pop("robots_skipped", 0))
    notes = [str(note) for note in stats.pop("notes", [])]
    site = str(stats.pop("scanned_site", scan.site))
    started_at = scan.started_at or scan.created_at
    return ScanReport(
        site=site,
        marketplace=scan.marketplace,
        partner_tag=scan.partner_tag,
        started_at=started_at,
        finished_at=scan.finished_at or started_at,
        pages=pages,
        failed=failed,
        links=links,
        unresolved=unresolved,
        products=products,
        truncated=scan.truncated,
        cancelled=scan.state == ScanState.CANCELLED.value,
        robots_skipped=robots_skipped,
        api_requests=api_requests,
        timings=stats,
        notes=notes,
    )


async def report_json(
    session: AsyncSession, *, scan_id: int, user_id: int | None = None
) -> dict[str, Any]:
    """The report in the shape of ``scanner.report.to_json`` (the same JSON the CLI prints for
    the same scan). Raises ScanNotFound."""
    return to_json(await load_report(session, scan_id=scan_id, user_id=user_id))


# ---- product checkpoints ----------------------------------------------------------------


async def save_products(
    session: AsyncSession, *, scan_id: int, results: Iterable[ProductResult]
) -> None:
    """Insert or update checked products while the scan runs, so a scan picked up again after
    a crash does not ask Amazon again (see :func:`load_products`). Idempotent."""
    latest = {(r.marketplace, r.asin): r for r in results}  # one row per key per statement
    if not latest:
        return
    conn = await session.connection()
    # the same ON CONFLICT DO UPDATE on both databases we run on
    insert_into = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert_into(PRODUCT_TABLE)
    statement = stmt.on_conflict_do_update(
        index_elements=["scan_id", "marketplace", "asin"],
        set_={c: stmt.excluded[c] for c in _PRODUCT_COLUMNS[3:]},
    )
    for chunk in _chunks(_product_rows(scan_id, latest.items()), CHUNK):
        values = [dict(zip(_PRODUCT_COLUMNS, row, strict=True)) for row in chunk]
        await conn.execute(statement, values)
    await session.commit()


async def load_products(session: AsyncSession, *, scan_id: int) -> dict[ProductKey, ProductResult]:
    """The products saved for the scan, by (marketplace, ASIN)."""
    t = PRODUCT_TABLE
    stmt = core_select(*(t.c[name] for name in _PRODUCT_COLUMNS[1:])).where(t.c.scan_id == scan_id)
    out: dict[ProductKey, ProductResult] = {}
    for marketplace, asin, status, title, availability, url, error in await _rows(session, stmt):
        out[(marketplace, asin)] = ProductResult(
            asin, marketplace, Status(status), title, availability, url, error
        )
    return out


# ---- rows -------------------------------------------------------------------------------


def _stats(report: ScanReport) -> dict[str, Any]:
    """The report's ``stats`` object, as ``to_json`` writes it."""
    return {
        "api_requests": report.api_requests,
        "robots_skipped": report.robots_skipped,
        **report.timings,
        "notes": list(report.notes),  # load_report gives them back to the report
        "scanned_site": report.site,  # http:// when a bare domain's https:// did not work
    }


def _page_rows(scan_id: int, report: ScanReport) -> Iterator[tuple[Any, ...]]:
    for n, url in enumerate(report.pages):
        yield (scan_id, n, url, True, None, None, None)
    for n, f in enumerate(report.failed):
        yield (scan_id, n, f.url, False, f.status, f.error, "\n".join(f.referrers) or None)


def _link_rows(scan_id: int, links: Sequence[LinkOccurrence]) -> Iterator[tuple[Any, ...]]:
    for n, link in enumerate(links):
        target = link.target
        for asin in target.asins:
            yield (scan_id, n, link.page, link.href, link.kind, target.tag, target.marketplace,
                   asin)  # fmt: skip


def _product_rows(
    scan_id: int, products: Iterable[tuple[ProductKey, ProductResult]]
) -> Iterator[tuple[Any, ...]]:
    for (marketplace, asin), p in products:
        yield (scan_id, marketplace, asin, Status(p.status).value, p.title, p.availability,
               p.detail_page_url, p.error)  # fmt: skip


def _unresolved_rows(scan_id: int, report: ScanReport) -> Iterator[tuple[Any, ...]]:
    for n, u in enumerate(report.unresolved):
        yield (scan_id, n, u.page, u.href, u.kind, u.error)


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


async def _bulk_insert(
    conn: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        if not raw.is_in_transaction():  # COPY must belong to the session's transaction
            raise RuntimeError("bulk insert outside a transaction")
        await raw.copy_records_to_table(
            table.name, records=rows, columns=list(columns), schema_name=table.schema
        )
        return
    stmt = insert(table)
    for chunk in _chunks(rows, CHUNK):
        await conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in chunk])


async def _execute(session: AsyncSession, stmt: Executable) -> Any:
    """A Core statement on the session's connection (and in its transaction)."""
    conn = await session.connection()
    return await conn.execute(stmt)


async def _rows(session: AsyncSession, stmt: Executable) -> list[Any]:
    return list((await _execute(session, stmt)).all())


async def _load_links(
    session: AsyncSession, scan_id: int, pages: list[str]
) -> AsyncIterator[LinkOccurrence]:
    """Link occurrences in the scan's order, one per ``occurrence`` (its rows' ASINs
    together), sharing one string per page and one target per distinct link."""
    t = LINK_TABLE
    stmt = (
        core_select(
            t.c.occurrence, t.c.page, t.c.href, t.c.kind, t.c.tag, t.c.marketplace, t.c.asin
        )
        .where(t.c.scan_id == scan_id)
        .order_by(t.c.occurrence, t.c.id)
    )
    shared_pages = {p: p for p in pages}
    targets: dict[tuple[str, tuple[str, ...], str | None, bool], AmazonTarget] = {}
    hrefs: dict[str, str] = {}
    current: int | None = None
    head: tuple[str, str, LinkKind, str | None, str] = ("", "", "direct", None, "")
    asins: list[str] = []

    def occurrence() -> LinkOccurrence:
        page, href, kind, tag, marketplace = head
        key = (marketplace, tuple(asins), tag, kind == "widget")
        target = targets.get(key)
        if target is None:
            target = targets[key] = AmazonTarget(*key)
        return LinkOccurrence(
            shared_pages.setdefault(page, page), hrefs.setdefault(href, href), kind, target
        )

    conn = await session.connection()
    result = await conn.stream(stmt.execution_options(yield_per=CHUNK))
    async for partition in result.partitions():
        for n, page, href, kind, tag, marketplace, asin in partition:
            if n != current:
                if current is not None:
                    yield occurrence()
                current = n
                head = (page, href, kind, tag, marketplace)
                asins = []
            asins.append(asin)
    if current is not None:
        yield occurrence()
