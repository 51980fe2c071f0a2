"""The credits ledger's speed on PostgreSQL, each figure next to a baseline:

1. **Spends across users**: ``store.credits.revoke`` (one credit, one transaction: the user's
   row lock, the ledger row and the balance row, commit) from 4 processes over 100 users.
   Target ≥ 2,000 spends/s. Baseline: the same processes inserting the same ledger rows with
   no lock and no balance (what the database costs without the guarantees).
2. **One user, serialised**: the same spends, all on one user (every spend waits for the row
   lock of the one before), next to the 100-user figure.
3. **The header's balance read**: ``web.reads.Reads`` running the user + balance query the
   header makes (one primary-key read). Target ≤ 1 ms. Baselines: the user alone (the read
   before credits existed) and the balance summed over the ledger (what the balance row
   spares), at 10,000 entries.

    python bench/ledger_bench.py [--url postgresql://postgres@127.0.0.1:5432/test] [--seconds 8]

It works in a schema of its own, dropped at the end: the database may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, func, insert, select

from store import credits, users
from store.credits import ACCOUNT, LEDGER, USER
from store.db import make_engine, masked_url, run_ddl, session_factory, url_in_schema
from store.migrate import upgrade
from store.models import utcnow
from web.auth import _USER_BY_ID
from web.reads import Reads

TARGET_SPENDS = 2000.0
TARGET_READ_MS = 1.0
PROCESSES = 4
USERS = 100


# ---- in each process -----------------------------------------------------------------------


async def _spender(url: str, user_ids: list[int], tasks: int, barrier: Any, seconds: float,
                   guarded: bool) -> int:  # fmt: skip
    engine = make_engine(url, pool_size=tasks, max_overflow=0)
    sessions = session_factory(engine)
    done = 0
    tag = uuid.uuid4().hex
    try:

        async def connect() -> None:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")

        await asyncio.gather(*(connect() for _ in range(tasks)))  # the pool full before the start
        await asyncio.to_thread(barrier.wait, 120)  # every process ready: all start together
        stop_at = time.time() + seconds

        async def run(n: int) -> None:
            nonlocal done
            i = 0
            while time.time() < stop_at:
                user_id = user_ids[(n + i * tasks) % len(user_ids)]
                key = f"bench:{tag}:{n}:{i}"
                async with sessions() as session:
                    if guarded:
                        await credits.revoke(
                            session, user_id=user_id, amount=1, kind="scan", source="scan",
                            comment="Scan #1 of example.com", idempotency_key=key,
                        )  # fmt: skip
                    else:
                        conn = await session.connection()
                        await conn.execute(
                            insert(LEDGER).values(
                                user_id=user_id, delta=-1, balance_after=0, shortfall=0,
                                kind="scan", source="scan", comment="Scan #1 of example.com",
                                idempotency_key=key, created_at=utcnow(),
                            )
                        )  # fmt: skip
                        await session.commit()
                done += 1
                i += 1

        await asyncio.gather(*(run(n) for n in range(tasks)))
    finally:
        await engine.dispose()
    return done


def spender(url: str, user_ids: list[int], tasks: int, barrier: Any, seconds: float,
            guarded: bool) -> int:  # fmt: skip
    return asyncio.run(_spender(url, user_ids, tasks, barrier, seconds, guarded))


# ---- the runs -------------------------------------------------------------------------------


def spends_per_second(url: str, user_ids: list[int], seconds: float, tasks: int,
                      guarded: bool) -> float:  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(PROCESSES, mp_context=ctx) as pool:
        barrier = manager.Barrier(PROCESSES + 1)
        shares = [user_ids[p::PROCESSES] or user_ids for p in range(PROCESSES)]
        futures = [pool.submit(spender, url, shares[p], tasks, barrier, seconds, guarded)
                   for p in range(PROCESSES)]  # fmt: skip
        barrier.wait(120)
        total = sum(f.result() for f in futures)
    return total / seconds


async def setup(url: str, count: int) -> list[int]:
    engine = make_engine(url)
    ids: list[int] = []
    try:
        async with session_factory(engine)() as session:
            for n in range(count):
                user = await users.create_user(
                    session, email=f"bench-{n}@example.com", password_hash="x"
                )
                assert user.id is not None
                await credits.grant(
                    session, user_id=user.id, amount=credits.MAX_AMOUNT, kind="grant",
                    source="admin", comment="bench", idempotency_key=f"bench-grant:{n}",
                )  # fmt: skip
                ids.append(user.id)
    finally:
        await engine.dispose()
    return ids


async def check_sums(url: str, user_ids: list[int]) -> None:
    """The balance equals the sum of the deltas, for every user (the guarded runs)."""
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session:
            for user_id in user_ids:
                balance = await credits.balance(session, user_id=user_id)
                assert balance == await credits.ledger_sum(session, user_id=user_id), user_id
    finally:
        await engine.dispose()


async def read_latency(url: str, user_id: int, heavy_user: int, n: int) -> dict[str, float]:
    """p50 / p95 in ms of the header's read and its baselines."""
    reads = Reads(url)
    await reads.start()
    user_only = select(USER).where(USER.c.id == bindparam("user_id"))
    ledger_sum = select(func.sum(LEDGER.c.delta)).where(LEDGER.c.user_id == bindparam("user_id"))
    out: dict[str, float] = {}
    try:
        for name, stmt, uid, count in (
            ("header: user + balance row", _USER_BY_ID, user_id, n),
            ("baseline: user alone", user_only, user_id, n),
            ("baseline: SUM over 10,000 ledger rows", ledger_sum, heavy_user, max(200, n // 10)),
        ):
            for _ in range(50):  # warm: the statement prepared, the pages cached
                await reads.rows(stmt, {"user_id": uid})
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                await reads.rows(stmt, {"user_id": uid})
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[f"{name} p50"] = statistics.median(times)
            out[f"{name} p95"] = times[int(len(times) * 0.95)]
    finally:
        await reads.close()
    return out


async def fill_ledger(url: str, user_id: int, rows: int) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(LEDGER),
                [{"user_id": user_id, "delta": 1, "balance_after": i + 1, "shortfall": 0,
                  "kind": "grant", "source": "bench", "comment": "", "idempotency_key":
                  f"fill:{user_id}:{i}", "created_at": utcnow()} for i in range(rows)],
            )  # fmt: skip
            await conn.execute(ACCOUNT.update().where(ACCOUNT.c.user_id == user_id)
                               .values(balance=rows))  # fmt: skip
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--tasks", type=int, default=8, help="concurrent spenders per process")
    parser.add_argument("--reads", type=int, default=5000)
    args = parser.parse_args()
    schema = f"ccbb_ledger_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.url, f'CREATE SCHEMA "{schema}"'))
    url = url_in_schema(args.url, schema)
    try:
        upgrade(url)
        ids = asyncio.run(setup(url, 2 * USERS + 2))
        many, one, heavy = ids[:USERS], ids[USERS], ids[USERS + 1]
        others = ids[USERS + 2 :]  # the baseline's rows go to users of their own
        print(f"database: {masked_url(args.url)} (schema {schema}); {PROCESSES} processes × "
              f"{args.tasks} concurrent spenders, {args.seconds:g} s each run")  # fmt: skip
        base = spends_per_second(url, others, args.seconds, args.tasks, guarded=False)
        ours = spends_per_second(url, many, args.seconds, args.tasks, guarded=True)
        single = spends_per_second(url, [one], args.seconds, args.tasks, guarded=True)
        asyncio.run(check_sums(url, [*many, one]))
        print()
        print(f"{'run':<52}{'spends/s':>10}{'vs baseline':>13}")
        print(f"{'baseline: unguarded ledger inserts, 100 users':<52}{base:>10,.0f}{1:>12.2f}x")
        print(f"{'store.credits.revoke, 100 users':<52}{ours:>10,.0f}{ours / base:>12.2f}x"
              f"   target {TARGET_SPENDS:,.0f}: {ours / TARGET_SPENDS:.2f}x")  # fmt: skip
        print(f"{'store.credits.revoke, 1 user (serialised)':<52}{single:>10,.0f}"
              f"{single / base:>12.2f}x   ({single / ours:.2f}x the 100-user rate; "
              f"{1000 / single:.2f} ms per spend holding the row lock)")  # fmt: skip
        print("balance == sum of the deltas for all 101 users: yes")
        asyncio.run(fill_ledger(url, heavy, 10_000))
        lat = asyncio.run(read_latency(url, one, heavy, args.reads))
        print()
        header = lat["header: user + balance row p95"]
        for name, value in lat.items():
            print(f"{name:<52}{value:>8.3f} ms")
        print(f"header read p95 {header:.3f} ms: target {TARGET_READ_MS:g} ms "
              f"({TARGET_READ_MS / header:.1f}x under); the user alone p95 "
              f"{lat['baseline: user alone p95']:.3f} ms, the ledger sum p95 "
              f"{lat['baseline: SUM over 10,000 ledger rows p95']:.3f} ms")  # fmt: skip
    finally:
        asyncio.run(run_ddl(args.url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
