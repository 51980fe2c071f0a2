"""Pacing of Amazon API requests. The engine only knows the :class:`RateLimiter` interface; this
module's limiter works within one process, a Redis-backed one (``ccbb.limiter``) shares a
credential's rate across every worker process and machine. Both keep the same promise: two
requests are never started closer than ``1 / tps``, however busy the machine."""

from __future__ import annotations

from typing import Protocol

from aiolimiter import AsyncLimiter

HEADROOM = 0.10  # slots are spaced 10 % more than the limit asks…
MIN_MARGIN = 0.010  # …and at least 10 ms more: on a busy machine a process runs ms late
MAX_MISSED_SLOTS = 20  # then a request goes late rather than never


class RateLimiter(Protocol):
    async def acquire(self) -> None:
        """Return when one more request may start now."""


def pacing(tps: float, headroom: float = HEADROOM) -> tuple[float, float]:
    """(seconds between slots, how late after its slot a request may still start) for ``tps``.
    A request started within the margin after its slot is never closer than ``1 / tps`` to the
    next slot's; one that woke later must take a later slot (``ccbb.limiter``)."""
    if not tps > 0:
        raise ValueError("tps must be greater than 0")
    if not 0 <= headroom < 1:
        raise ValueError("headroom must be in [0, 1)")
    base = 1.0 / tps
    margin = max(base * headroom, MIN_MARGIN) if headroom > 0 else 0.0
    return base + margin, margin


class LocalRateLimiter:
    """``tps`` requests per second, no bursts, for the requests of this process only: aiolimiter's
    leaky bucket of one, with :func:`pacing`'s margin. Its gaps are counted from when a request
    actually goes, so a late wake-up in this process never shortens the next gap."""

    def __init__(self, tps: float, headroom: float = HEADROOM) -> None:
        self.tps = tps
        self.interval, self.lateness = pacing(tps, headroom)
        self._limiter = AsyncLimiter(1, self.interval)

    async def acquire(self) -> None:
        await self._limiter.acquire()
