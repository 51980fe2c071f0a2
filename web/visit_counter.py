"""The referral link's visit counters, gathered in memory by each web process and written every
``CCBB_AFFILIATE_VISIT_FLUSH_SECONDS`` (1 s) in one transaction: a click costs no database
write, which is what lets one process redirect thousands of clicks a second.

What a crash can lose: the visits of the last interval of a process killed outright (a normal
stop writes them; a failed write keeps them for the next try). Counters only — no money, no
attribution (the landing cookie and sign-ups never wait on this)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from store import affiliates as store_aff

log = logging.getLogger(__name__)


class VisitCounter:
    def __init__(self, sessions: Callable[[], Any], interval: float) -> None:
        self._sessions = sessions
        self._interval = interval
        self._counts: dict[tuple[int, date], list[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, *, affiliate_id: int, day: date, unique: bool) -> None:
        counts = self._counts.setdefault((affiliate_id, day), [0, 0])
        counts[0] += 1
        counts[1] += unique

    async def flush(self) -> None:
        """Write what was gathered (kept for the next try if the write fails)."""
        if not self._counts:
            return
        taken, self._counts = self._counts, {}
        rows = [{"affiliate_id": a, "day": d, "visits": v, "unique_visits": u}
                for (a, d), (v, u) in taken.items()]  # fmt: skip
        try:
            async with self._sessions() as session:
                await store_aff.count_visits(session, counts=rows)
        except Exception:
            for key, (v, u) in taken.items():  # back in, added to what came since
                counts = self._counts.setdefault(key, [0, 0])
                counts[0] += v
                counts[1] += u
            raise

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("referral visits not written yet (kept for the next try)")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("referral visits lost at shutdown: the database did not take them")
