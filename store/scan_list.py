"""The dashboard's list of a user's scans: the hottest read (every open dashboard polls it),
as Core statements built once and run by a reader (``web.reads.Reads``: ``await
reads.rows(statement, params)``), keyword-only functions as the rest of ``store``."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import bindparam, func, select
from sqlalchemy.sql import Select

from store.models import Scan, table_of

SCAN_TABLE = table_of(Scan)
# the live counters a scan row keeps (ccbb.jobs.LIVE_FIELDS, also published to Redis)
LIVE_COLUMNS = ("phase", "pages_crawled", "pages_discovered", "products_found", "products_checked")


class Reader(Protocol):
    async def rows(self, stmt: Select[Any], params: dict[str, Any] | None = None) -> list[Any]: ...


# built once: each poll only binds the user and the page
PROGRESS_QUERY = (
    select(
        SCAN_TABLE.c.id,
        SCAN_TABLE.c.site,
        SCAN_TABLE.c.state,
        SCAN_TABLE.c.created_at,
        SCAN_TABLE.c.started_at,
        SCAN_TABLE.c.finished_at,
        SCAN_TABLE.c.error,
        *(SCAN_TABLE.c[c] for c in LIVE_COLUMNS),
    )
    .where(SCAN_TABLE.c.user_id == bindparam("user_id"))
    .order_by(SCAN_TABLE.c.created_at.desc(), SCAN_TABLE.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
SCAN_COUNT = select(func.count()).where(SCAN_TABLE.c.user_id == bindparam("user_id"))


async def scan_page(reads: Reader, *, user_id: int, limit: int, offset: int) -> list[Any]:
    """A page of the user's scans, newest first, with their saved counters (mappings)."""
    return await reads.rows(PROGRESS_QUERY, {"user_id": user_id, "limit": limit, "offset": offset})


async def count_scans(reads: Reader, *, user_id: int) -> int:
    found = await reads.rows(SCAN_COUNT, {"user_id": user_id})
    return int(next(iter(found[0].values())))
