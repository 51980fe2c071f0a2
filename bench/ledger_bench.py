"""The credits ledger's speed on PostgreSQL, each figure next to a baseline:

1. **Spends across users**: ``store.credits.revoke`` (one credit, a transaction of its own: the
   user's row lock, the ledger row and the balance row) from 4 processes over 100 users, the
   way the web app spends (``writes``: the one-statement spend on a ``store.credits.Writes``
   pool, plain asyncpg in autocommit) next to the same call without the pool (``session``: the
   statement through a SQLAlchemy ``AsyncSession``, the path before the pool). Target ≥ 2,000
   spends/s. Baselines: the same processes inserting the same ledger rows with no lock and no
   balance (what the database costs without the guarantees), and the spend statement alone on
   raw asyncpg (the floor). For comparison, what queuing a scan costs
   (``store.scans.create_scan_spending_credit``: the user's lock, the active-scan count, the
   scan row and the spend in one session transaction).
2. **One user, serialised**: the same spends, all on one user (every spend waits for the row
   lock of the one before), both paths.
3. **The header's balance read**: ``web.reads.Reads`` running the session + user + balance
   query every dashboard page makes (``store.sessions.USER_BY_SESSION``, primary-key reads).
   Target ≤ 1 ms. Baselines: the same read without the balance (before credits existed) and
   the balance summed over the ledger (what the balance row spares), at 10,000 entries.

The ``session`` and ``writes`` runs are interleaved over ``--rounds`` rounds (the order swapped
each round): on a shared machine the load moves, and each round gives a ratio of two runs made
a few seconds apart. Medians are reported, with the load average before each run.

    python bench/ledger_bench.py [--url postgresql://postgres@127.0.0.1:5432/test] [--seconds 5]
                                 [--rounds 3]

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

from sqlalchemy import bindparam, func, insert, select

from store import credits, sessions, users
from store import scans as store_scans
from store.credits import ACCOUNT, LEDGER, USER
from store.db import (
    asyncpg_pool,
    compile_for_asyncpg,
    make_engine,
    masked_url,
    run_ddl,
    session_factory,
    url_in_schema,
)
from store.migrate import upgrade
from store.models import utcnow
from web.reads import Reads

TARGET_SPENDS = 2000.0
TARGET_READ_MS = 1.0
PROCESSES = 4
USERS = 100


# ---- in each process -----------------------------------------------------------------------


async def _spender(url: str, user_ids: list[int], tasks: int, barrier: Any, seconds: float,
                   mode: str) -> tuple[int, float, float]:  # fmt: skip
    engine = make_engine(url, pool_size=tasks, max_overflow=0)
    make_session = session_factory(engine)
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

        raw = writes = None
        if mode == "raw":  # the spend statement alone, on asyncpg, autocommit: the floor
            raw = await asyncpg_pool(url, min_size=tasks, max_size=tasks)
            backends = await _pids_of(raw, tasks)
        elif mode == "writes":  # the web app's: the pool as large as the spenders
            writes = credits.Writes(url, connections=tasks)
            await writes.start()
            assert writes.pool is not None
            backends = await _pids_of(writes.pool, tasks)
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
                async with make_session() as session:
                    if mode in ("session", "writes"):
                        await credits.revoke(
                            session, user_id=user_id, amount=1, kind="scan", source="scan",
                            comment="Scan #1 of example.com", idempotency_key=key,
                            writes=writes,
                        )  # fmt: skip
                    elif mode == "scan":  # what queuing a scan does: cap, credit, scan row
                        await store_scans.create_scan_spending_credit(
                            session, user_id=user_id, credits_enabled=True,
                            active_cap=1_000_000, site="https://example.com/",
                            marketplace="www.amazon.com", partner_tag="bench-20",
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
        if writes is not None:
            await writes.close()
    finally:
        await engine.dispose()
    return done, cpu, server


async def _pids_of(pool: Any, size: int) -> list[int]:
    """The server pids of ``size`` connections of the asyncpg ``pool`` (all held at once, so
    that they are different ones)."""
    held = [await pool.acquire() for _ in range(size)]
    pids = [c.get_server_pid() for c in held]
    for c in held:
        await pool.release(c)
    return pids


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


_RAW = compile_for_asyncpg(credits._FAST)


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
    engine = make_engine(url)
    session_id = uuid.uuid4().hex
    try:
        async with session_factory(engine)() as session:
            await sessions.create_session(session, session_id=session_id, user_id=user_id)
    finally:
        await engine.dispose()
    id_hash = sessions.hash_session_id(session_id)
    table = sessions.SESSION_TABLE
    before_credits = (  # the same read without the balance row
        select(*USER.c, table.c.expires_at.label("session_expires_at"))
        .select_from(table.join(USER, USER.c.id == table.c.user_id))
        .where(table.c.id_hash == bindparam("id_hash"))
    )
    ledger_sum = select(func.sum(LEDGER.c.delta)).where(LEDGER.c.user_id == bindparam("user_id"))
    reads = Reads(url)
    await reads.start()
    out: dict[str, float] = {}
    try:
        for name, stmt, params, count in (
            ("header: session + user + balance row", sessions.USER_BY_SESSION,
             {"id_hash": id_hash}, n),
            ("baseline: session + user (before credits)", before_credits, {"id_hash": id_hash}, n),
            ("baseline: SUM over 10,000 ledger rows", ledger_sum, {"user_id": heavy_user},
             max(200, n // 10)),
        ):  # fmt: skip
            for _ in range(50):  # warm: the statement prepared, the pages cached
                await reads.rows(stmt, params)
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                found = await reads.rows(stmt, params)
                times.append((time.perf_counter() - t0) * 1000)
            assert found, name
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
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved session/writes pairs")
    parser.add_argument("--tasks", type=int, default=8, help="concurrent spenders per process")
    parser.add_argument("--reads", type=int, default=5000)
    args = parser.parse_args()
    schema = f"ccbb_ledger_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.url, f'CREATE SCHEMA "{schema}"'))
    url = url_in_schema(args.url, schema)
    cores = os.cpu_count() or 2
    try:
        upgrade(url)
        ids = asyncio.run(setup(url, 4 * USERS + 2))
        many, one, heavy = ids[:USERS], ids[USERS], ids[USERS + 1]
        others = ids[USERS + 2 : 2 * USERS + 2]  # the baseline's rows go to users of their own
        floor_users = ids[2 * USERS + 2 : 3 * USERS + 2]
        scan_users = ids[3 * USERS + 2 :]
        print(f"database: {masked_url(args.url)} (schema {schema}); {PROCESSES} processes × "
              f"{args.tasks} concurrent spenders, {args.seconds:g} s each run, "
              f"{args.rounds} rounds")  # fmt: skip
        runs: dict[str, list[tuple[float, float, float]]] = {}  # name: [(rate, cpu, load)]

        def run(name: str, users_of_run: list[int], mode: str) -> None:
            load = os.getloadavg()[0]
            rate, cpu = spends_per_second(url, users_of_run, args.seconds, args.tasks, mode)
            runs.setdefault(name, []).append((rate, cpu, load))
            print(f"  {name:<52}{rate:>8,.0f}/s {cpu:>6.2f} CPU ms/spend  (load {load:.1f})")

        pairs = [("session, 100 users", many, "session"), ("writes, 100 users", many, "writes"),
                 ("session, 1 user", [one], "session"), ("writes, 1 user", [one], "writes")]  # fmt: skip
        for r in range(args.rounds):
            print(f"round {r + 1}")
            run("baseline: unguarded inserts, 100 users", others, "unguarded")
            for i in (0, 2):  # before/after pairs, the order swapped every round
                first, second = (pairs[i], pairs[i + 1]) if r % 2 == 0 else (pairs[i + 1], pairs[i])
                run(*first)
                run(*second)
            run("floor: the statement on raw asyncpg, 100 users", floor_users, "raw")
            run("a scan queued (cap + credit + scan row), 100 users", scan_users, "scan")
        asyncio.run(check_sums(url, [*many, one, *floor_users, *scan_users]))
        print()
        print(f"medians of {args.rounds} rounds; the idle-VM estimate is {cores} cores over the "
              "CPU a spend costs (client processes + PostgreSQL backends)")  # fmt: skip
        base = statistics.median(
            rate for rate, _, _ in runs["baseline: unguarded inserts, 100 users"]
        )
        print(
            f"{'run':<52}{'spends/s':>9}{'vs base':>9}{'CPU ms':>8}{'idle-VM est.':>14}{'load':>11}"
        )
        medians: dict[str, tuple[float, float]] = {}
        for name, values in runs.items():
            rate = statistics.median(v[0] for v in values)
            cpu = statistics.median(v[1] for v in values)
            loads = [v[2] for v in values]
            medians[name] = (rate, cpu)
            print(f"{name:<52}{rate:>9,.0f}{rate / base:>8.2f}x{cpu:>8.2f}"
                  f"{1000 * cores / cpu:>10,.0f} /s{min(loads):>6.1f}–{max(loads):.1f}")  # fmt: skip
        for who in ("100 users", "1 user"):
            ratios = [w[0] / s[0] for s, w in zip(runs[f"session, {who}"], runs[f"writes, {who}"],
                                                   strict=True)]  # fmt: skip
            cpu_ratios = [s[1] / w[1] for s, w in zip(runs[f"session, {who}"],
                                                      runs[f"writes, {who}"], strict=True)]  # fmt: skip
            print(f"writes / session, {who}: {statistics.median(ratios):.2f}x the rate "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}), "
                  f"{statistics.median(cpu_ratios):.2f}x less CPU per spend")  # fmt: skip
        rate, cpu = medians["writes, 100 users"]
        print(f"target {TARGET_SPENDS:,.0f} spends/s across 100 users, the production path "
              f"(writes): measured {rate / TARGET_SPENDS:.2f}x, idle-VM estimate "
              f"{1000 * cores / cpu / TARGET_SPENDS:.2f}x")  # fmt: skip
        for path in ("session", "writes"):
            single = medians[f"{path}, 1 user"][0]
            print(f"one user, {path}: {single:,.0f}/s, {single / medians[f'{path}, 100 users'][0]:.2f}x"
                  f" the 100-user rate; the user's row lock is held {1000 / single:.2f} ms a spend "
                  "(the spends of one user queue one behind another)")  # fmt: skip
        print(f"balance == sum of the deltas for all {3 * USERS + 1} users "
              "spent from: yes")  # fmt: skip
        asyncio.run(fill_ledger(url, heavy, 10_000))
        lat = asyncio.run(read_latency(url, one, heavy, args.reads))
        print(f"\nreads (load {os.getloadavg()[0]:.1f})")
        for name, value in lat.items():
            print(f"{name:<52}{value:>8.3f} ms")
        header = lat["header: session + user + balance row p95"]
        print(f"header read p95 {header:.3f} ms: target {TARGET_READ_MS:g} ms "
              f"({header / TARGET_READ_MS:.2f}x the target)")  # fmt: skip
    finally:
        asyncio.run(run_ddl(args.url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
