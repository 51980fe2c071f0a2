"""Where the time of one ``POST /clickbank/ins`` goes, phase by phase, in-process on PostgreSQL
and Redis (one notification at a time, so each figure is that phase's own latency):

    .venv/bin/python bench/ins_phases.py [--database URL] [--redis URL] [-n 300]

- decrypt + parse the body (``billing.clickbank_ins.read_notification``);
- keep the raw event the way the endpoint did before: a SQLAlchemy session, pool checkout with
  pre-ping, BEGIN, the upsert, COMMIT (``store.clickbank.record_events``);
- the same upsert as ONE statement on a small asyncpg pool (autocommit: the statement is its
  own transaction), with ``synchronous_commit`` on, then off for that connection;
- a bare ``SELECT 1`` round trip on the asyncpg pool (the floor of any statement);
- the arq enqueue of the processing job (``ArqRedis.enqueue_job``).

p50 / p99 / max in milliseconds for each. Works in a schema of its own (dropped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from arq.connections import RedisSettings, create_pool

from bench.clickbank_bench import SECRET, VENDOR, encrypt, notification
from billing import clickbank_ins as ins
from store import clickbank as store_cb
from store.db import make_engine, run_ddl, session_factory, url_in_schema
from store.migrate import upgrade
from web.ins_store import InsStore


def values_of(n: ins.Notification, raw: str) -> dict[str, Any]:
    return {
        "key": n.key, "transaction_type": n.transaction_type, "receipt": n.receipt,
        "base_receipt": n.base_receipt, "role": n.role, "transaction_time": n.transaction_time,
        "raw": raw, "amount": n.total_account_amount, "currency": n.currency,
    }  # fmt: skip


async def timed(label: str, n: int, fn: Callable[[int], Awaitable[Any]]) -> None:
    for i in range(10):  # warm up
        await fn(-1 - i)
    took = []
    for i in range(n):
        t0 = time.perf_counter()
        await fn(i)
        took.append((time.perf_counter() - t0) * 1000)
    took.sort()
    p99 = took[max(int(len(took) * 0.99) - 1, 0)]
    print(f"{label:<58} p50 {statistics.median(took):7.3f} ms  p99 {p99:7.3f} ms  "
          f"max {took[-1]:7.3f} ms")  # fmt: skip


async def run(db_url: str, redis_url: str, n: int) -> None:
    bodies = [
        encrypt(notification("SALE", f"P{i:07d}", "4", "ref", "2026-11-30T00:00:00+00:00"))
        for i in range(-20, 4 * n)
    ]
    parsed = [ins.read_notification(b, secret=SECRET, vendor=VENDOR) for b in bodies]
    rows = iter([values_of(p, raw) for p, raw in parsed])

    await timed("decrypt + parse", n, lambda i: asyncio.sleep(0, ins.read_notification(
        bodies[i], secret=SECRET, vendor=VENDOR)))  # fmt: skip

    engine = make_engine(db_url)
    sessions = session_factory(engine)

    async def orm(_: int) -> None:
        async with sessions() as session:
            await store_cb.record_events(session, rows=[next(rows)])

    await timed("SQLAlchemy session: checkout+ping, BEGIN, upsert, COMMIT", n, orm)
    await engine.dispose()

    for durable in (True, False):
        store = InsStore(db_url, server_settings=None if durable else {"synchronous_commit": "off"})
        await store.start()

        async def one(_: int, store: InsStore = store) -> None:
            await store.record(next(rows))

        label = "on" if durable else "off"
        await timed(f"asyncpg, one upsert statement, synchronous_commit={label}", n, one)
        if durable:
            assert store.pool is not None
            pool = store.pool

            async def ping(_: int, pool: asyncpg.Pool = pool) -> None:
                await pool.fetchval("SELECT 1")

            await timed("asyncpg, SELECT 1 (a round trip)", n, ping)
        await store.close()

    redis = await create_pool(RedisSettings.from_dsn(redis_url),
                              default_queue_name=f"ccbb:phases:{uuid.uuid4().hex}")  # fmt: skip

    async def enqueue(i: int) -> None:
        await redis.enqueue_job("clickbank_event_job", i, _job_id=f"phases:{uuid.uuid4().hex}")

    await timed("arq enqueue_job", n, enqueue)
    await redis.flushdb()
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/4")
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()
    schema = f"ccbb_bench_phases_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.database, f'CREATE SCHEMA "{schema}"'))
    try:
        url = url_in_schema(args.database, schema)
        upgrade(url)
        asyncio.run(run(url, args.redis, args.n))
    finally:
        asyncio.run(run_ddl(args.database, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
