"""ClickBank's Instant Notifications under load, as production runs them: ONE ``ccbb web``
process (uvicorn) on PostgreSQL and Redis, and ``ccbb worker`` processes applying them.

    .venv/bin/python bench/clickbank_bench.py [--database postgresql://postgres@127.0.0.1:5432/test]
        [--redis redis://127.0.0.1:6379/7] [--rate 200] [--seconds 20] [--burst 10000]

Targets (issue 12): ``POST /clickbank/ins`` answers with p99 ≤ 50 ms under 200 notifications/s
on one web process; a burst of 10,000 notifications (a ClickBank retry storm: a third of them
duplicates, in random order, refunds among them) ends with exactly the right ledger.

a) open-loop load at ``--rate`` notifications/s for ``--seconds`` (each request sent on its
   schedule, whatever the previous ones do, so a slow answer cannot hide the next ones' wait):
   p50/p99/max of the INS endpoint (decrypt, check, one INSERT, one arq enqueue), and
   side by side the same load on ``/healthz`` of the same process (one Redis PING: the
   server's floor), with the ratio;
b) the burst: 10,000 bodies sent by 64 connections as fast as they go, while two workers
   process them; then the ledger is checked against the truth computed here: every user's
   balance, one ledger row per payment and per refund, no event failed or left waiting.

Bodies are encrypted beforehand (as ClickBank does, with a fresh IV per delivery). It works in a
PostgreSQL schema of its own (dropped at the end) and a Redis queue of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import func, select

from store import clickbank as store_cb
from store import credits as store_credits
from store.db import make_engine, run_ddl, session_factory, url_in_schema
from store.migrate import upgrade
from store.models import User

ROOT = Path(__file__).resolve().parent.parent
VENDOR, SECRET = "benchvendor", "BENCHSECRET2026"
TARGET_P99_MS = 50.0
PACK_ITEM, PACK_CREDITS = "4", 10  # credits_10 in the bundled catalogue
PLAN_ITEM, PLAN_CREDITS = "1", 10  # plan_starter


def encrypt(payload: dict[str, Any]) -> bytes:
    key = hashlib.sha1(SECRET.encode()).hexdigest()[:32].encode()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(payload).encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = enc.update(plain) + enc.finalize()
    body = {"notification": base64.b64encode(data).decode(), "iv": base64.b64encode(iv).decode()}
    return json.dumps(body).encode()


def notification(kind: str, receipt: str, item: str, ref: str, when: str) -> dict[str, Any]:
    recurring = item == PLAN_ITEM
    line: dict[str, Any] = {"itemNo": item, "productTitle": f"item {item}", "recurring": recurring,
                            "accountAmount": 25.0, "quantity": 1, "lineItemType": "ORIGINAL"}  # fmt: skip
    if recurring:
        line["paymentPlan"] = {"nextPaymentDate": "2027-01-01T00:00:00+00:00"}
    return {
        "transactionTime": when, "receipt": receipt, "transactionType": kind, "vendor": VENDOR,
        "role": "VENDOR", "totalAccountAmount": 25.0, "currency": "USD", "lineItems": [line],
        "customer": {"billing": {"fullName": "Bench Buyer", "email": f"{ref}@bench.example"}},
        "vendorVariables": {"ccref": ref}, "version": 8.0, "attemptCount": 1,
    }  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([sys.executable, "-m", "ccbb.cli", *args], env=env, stdout=out,
                            stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip


async def wait_healthy(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not start")


async def seed_users(db_url: str, n: int) -> list[tuple[int, str]]:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            users = [User(email=f"u{i}@bench.example", password_hash="x") for i in range(n)]
            session.add_all(users)
            await session.commit()
            out = []
            for u in users:
                await session.refresh(u)
                assert u.id is not None
                ref = f"benchref{u.id:06d}{uuid.uuid4().hex[:12]}"
                session.add(store_cb.ClickbankCheckout(reference=ref, user_id=u.id, sku="x"))
                out.append((u.id, ref))
            await session.commit()
            return out
    finally:
        await engine.dispose()


# ---- a) paced load --------------------------------------------------------------------------


async def paced(
    url: str, bodies: list[bytes] | None, rate: float, seconds: float
) -> dict[str, Any]:
    n = int(rate * seconds)
    latencies: list[float] = []
    phases: dict[str, list[float]] = {}  # the server's own account (Server-Timing), by phase
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int, at: float) -> None:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            start = time.perf_counter()
            for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: again
                try:
                    if bodies is None:
                        async with http.get(url) as r:
                            await r.read()
                    else:
                        async with http.post(url, data=bodies[i % len(bodies)],
                                             headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                            await r.read()
                    break
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    if attempt == 2:
                        statuses[0] += 1
                        return
            latencies.append((time.perf_counter() - start) * 1000)
            statuses[r.status] += 1
            for part in r.headers.get("Server-Timing", "").split(","):
                name, _, dur = part.strip().partition(";dur=")
                if dur:
                    phases.setdefault(name, []).append(float(dur))

        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i, t0 + i / rate) for i in range(n)))
        took = time.perf_counter() - t0
    latencies.sort()
    return {
        "n": n, "rate": n / took, "statuses": dict(statuses), "load": os.getloadavg(),
        "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
        "max": latencies[-1],
        "phases": {name: (statistics.median(v), sorted(v)[int(len(v) * 0.99) - 1], max(v))
                   for name, v in phases.items()},
    }  # fmt: skip


async def interleaved(
    targets: list[tuple[str, list[bytes] | None]], rate: float, seconds: float, window: float
) -> list[dict[str, Any]]:
    """The same open-loop load on several URLs taking turns, ``window`` seconds each, for
    ``seconds`` each in all: every URL meets the same neighbours (on a shared VM the load
    changes from one second to the next, so two runs one after the other are not comparable)."""
    per_window = max(int(rate * window), 1)
    n = int(rate * seconds) * len(targets)
    got: list[dict[str, Any]] = [{"lat": [], "phases": {}, "statuses": Counter()} for _ in targets]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(i: int, at: float) -> None:
            which = (i // per_window) % len(targets)
            url, bodies = targets[which]
            out = got[which]
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            start = time.perf_counter()
            try:
                if bodies is None:
                    async with http.get(url) as r:
                        await r.read()
                else:
                    async with http.post(url, data=bodies[i % len(bodies)],
                                         headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                        await r.read()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                out["statuses"][0] += 1
                return
            out["lat"].append((time.perf_counter() - start) * 1000)
            out["statuses"][r.status] += 1
            for part in r.headers.get("Server-Timing", "").split(","):
                name, _, dur = part.strip().partition(";dur=")
                if dur:
                    out["phases"].setdefault(name, []).append(float(dur))

        t0 = time.perf_counter() + 0.2
        await asyncio.gather(*(one(i, t0 + i / rate) for i in range(n)))
    results = []
    for out in got:
        lat = sorted(out["lat"])
        results.append({
            "n": len(lat), "statuses": dict(out["statuses"]), "load": os.getloadavg(),
            "p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1], "max": lat[-1],
            "phases": {name: (statistics.median(v), sorted(v)[int(len(v) * 0.99) - 1], max(v))
                       for name, v in out["phases"].items()},
        })  # fmt: skip
    return results


# ---- b) the burst ---------------------------------------------------------------------------


def burst_bodies(
    users: list[tuple[int, str]], total: int, seed: int
) -> tuple[list[bytes], dict[int, int], int]:
    """``total`` bodies: two thirds distinct notifications (pack sales, plan sales, a tenth of
    the sales refunded), one third redeliveries of them; shuffled. Returns the bodies, every
    user's expected balance and the number of distinct notifications."""
    rng = random.Random(seed)
    unique_n = total - total // 3
    distinct: list[dict[str, Any]] = []
    expected: dict[int, int] = dict.fromkeys((u for u, _ in users), 0)
    i = 0
    while len(distinct) < unique_n:
        user_id, ref = users[i % len(users)]
        plan = i % 5 == 0
        item, credits = (PLAN_ITEM, PLAN_CREDITS) if plan else (PACK_ITEM, PACK_CREDITS)
        receipt = f"B{i:07d}"
        distinct.append(
            notification("SALE", receipt, item, ref, f"2026-12-01T{i % 24:02d}:00:00+00:00")
        )
        expected[user_id] += credits
        if i % 10 == 3 and len(distinct) < unique_n:  # refunded later (the balance allows it)
            distinct.append(notification("RFND", receipt, item, ref, "2026-12-02T00:00:00+00:00"))
            expected[user_id] -= credits
        i += 1
    bodies = [encrypt(n) for n in distinct]
    for n in rng.choices(distinct, k=total - len(distinct)):
        n = {**n, "attemptCount": rng.randint(2, 5)}
        bodies.append(encrypt(n))  # a fresh IV: the same notification, other bytes
    rng.shuffle(bodies)
    return bodies, expected, len(distinct)


async def blast(url: str, bodies: list[bytes], connections: int) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                try:
                    async with http.post(url, data=body,
                                         headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                        await r.read()
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    queue.append(body)  # as ClickBank would: delivered again
                    statuses[0] += 1
                    continue
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[r.status] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        took = time.perf_counter() - t0
    latencies.sort()
    return {"n": len(bodies), "seconds": took, "rate": len(bodies) / took,
            "statuses": dict(statuses), "p99": latencies[int(len(latencies) * 0.99) - 1]}  # fmt: skip


async def ledger_truth(db_url: str) -> dict[str, Any]:
    engine = make_engine(db_url)
    events, ledger, accounts = (
        store_cb.EVENT_TABLE, store_credits.LedgerEntry.__table__, store_credits.CreditAccount.__table__,  # type: ignore[attr-defined]
    )  # fmt: skip
    try:
        async with engine.connect() as conn:
            states = dict(
                (
                    await conn.execute(
                        select(events.c.state, func.count()).group_by(events.c.state)
                    )
                ).all()
            )
            count = (await conn.execute(select(func.count()).select_from(events))).scalar_one()
            deliveries = (await conn.execute(select(func.sum(events.c.deliveries)))).scalar_one()
            rows = (await conn.execute(select(func.count()).select_from(ledger))).scalar_one()
            balances = dict(
                (await conn.execute(select(accounts.c.user_id, accounts.c.balance))).all()
            )
        return {"states": {str(k): int(v) for k, v in states.items()}, "events": int(count),
                "deliveries": int(deliveries or 0), "rows": int(rows),
                "balances": {int(k): int(v) for k, v in balances.items()}}  # fmt: skip
    finally:
        await engine.dispose()


def run(args: argparse.Namespace, db_url: str, tmp: Path) -> None:
    upgrade(db_url)
    users = asyncio.run(seed_users(db_url, args.users))
    queue = f"ccbb:bench:{uuid.uuid4().hex}"
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": args.redis, "CCBB_QUEUE": queue,
           "CCBB_DATA_DIR": str(tmp), "CCBB_CLICKBANK_VENDOR": VENDOR,
           "CCBB_CLICKBANK_SECRET_KEY": SECRET, "CCBB_SECRET_KEY": "bench-" + uuid.uuid4().hex,
           "CCBB_MAX_SCANS": "16"}  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start(["web", "--port", str(port)], env, tmp / "web.log")
    procs = [web]
    try:
        asyncio.run(wait_healthy(base))
        print(f"one `ccbb web` process at {base}; {len(users)} users with checkout references")
        # a) — the load bodies: distinct sales (each one new to the endpoint)
        load_bodies = [encrypt(notification("SALE", f"L{i:07d}", PACK_ITEM, users[i % len(users)][1],
                                            "2026-11-30T00:00:00+00:00"))
                       for i in range(int(args.rate * args.seconds) if "a" in args.only else 0)]  # fmt: skip
        asyncio.run(paced(base + "/healthz", None, args.rate, 2))  # warm up
        rows = []
        for label, url, bodies in [] if "a" not in args.only else (("/healthz (baseline)", base + "/healthz", None),
                                   ("POST /clickbank/ins", base + "/clickbank/ins", load_bodies)):  # fmt: skip
            cpu = cpu_seconds(web.pid)
            r = asyncio.run(paced(url, bodies, args.rate, args.seconds))
            r["cpu_ms"] = (cpu_seconds(web.pid) - cpu) * 1000 / r["n"]
            rows.append((label, r))
            for name, (p50, p99, top) in r["phases"].items():
                print(
                    f"   in the server, {name:<6} p50 {p50:6.2f} ms, p99 {p99:7.2f} ms, max {top:7.2f} ms"
                )
            print(f"a) {label:<22} {r['n']:>6} requests at {r['rate']:6.1f}/s (load {r['load'][0]:.1f}): p50 {r['p50']:6.2f} ms, "
                  f"p99 {r['p99']:6.2f} ms, max {r['max']:7.2f} ms, {r['cpu_ms']:.2f} CPU-ms each in the server, statuses {r['statuses']}")  # fmt: skip
        if rows:
            ins_p99, base_p99 = rows[1][1]["p99"], rows[0][1]["p99"]
            cpu = rows[1][1]["cpu_ms"]
            print(f"   the server's CPU per notification: {cpu:.2f} ms, {rows[1][1]['cpu_ms'] / rows[0][1]['cpu_ms']:.2f}x "
                  f"/healthz's: one core serves {1000 / cpu:,.0f} notifications/s")  # fmt: skip
            print(f"   INS p99 {ins_p99:.2f} ms = {TARGET_P99_MS / ins_p99:.2f}x under the 50 ms target; "
                  f"{ins_p99 / base_p99:.2f}x /healthz's p99")  # fmt: skip
        if rows and args.interleave:
            more = [encrypt(notification("SALE", f"M{i:07d}", PACK_ITEM, users[i % len(users)][1],
                                         "2026-11-30T00:00:00+00:00"))
                    for i in range(len(load_bodies))]  # fmt: skip
            load_bodies += more
            pair = asyncio.run(interleaved(
                [(base + "/healthz", None), (base + "/clickbank/ins", more)],
                args.rate, args.seconds, args.interleave,
            ))  # fmt: skip
            for label, r in zip(("/healthz", "POST /clickbank/ins"), pair, strict=True):
                print(f"a2) taking turns every {args.interleave:g} s, {label:<20} {r['n']:>6} at "
                      f"{args.rate:g}/s (load {r['load'][0]:.1f}): p50 {r['p50']:6.2f} ms, "
                      f"p99 {r['p99']:7.2f} ms, max {r['max']:7.2f} ms, statuses {r['statuses']}")  # fmt: skip
                for name, (p50, p99, top) in r["phases"].items():
                    print(f"    in the server, {name:<6} p50 {p50:6.2f} ms, p99 {p99:7.2f} ms, "
                          f"max {top:7.2f} ms")  # fmt: skip
            print(
                f"    INS p99 = {pair[1]['p99'] / pair[0]['p99']:.2f}x /healthz's p99, same seconds"
            )
        # the load's sales processed by the workers too
        for i in range(2):
            procs.append(start(["worker"], env, tmp / f"worker{i}.log"))
        # b)
        bodies, expected, distinct = burst_bodies(
            users, args.burst if "b" in args.only else 0, seed=12
        )
        for u in expected:
            expected[u] += PACK_CREDITS * sum(
                1 for i in range(len(load_bodies)) if users[i % len(users)][0] == u
            )
        print(f"b) burst: {len(bodies):,} bodies, {distinct:,} distinct notifications "
              f"({len(bodies) - distinct:,} redeliveries), shuffled")  # fmt: skip
        if not bodies:
            return
        r = asyncio.run(blast(base + "/clickbank/ins", bodies, 64))
        print(
            f"   accepted in {r['seconds']:.1f} s ({r['rate']:.0f}/s, p99 {r['p99']:.1f} ms), statuses {r['statuses']}"
        )
        t0 = time.perf_counter()
        total_events = distinct + len(load_bodies)
        while True:
            truth = asyncio.run(ledger_truth(db_url))
            settled = truth["states"].get("done", 0)
            if settled >= total_events or time.perf_counter() - t0 > args.timeout:
                break
            time.sleep(1)
        took = time.perf_counter() - t0
        print(
            f"   processed by 2 workers in {took:.1f} s after the burst: states {truth['states']}"
        )
        exact = {u: truth["balances"].get(u, 0) for u in expected} == expected
        # one ledger row per sale and per refund, nothing more
        ok = (
            exact
            and truth["rows"] == total_events
            and truth["events"] == total_events
            and truth["deliveries"] >= len(bodies) + len(load_bodies)  # + any resent after a reset
            and truth["states"].get("done", 0) == total_events
        )
        print(f"   events {truth['events']:,} (expected {total_events:,}), deliveries counted "
              f"{truth['deliveries']:,}, ledger rows {truth['rows']:,} (expected {total_events:,}), "
              f"every balance exact: {exact}")  # fmt: skip
        print(f"   ledger {'EXACT' if ok else 'WRONG'}")
        if args.show_logs:
            for log in sorted(tmp.glob("worker*.log")):
                print(f"--- {log.name} (tail)\n{log.read_text()[-4000:]}")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        )
        if not ok:
            raise SystemExit(1)
    except BaseException:
        print("--- web.log (tail)\n" + (tmp / "web.log").read_text()[-3000:])
        raise
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--only", default="ab", help="a: the paced load, b: the burst")
    parser.add_argument("--show-logs", action="store_true", help="print the workers' logs")
    parser.add_argument("--interleave", type=float, default=0.5, metavar="SECONDS",
                        help="then /healthz and the INS taking turns in windows of SECONDS "
                             "(0: not)")  # fmt: skip
    args = parser.parse_args()
    schema = f"ccbb_bench_cb_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.database, f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(args, url_in_schema(args.database, schema), Path(tmp))
    finally:
        asyncio.run(run_ddl(args.database, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
