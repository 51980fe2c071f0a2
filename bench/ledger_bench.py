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
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine import make_url

from store import credits, users
from store.credits import ACCOUNT, LEDGER, USER
from store.db import async_url, make_engine, masked_url, run_ddl, session_factory, url_in_schema
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
                   mode: str) -> tuple[int, float, float]:  # fmt: skip
    engine = make_engine(url, pool_size=tasks, max_overflow=0)
    sessions = session_factory(engine)
    done = 0
    tag = uuid.uuid4().hex
    try:
        backends: list[int] = []

        async def connect() -> None:
            async with engine.connect() as conn:
                backends.append(
                    int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())
                )
                await asyncio.sleep(0.5)  # hold it: each task gets a connection of its own

        raw = None
        if mode == "raw":  # the spend statement alone, on asyncpg, autocommit: the floor
            raw = await _raw_pool(url, tasks)
            held = [await raw.acquire() for _ in range(tasks)]
            backends = [c.get_server_pid() for c in held]
            for c in held:
                await raw.release(c)
        else:
            await asyncio.gather(*(connect() for _ in range(tasks)))  # the pool full first
        await asyncio.to_thread(barrier.wait, 120)  # every process ready: all start together
        stop_at = time.time() + seconds
        cpu0, server0 = time.process_time(), _cpu_of(backends)

        async def run(n: int) -> None:
            nonlocal done
            i = 0
            while time.time() < stop_at:
                user_id = user_ids[(n + i * tasks) % len(user_ids)]
                key = f"bench:{tag}:{n}:{i}"
                if raw is not None:
                    sql, names = _RAW
                    values = {"p_user_id": user_id, "p_delta": -1, "p_need": 1, "p_now": utcnow(),
                              "p_kind": "scan", "p_source": "scan",
                              "p_comment": "Scan #1 of example.com", "p_external_id": None,
                              "p_key": key}  # fmt: skip
                    await raw.fetchrow(sql, *[values[name] for name in names])
                    done += 1
                    i += 1
                    continue
                async with sessions() as session:
                    if mode == "store":
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
        cpu = time.process_time() - cpu0
        server = _cpu_of(backends) - server0
        if raw is not None:
            await raw.close()
    finally:
        await engine.dispose()
    return done, cpu, server


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL backends ``pids`` used so far (/proc: the
    server runs on this machine)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in set(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def spender(url: str, user_ids: list[int], tasks: int, barrier: Any, seconds: float,
            mode: str) -> tuple[int, float, float]:  # fmt: skip
    return asyncio.run(_spender(url, user_ids, tasks, barrier, seconds, mode))


def _raw_sql() -> tuple[str, tuple[str, ...]]:
    compiled = credits._FAST.compile(dialect=pg_asyncpg.dialect())
    return str(compiled), tuple(compiled.positiontup or ())


_RAW = _raw_sql()


async def _raw_pool(url: str, size: int) -> Any:
    from store.db import _split_pg_options

    sa_url, server_settings = _split_pg_options(make_url(async_url(url)))
    _, kwargs = pg_asyncpg.dialect().create_connect_args(sa_url)
    for key in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        kwargs.pop(key, None)
    pool = await asyncpg.create_pool(min_size=size, max_size=size,
                                     server_settings=server_settings or None, **kwargs)  # fmt: skip
    return pool


# ---- the runs -------------------------------------------------------------------------------


def spends_per_second(url: str, user_ids: list[int], seconds: float, tasks: int,
                      mode: str) -> tuple[float, float]:  # fmt: skip
    """(spends per second measured, CPU milliseconds per spend: this client's and the
    database server's, from which what 2 idle cores would reach is estimated)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(PROCESSES, mp_context=ctx) as pool:
        barrier = manager.Barrier(PROCESSES + 1)
        shares = [user_ids[p::PROCESSES] or user_ids for p in range(PROCESSES)]
        futures = [pool.submit(spender, url, shares[p], tasks, barrier, seconds, mode)
                   for p in range(PROCESSES)]  # fmt: skip
        barrier.wait(120)
        results = [f.result() for f in futures]
    done = sum(r[0] for r in results)
    cpu = sum(r[1] + r[2] for r in results)
    return done / seconds, 1000 * cpu / max(1, done)


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
        ids = asyncio.run(setup(url, 3 * USERS + 2))
        many, one, heavy = ids[:USERS], ids[USERS], ids[USERS + 1]
        others = ids[USERS + 2 : 2 * USERS + 2]  # the baseline's rows go to users of their own
        floor_users = ids[2 * USERS + 2 :]
        print(f"database: {masked_url(args.url)} (schema {schema}); {PROCESSES} processes × "
              f"{args.tasks} concurrent spenders, {args.seconds:g} s each run")  # fmt: skip
        base, base_cpu = spends_per_second(url, others, args.seconds, args.tasks, "unguarded")
        ours, ours_cpu = spends_per_second(url, many, args.seconds, args.tasks, "store")
        single, single_cpu = spends_per_second(url, [one], args.seconds, args.tasks, "store")
        floor, floor_cpu = spends_per_second(url, floor_users, args.seconds, args.tasks, "raw")
        asyncio.run(check_sums(url, [*many, one, *floor_users]))
        cores = os.cpu_count() or 2
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {cores} cores during the runs")
        print()
        print(f"{'run':<46}{'spends/s':>9}{'vs base':>9}{'CPU ms/spend':>14}"
              f"{'idle-VM estimate':>18}")  # fmt: skip
        rows = (
            ("baseline: unguarded ledger inserts, 100 users", base, base_cpu),
            ("store.credits.revoke, 100 users", ours, ours_cpu),
            ("store.credits.revoke, 1 user (serialised)", single, single_cpu),
            ("the spend statement alone, raw asyncpg, 100 users", floor, floor_cpu),
        )
        for name, rate, cpu in rows:
            estimate = 1000 * cores / cpu
            print(f"{name:<46}{rate:>9,.0f}{rate / base:>8.2f}x{cpu:>14.2f}{estimate:>13,.0f} /s")
        print(f"target {TARGET_SPENDS:,.0f} spends/s across 100 users: measured "
              f"{ours / TARGET_SPENDS:.2f}x, idle-VM estimate {1000 * cores / ours_cpu / TARGET_SPENDS:.2f}x "
              "(CPU is the bound: client + server CPU per spend)")  # fmt: skip
        print(f"one user: {single / ours:.2f}x the 100-user rate; each spend holds the user's "
              f"row lock {1000 / single:.2f} ms (UPDATE to COMMIT), so that user's spends "
              "queue one behind another")  # fmt: skip
        print("balance == sum of the deltas for all 201 users spent from: yes")
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
