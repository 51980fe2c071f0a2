"""Progress reads: what the dashboard does every 15 s per open scan. The worker publishes
progress to a Redis hash (one HGETALL); the baseline reads the same counters from the scan's
database row, side by side.

    .venv/bin/python bench/progress_bench.py [--redis redis://127.0.0.1:6379/14]
        [--database postgresql://postgres@127.0.0.1:5432/test] [--reads 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid

from redis.asyncio import Redis
from sqlalchemy import text

from ccbb.jobs import PROGRESS_KEY, progress_fields
from scanner.crawl import Progress
from store.db import make_engine


def ms(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--reads", type=int, default=5000)
    args = parser.parse_args()

    redis = Redis.from_url(args.redis)
    key = PROGRESS_KEY.format(f"bench-{uuid.uuid4().hex}")
    await redis.hset(
        key, mapping=progress_fields(Progress("crawling", 1234, 5000, 321, 120), "running")
    )  # type: ignore[misc]
    engine = make_engine(args.database)
    table = f"progress_bench_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (id int primary key, state text, phase text, "
                                "pages_crawled int, pages_discovered int, products_found int, "
                                "products_checked int)"))  # fmt: skip
        await conn.execute(
            text(f"INSERT INTO {table} VALUES (1, 'running', 'crawling', 1234, 5000, 321, 120)")
        )

    redis_times: list[float] = []
    db_times: list[float] = []
    try:
        for _ in range(args.reads):
            t0 = time.perf_counter()
            await redis.hgetall(key)
            redis_times.append(time.perf_counter() - t0)
        async with engine.connect() as conn:
            query = text(f"SELECT state, phase, pages_crawled, pages_discovered, products_found, "
                         f"products_checked FROM {table} WHERE id = 1")  # fmt: skip
            for _ in range(args.reads):
                t0 = time.perf_counter()
                (await conn.execute(query)).one()
                db_times.append(time.perf_counter() - t0)
    finally:
        await redis.delete(key)
        await redis.aclose()
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {table}"))
        await engine.dispose()

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.reads:,} sequential reads each\n"
    )
    print("| read | p50 | p95 | p99 | target | ratio (p95) |\n|---|---|---|---|---|---|")
    r95 = ms(redis_times, 95)
    d95 = ms(db_times, 95)
    print(
        f"| Redis HGETALL (what the app does) | {ms(redis_times, 50):.3f} ms | {r95:.3f} ms | "
        f"{ms(redis_times, 99):.3f} ms | ≤ 2 ms | {r95 / 2:.2f}× target |"
    )
    print(
        f"| baseline: SELECT of the scan row | {ms(db_times, 50):.3f} ms | {d95:.3f} ms | "
        f"{ms(db_times, 99):.3f} ms |  | {d95 / r95:.1f}× slower than Redis |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
