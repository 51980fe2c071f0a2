"""The dashboard's hottest reads: who is logged in, and the progress of their scans, which every
open dashboard asks for every 15 s (15,000 users are 1,000 requests/s for one web process).

On PostgreSQL they go straight to asyncpg, through a small pool of its own: each SELECT is one
round trip, with no transaction around it, no ping before it and no reset query after it (the
statements are plain SELECTs: they leave nothing on the connection to reset). On this kind of
2-core VM that costs about 50 µs of the process's time where the SQLAlchemy engine (pre-ping in
a transaction, BEGIN, SELECT, ROLLBACK) costs about 600 µs. A read that meets a connection the
server dropped (a restart) is run again once on a new one: reads are safe to repeat.

Statements are SQLAlchemy Core statements with named ``bindparam``s, compiled once for asyncpg.
On SQLite (embedded mode) the same statements run through a SQLAlchemy engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from store.db import PG_DROPPED, async_url, asyncpg_pool, compile_for_asyncpg, make_engine

READ_CONNECTIONS = 8  # per web process; a read holds one for well under a millisecond


class Reads:
    """Run a Core SELECT, get its rows as mappings. ``start`` in the app's lifespan."""

    def __init__(self, url: str) -> None:
        self.url = make_url(async_url(url))
        self.pool: asyncpg.Pool | None = None
        self.engine: AsyncEngine | None = None
        self._sql: dict[int, tuple[Select[Any], str, tuple[str, ...]]] = {}

    async def start(self) -> None:
        if self.url.get_backend_name() == "postgresql":
            self.pool = await asyncpg_pool(self.url, max_size=READ_CONNECTIONS)
        else:
            self.engine = make_engine(self.url, isolation_level="AUTOCOMMIT")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.engine is not None:
            await self.engine.dispose()

    async def rows(self, stmt: Select[Any], params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows (mappings: ``row["column"]``, ``dict(row)``)."""
        params = params or {}
        if self.pool is None:
            assert self.engine is not None, "Reads.start() first"
            async with self.engine.connect() as conn:
                return [r._mapping for r in (await conn.execute(stmt, dict(params))).all()]
        sql, names = self._compiled(stmt)
        args = [params[name] for name in names]
        try:
            rows: list[Any] = await self.pool.fetch(sql, *args)
        except PG_DROPPED:
            rows = await self.pool.fetch(sql, *args)  # once more, on another connection
        return rows

    def _compiled(self, stmt: Select[Any]) -> tuple[str, tuple[str, ...]]:
        """The statement's SQL for asyncpg and the order of its parameters (kept per statement
        object: the hot statements are built once, at import)."""
        cached = self._sql.get(id(stmt))
        if cached is None or cached[0] is not stmt:
            if len(self._sql) > 256:  # statements built per call: keep the cache small
                self._sql.clear()
            cached = (stmt, *compile_for_asyncpg(stmt))
            self._sql[id(stmt)] = cached
        return cached[1], cached[2]
