"""Redis-backed pieces of the engine's interfaces, shared by every worker process.

:class:`RedisRateLimiter` paces the Amazon requests of one credential across every process (and
machine) that uses it: one atomic Lua script per request reserves the next free slot of the
credential (GCRA, no bursts) by Redis' own clock, then the caller sleeps until that slot.
:class:`RedisLinkCache` keeps where short links lead, for every later scan.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccbb.embedded import RedisUnavailable, mask_url
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
# TAT one interval past it and answers how many microseconds the caller must wait for its slot.
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
return tat - now
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
    credential together start at most ``tps`` requests per second. ``headroom`` keeps the pace a
    little under the limit (1 %: 10 TPS becomes one request every 101 ms) so that network jitter
    never makes Amazon see two requests closer than its limit allows.

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
        headroom: float = 0.01,
        retries: int = 5,
        backoff: float = 0.1,
    ) -> None:
        if not tps > 0:
            raise ValueError("tps must be greater than 0")
        if not 0 <= headroom < 1:
            raise ValueError("headroom must be in [0, 1)")
        self.tps = tps
        self.key = prefix + _digest(key)  # the credential ID never appears in Redis
        self.interval_us = math.ceil(1_000_000 * (1 + headroom) / tps)
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
        for attempt in range(self.retries + 1):
            try:
                wait_us = await self._script(keys=[self.key], args=[self.interval_us])
                return max(0, int(wait_us)) / 1_000_000
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

    async def acquire(self) -> None:
        """Return when one more request may start now."""
        wait = await self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


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
