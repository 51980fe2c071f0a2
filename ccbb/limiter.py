"""Redis-backed pieces of the engine's interfaces, shared by every worker process.

:class:`RedisRateLimiter` paces the Amazon requests of one credential across every process (and
machine) that uses it: one atomic Lua script per request reserves the next free slot of the
credential (GCRA, no bursts) by Redis' own clock, then the caller sleeps until that slot.
:class:`RedisLinkCache` keeps where short links lead, for every later scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccbb.embedded import RedisUnavailable, mask_url
from scanner.ratelimit import HEADROOM, MAX_MISSED_SLOTS, pacing
from scanner.settings import AmazonAccess

__all__ = [
    "GCRA_SCRIPT",
    "LINK_CACHE_TTL",
    "RedisLinkCache",
    "RedisRateLimiter",
    "RedisUnavailable",
]

log = logging.getLogger(__name__)

LINK_CACHE_TTL = 30 * 24 * 3600  # seconds a short link's destination is remembered

# GCRA with a burst of one: the key holds the "theoretical arrival time" (TAT), in microseconds of
# the Redis server's clock, of the next free slot. Each call takes the slot max(TAT, now), moves
# TAT one interval past it and answers how many microseconds the caller must wait for its slot,
# and the server's clock (the caller uses it to tell how late it woke up, see ``acquire``).
# Slots are therefore at least one interval apart whoever asks, and an idle key simply expires
# (a TAT in the past means the same as no key). TIME is read inside the script, so the clocks of
# the callers' machines never matter; Redis >= 5 replicates a script's effects, not the script
# (replicate_commands is only called where it still exists, i.e. before Redis 7).
GCRA_SCRIPT = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local next_tat = tat + interval
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return {tat - now, now}
"""


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _client_url(redis: Redis) -> str:
    """Where ``redis`` points, for error messages (password masked)."""
    try:
        kwargs: dict[str, Any] = redis.connection_pool.connection_kwargs
    except AttributeError:
        return "Redis"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return mask_url(f"redis://{host}:{port}/{db}")


class RedisRateLimiter:
    """At most ``tps`` requests per second, no bursts, for everyone sharing ``key``.

    Implements :class:`scanner.ratelimit.RateLimiter`. Every :meth:`acquire` reserves the next
    free slot of ``key`` atomically in Redis and sleeps until it, so N processes using the same
    credential together start at most ``tps`` requests per second.

    ``headroom`` spaces the slots a little more than the limit asks (10 %, at least 10 ms: 5 TPS
    becomes one slot every 220 ms), and that margin is a promise kept under load: a caller that
    wakes up later than the margin after its slot (a busy machine, a long pause of its event
    loop) does not send late — which would put its request right before the next caller's —
    but reserves a new slot. So two requests sharing a credential never start closer than
    ``1 / tps``, however loaded the machines are; a busy machine only goes slower.

    If Redis restarts, the key is lost and pacing simply starts again. A connection error is
    retried ``retries`` times with exponential backoff from ``backoff`` seconds; then
    :class:`RedisUnavailable` says so in one line.
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        tps: float,
        *,
        prefix: str = "ccbb:rate:",
        headroom: float = HEADROOM,
        retries: int = 5,
        backoff: float = 0.1,
    ) -> None:
        interval, self.lateness = pacing(tps, headroom)  # ValueError for a bad tps or headroom
        self.tps = tps
        self.key = prefix + _digest(key)  # the credential ID never appears in Redis
        # rounded first: 0.06 s is 60000.000000000007 µs in floating point, not a 60001 µs limit
        self.interval_us = math.ceil(round(interval * 1_000_000, 3))
        self.missed = 0  # slots given up because this process woke too late for them
        self._best: tuple[float, float, float] | None = None  # clock offset, its rtt, when
        self._calibrated: asyncio.Future[None] | None = None
        self.retries = retries
        self.backoff = backoff
        self._redis = redis
        self._script = redis.register_script(GCRA_SCRIPT)

    @classmethod
    def for_access(cls, redis: Redis, access: AmazonAccess, **kwargs: Any) -> RedisRateLimiter:
        """The limiter shared by everyone using ``access``'s credential on its API host."""
        return cls(redis, access.limiter_key, access.tps, **kwargs)

    async def reserve(self) -> float:
        """Reserve the next free slot; return the seconds to wait for it (no sleeping)."""
        return (await self._reserve())[0]

    async def _reserve(self) -> tuple[float, float]:
        """Reserve the next free slot: the seconds to wait for it, counted from the reply, and a
        time by this process' clock at or before the slot (see :meth:`_clock_offset`)."""
        for attempt in range(self.retries + 1):
            try:
                asked = time.monotonic()
                wait_us, server_us = await self._script(keys=[self.key], args=[self.interval_us])
                answered = time.monotonic()
                wait = max(0, int(wait_us)) / 1_000_000
                offset, uncertainty = self._clock_offset(int(server_us) / 1e6, asked, answered)
                # the slot is somewhere in [asked + wait, answered + wait]; the server's clock
                # (the best round trip seen) narrows that when this reply was read late
                earliest = max(asked + wait, int(server_us) / 1e6 + wait - offset - uncertainty)
                return wait, min(earliest, answered + wait)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if attempt == self.retries:
                    raise RedisUnavailable(
                        f"the Amazon rate limiter cannot reach Redis at {_client_url(self._redis)} "
                        f"({type(exc).__name__}: {exc}) after {self.retries + 1} attempts: "
                        "check that Redis is running and REDIS_URL is right"
                    ) from exc
                delay = self.backoff * 2**attempt
                log.warning("rate limiter: Redis unreachable (%s), retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _clock_offset(self, server: float, asked: float, answered: float) -> tuple[float, float]:
        """The server clock minus this one, and how uncertain that is: from the call with the
        shortest round trip of the last minute (NTP's idea), so a reply read late by a busy
        process does not blur it."""
        rtt = answered - asked
        best = self._best
        if best is None or rtt <= best[1] or answered - best[2] > 60.0:
            best = self._best = (server - (asked + answered) / 2, rtt, answered)
        return best[0], best[1] / 2

    async def _calibrate(self) -> None:
        """A few quick TIME calls before the first reservation, one after the other, so the
        clock offset is known closely even when the first reservations queue up together."""
        for _ in range(3):
            asked = time.monotonic()
            seconds, micros = await self._redis.time()
            self._clock_offset(seconds + micros / 1e6, asked, time.monotonic())

    async def acquire(self) -> None:
        """Return when one more request may start now."""
        if self._calibrated is None:
            self._calibrated = asyncio.ensure_future(self._calibrate())
        with contextlib.suppress(RedisError, OSError):  # reserve() says what is wrong
            await asyncio.shield(self._calibrated)
        for _ in range(MAX_MISSED_SLOTS):
            wait, slot = await self._reserve()
            if wait > 0:
                await asyncio.sleep(wait)  # from the reply: never before the slot
            late = time.monotonic() - slot
            if self.lateness <= 0 or late <= self.lateness:
                return
            self.missed += 1
            log.info("rate limiter: woke %.0f ms after the slot: taking a later one", late * 1000)
        log.warning("rate limiter: %d slots missed in a row (machine overloaded?)", self.missed)


class RedisLinkCache:
    """Where short links (``amzn.to/…``) lead, kept ``ttl`` seconds for every later scan.

    Implements :class:`scanner.redirects.LinkCache`. Keys are ``<prefix><sha1(url)>``. A cache is
    only a shortcut: when Redis cannot be reached, :meth:`get` misses and :meth:`put` is skipped
    (with a warning), and the link is simply resolved again.
    """

    def __init__(
        self, redis: Redis, ttl: float = LINK_CACHE_TTL, *, prefix: str = "ccbb:short:"
    ) -> None:
        if not ttl > 0:
            raise ValueError("ttl must be greater than 0")
        self.ttl = math.ceil(ttl)
        self.prefix = prefix
        self._redis = redis

    def key(self, url: str) -> str:
        return self.prefix + _digest(url)

    async def get(self, url: str) -> str | None:
        try:
            value: Any = await self._redis.get(self.key(url))
        except RedisError as exc:
            log.warning("link cache: Redis unavailable, not cached: %s", exc)
            return None
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    async def put(self, url: str, final_url: str) -> None:
        try:
            await self._redis.set(self.key(url), final_url, ex=self.ttl)
        except RedisError as exc:
            log.warning("link cache: Redis unavailable, not cached: %s", exc)
