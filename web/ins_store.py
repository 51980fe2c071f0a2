"""Where ``POST /clickbank/ins`` keeps the raw notification before it answers ClickBank.

On PostgreSQL: ONE statement per notification (``store.clickbank.UPSERT_ONE``: insert, or
count one more delivery, returning the event) sent straight through asyncpg on a small pool of
its own, in autocommit — the statement is its own transaction, so the answer waits for exactly
one round trip and one commit. No session, no pool pre-ping, no BEGIN/COMMIT round trips, no
reset query, no application-level batching: concurrent commits share their WAL flush inside
PostgreSQL itself (a backend that flushes the WAL flushes every commit record before its own).

Durability is not traded away: the commit is synchronous (the server's ``synchronous_commit``,
``on`` by default), so ClickBank is told 200 only for a row that is on disk. The reasoning, and
why ``synchronous_commit=off`` for this insert would lose payments, is in docs/benchmarks.md
("ClickBank notifications: where the time went").

On SQLite (embedded mode) the group-commit writer (``web.ins_writer``) does it through the
app's sessions.

A statement that meets a connection the server dropped (a restart) is sent once more on
another connection; if the first one had committed after all, the second only counts one more
delivery (the upsert is keyed), which is what a redelivery does anyway.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from store import clickbank as store_cb
from store.db import PG_DROPPED, async_url, asyncpg_pool, compile_for_asyncpg
from web.ins_writer import EventWriter

INS_CONNECTIONS = 8  # per web process; one notification holds one for a round trip and a commit


class InsStore:
    """``await record(values)`` → :class:`store.clickbank.Received`. ``start`` in the lifespan."""

    def __init__(
        self,
        url: str,
        sessions: Any = None,
        *,
        server_settings: dict[str, str] | None = None,
    ) -> None:
        self.url = make_url(async_url(url))
        self.sessions = sessions
        self.server_settings = server_settings  # for the benchmark's comparisons only
        self.pool: asyncpg.Pool | None = None
        self.writer: EventWriter | None = None
        self.sql, self.names = compile_for_asyncpg(store_cb.UPSERT_ONE)

    async def start(self) -> None:
        if self.url.get_backend_name() == "postgresql":
            self.pool = await asyncpg_pool(
                self.url, max_size=INS_CONNECTIONS, server_settings=self.server_settings
            )
        else:
            assert self.sessions is not None  # SQLite: the writer needs the app's sessions
            self.writer = EventWriter(self.sessions)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def record(self, values: dict[str, Any]) -> store_cb.Received:
        if self.pool is None:
            assert self.writer is not None  # InsStore.start() first
            return await self.writer.record(values)
        row = store_cb.received_row(values)
        args = [row[name] for name in self.names]
        try:
            found = await self.pool.fetchrow(self.sql, *args)
        except PG_DROPPED:
            found = await self.pool.fetchrow(self.sql, *args)  # once more, on another connection
        assert found is not None  # RETURNING answers the row, inserted or updated
        return store_cb.received(found)
