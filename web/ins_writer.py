"""Group commit for the INS endpoint: notifications arriving together are written in one
statement and one transaction, so a burst pays one disk flush per batch instead of one per
notification (a PostgreSQL commit waits for its WAL to reach the disk: ~2–20 ms).

Each request still gets its answer only once its own row is committed — durability is not
traded away: ClickBank is told 200 only for what is on disk. While a batch is being written, the
next requests queue up; the moment it is done, all of them go as the next batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from store import clickbank as store_cb

MAX_BATCH = 500


class EventWriter:
    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.pending: list[tuple[dict[str, Any], asyncio.Future[store_cb.Received]]] = []
        self.writing = False

    async def record(self, values: dict[str, Any]) -> store_cb.Received:
        future: asyncio.Future[store_cb.Received] = asyncio.get_running_loop().create_future()
        self.pending.append((values, future))
        if not self.writing:
            self.writing = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                try:
                    async with self.sessions() as session:
                        found = await store_cb.record_events(
                            session, rows=[values for values, _ in batch]
                        )
                except (
                    Exception
                ) as exc:  # every request of the batch answers 5xx: ClickBank retries
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for values, future in batch:
                    if not future.done():
                        future.set_result(found[values["key"]])
        finally:
            self.writing = False
