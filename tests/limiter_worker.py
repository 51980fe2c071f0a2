"""One worker process of the shared-rate-limit tests: real Creators API lookups through
``scanner.creators_api.ProductChecker`` against a sandbox, paced by a :class:`RedisRateLimiter` (or,
for comparison, the in-process ``LocalRateLimiter``).

    python tests/limiter_worker.py --api-host URL --auth-endpoint URL --count N
        [--limiter redis|local] [--redis-url URL] [--prefix P] [--tps 5] [--concurrency 4]

Prints ``ready`` once set up (token fetched), waits for a line on stdin, makes ``count`` lookups
and prints one JSON line: ``{"requests", "errors", "elapsed"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from ccbb.limiter import RedisRateLimiter
from scanner.creators_api import ProductChecker
from scanner.ratelimit import LocalRateLimiter, RateLimiter
from scanner.settings import AmazonAccess

CREDENTIAL_ID = "shared"
SECRET = "shared-secret"
TAG = "good-20"
ASINS = ["B000000001", "B000000002", "B000000005"]


def shared_catalogue(tps: float) -> dict[str, Any]:
    """The sandbox's catalogue for these workers: one credential, "shared", limited to
    ``tps`` requests per second, and the three products they look up."""
    return {
        "credentials": [
            {
                "credential_id": "shared",
                "credential_secret": "shared-secret",
                "version": "2.1",
                "partner_tags": ["good-20"],
                "marketplaces": ["www.amazon.com"],
                "tps": tps,
            }
        ],
        "items": {
            "www.amazon.com": {
                "B000000001": {"title": "Kettle", "availability": "IN_STOCK"},
                "B000000002": {"title": "Toaster", "availability": "OUT_OF_STOCK"},
                "B000000005": {"title": "Mug", "availability": "IN_STOCK_SCARCE"},
            }
        },
    }


class Recording:
    """The limiter, noting when each request was let go (CLOCK_MONOTONIC: one clock for every
    process of the machine), so a test can check the pacer's promise where it is made."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self.times: list[float] = []

    async def acquire(self) -> None:
        await self.inner.acquire()
        self.times.append(time.monotonic())


async def run(args: argparse.Namespace) -> dict[str, object]:
    access = AmazonAccess(
        credential_id=CREDENTIAL_ID,
        credential_secret=SECRET,
        partner_tag=TAG,
        api_host=args.api_host,
        auth_endpoint=args.auth_endpoint,
        tps=args.tps,
        retries=0,  # every attempt shows in the sandbox's record: nothing hides a 429
    )
    redis = Redis.from_url(args.redis_url) if args.limiter == "redis" else None
    limiter: RateLimiter
    if redis is not None:
        limiter = RedisRateLimiter.for_access(redis, access, prefix=args.prefix)
    else:
        limiter = LocalRateLimiter(access.tps)
    recording = Recording(limiter)
    try:
        async with ProductChecker(access, recording) as checker:
            await checker.verify()
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            started = time.monotonic()
            remaining = iter(range(args.count))
            errors = 0

            async def lookups() -> None:
                nonlocal errors
                for n in remaining:
                    results = await checker.check([ASINS[n % len(ASINS)]])
                    errors += sum(1 for r in results if r.error)

            await asyncio.gather(*(lookups() for _ in range(args.concurrency)))
            return {
                "requests": checker.requests,
                "errors": errors,
                "elapsed": time.monotonic() - started,
                "acquired": recording.times,
            }
    finally:
        if redis is not None:
            await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-host", required=True)
    parser.add_argument("--auth-endpoint", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--limiter", choices=("redis", "local"), default="redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--prefix", default="ccbb:rate:")
    parser.add_argument("--tps", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
