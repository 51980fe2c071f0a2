"""Pacing of Amazon API requests. The engine only knows the :class:`RateLimiter` interface; this
module's limiter works within one process, a Redis-backed one shares a credential's rate across
every worker process and machine."""

from __future__ import annotations

from typing import Protocol

from aiolimiter import AsyncLimiter


class RateLimiter(Protocol):
    async def acquire(self) -> None:
        """Return when one more request may start now."""


class LocalRateLimiter:
    """``tps`` requests per second, no bursts, for the requests of this process only."""

    def __init__(self, tps: float) -> None:
        if tps <= 0:
            raise ValueError("tps must be greater than 0")
        self.tps = tps
        self._limiter = AsyncLimiter(1, 1.0 / tps)

    async def acquire(self) -> None:
        await self._limiter.acquire()
