"""The affiliate program under load, as production runs it: ONE ``ccbb web`` process (uvicorn)
on PostgreSQL and Redis.

    .venv/bin/python bench/affiliate_bench.py [--database postgresql://postgres@127.0.0.1:5432/test]
        [--redis redis://127.0.0.1:6379/3] [--seconds 10] [--connections 32] [--samples 60]
        [--only ab]

Targets (issue #13): a) the referral redirect ``/r/REFID`` serves ≥ 2,000 requests/s on one web
process; b) the statistics of an affiliate with 100,000 visits and 5,000 customers over a year
render in ≤ 200 ms p95.

a) ``/r/REFID`` and ``/?ref=REFID`` in requests/s (wrk if installed, else the multi-process
   aiohttp client of bench/web_bench.py), side by side with ``/healthz`` and a static file of
   the same server (its ceiling). Afterwards the visits counted in the database must equal
   the redirects served (nothing lost under load).
b) ``/affiliate/stats`` over 365 days, its CSV and ``GET /api/v1/affiliate/stats``: p50/p95
   of sequential requests, side by side with ``/healthz`` and the 30-day default page. The data:
   one affiliate with 100,000 visits over the year (its per-day counters), 5,000 referred
   customers signed up through the year, each a sale and monthly rebills until they stop
   (~30,000 commissions, some refunded), among 20 other affiliates with 100,000 more.

It works in a PostgreSQL schema of its own (dropped at the end) and deletes its Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from affiliates import commissions as cm
from affiliates import rules
from bench.web_bench import Load, free_port, load, pct
from store import affiliates as store_aff
from store import tokens as store_tokens
from store import users as store_users
from store.db import make_engine, run_ddl, session_factory, url_in_schema
from store.migrate import upgrade
from web.auth import hash_password

ROOT = Path(__file__).resolve().parent.parent
REDIRECT_TARGET = 2_000.0  # requests/s
STATS_TARGET_MS = 200.0  # p95
EMAIL, PASSWORD = "affiliate@bench.example", "a bench password 123"
RATE = Decimal("0.30")
PRICES = (Decimal("19.00"), Decimal("19.95"), Decimal("49.00"))


@dataclass
class Seeded:
    ref_id: str
    token: str
    commissions: int
    customers: int
    visits: int


async def _copy(raw: object, table: str, records: list[tuple[object, ...]], columns: list[str],
                schema: str) -> None:  # fmt: skip
    await raw.copy_records_to_table(  # type: ignore[attr-defined]
        table, records=records, columns=columns, schema_name=schema
    )


def _commissions(
    rng: random.Random, affiliate_id: int, customers: list[int], start: datetime, now: datetime
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(referrals, commissions) of ``customers``: each signs up on a day of the year, buys
    within hours, then rebills monthly until churning (mean ~6 months); 3 % are refunded."""
    referrals: list[tuple[object, ...]] = []
    rows: list[tuple[object, ...]] = []
    span = (now - start).total_seconds()
    for uid in customers:
        signed = start + timedelta(seconds=rng.random() * span)
        referrals.append((uid, affiliate_id, signed - timedelta(hours=2), signed, False, ""))
        price = rng.choice(PRICES)
        t = signed + timedelta(hours=rng.random() * 48)
        kind = "sale"
        n = 0
        while t < now:
            key = f"bench:{affiliate_id}:{uid}:{n}"
            receipt = f"R{uid:07d}{n:03d}"
            earned = cm.commission(price, RATE)
            rows.append((key, affiliate_id, uid, kind, receipt, t, t + timedelta(days=7), price,
                         RATE, earned, False, "", now))  # fmt: skip
            if rng.random() < 0.03:
                rt = t + timedelta(days=rng.random() * 6)
                if rt < now:
                    rows.append((f"{key}:r", affiliate_id, uid, "reversal", receipt, rt, rt,
                                 -price, RATE, -earned, False, "RFND", now))  # fmt: skip
                break
            if rng.random() < 1 / 6:
                break
            kind, n, t = "rebill", n + 1, t + timedelta(days=30)
    return referrals, rows


async def seed(url: str, schema: str, customers: int, visits: int, others: int) -> Seeded:
    rng = random.Random(13)
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        async with sessions() as s:
            owner = await store_users.create_user(
                s, email=EMAIL, password_hash=hash_password(PASSWORD)
            )
            assert owner.id is not None
            aff = await store_aff.create_affiliate(
                s, user_id=owner.id, ref_id=rules.new_ref_id(), paypal_email="pp@bench.example",
                website="https://bench.example/",
            )  # fmt: skip
            _, token = await store_tokens.create_token(s, user_id=owner.id, name="bench")
        assert aff.id is not None
        password_hash = hash_password("customers share one hash")
        async with engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            total = customers + others * (customers // 5)
            await _copy(raw, "user", [(f"c{i}@bench.example", False, password_hash, now,
                                       str(uuid.uuid4())) for i in range(total)],
                        ["email", "is_admin", "password_hash", "created_at", "public_id"], schema)  # fmt: skip
            ids = [r[0] for r in await raw.fetch(
                "SELECT id FROM \"user\" WHERE email LIKE 'c%@bench.example' ORDER BY id")]  # fmt: skip
            mine, rest = ids[:customers], ids[customers:]
            affiliates = [(aff.id, mine)]
            for k in range(others):
                await raw.execute(
                    "INSERT INTO affiliate (user_id, ref_id, paypal_email, website, status, "
                    "status_reason, joined_at, status_at) VALUES ($1, $2, 'o@x.example', '', "
                    "'active', '', $3, $3)", rest[k], rules.new_ref_id(), now,
                )  # fmt: skip
                other_id = await raw.fetchval("SELECT max(id) FROM affiliate")
                affiliates.append(
                    (other_id, rest[k * (customers // 5) : (k + 1) * (customers // 5)])
                )
            commissions = 0
            for affiliate_id, people in affiliates:
                referrals, rows = _commissions(rng, affiliate_id, people, start, now)
                await _copy(raw, "affiliate_referral", referrals,
                            ["user_id", "affiliate_id", "landed_at", "signed_up_at",
                             "self_referral", "flag_reason"], schema)  # fmt: skip
                await _copy(raw, "affiliate_commission", rows,
                            ["key", "affiliate_id", "customer_user_id", "kind", "receipt",
                             "transaction_time", "due_at", "payment_amount", "rate", "amount",
                             "flagged", "note", "created_at"], schema)  # fmt: skip
                if affiliate_id == aff.id:
                    commissions = len(rows)
                    # link the reversals to their payment, as record_commission does
                    await raw.execute(
                        "UPDATE affiliate_commission r SET reverses_id = p.id FROM "
                        "affiliate_commission p WHERE r.kind = 'reversal' AND p.receipt = "
                        "r.receipt AND p.kind <> 'reversal' AND r.affiliate_id = $1", aff.id,
                    )  # fmt: skip
            # the visits of the year, as the link's per-day counters hold them
            per_day: dict[date, int] = {}
            for _ in range(visits):
                d = (start + timedelta(seconds=rng.random() * 365 * 86400)).date()
                per_day[d] = per_day.get(d, 0) + 1
            await _copy(raw, "affiliate_visit_day",
                        [(aff.id, d, n, int(n * 0.7)) for d, n in per_day.items()],
                        ["affiliate_id", "day", "visits", "unique_visits"], schema)  # fmt: skip
            await raw.execute("ANALYZE")
        return Seeded(aff.ref_id, token, commissions, customers, visits)
    finally:
        await engine.dispose()


def start(
    root: Path, db_url: str, redis_url: str, tmp: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``ccbb web`` (one uvicorn process) of the checkout at ``root``: this one, or the code
    before this branch (``--before``) for the side-by-side run."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
           "CCBB_SECRET_KEY": Fernet.generate_key().decode(), "CCBB_DATA_DIR": str(tmp),
           "CCBB_QUEUE": f"ccbb:bench:{uuid.uuid4().hex}"}  # fmt: skip
    log = open(tmp / f"web-{port}.log", "wb")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccbb.cli", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"the server stopped:\n{(tmp / f'web-{port}.log').read_text()[-2000:]}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer /healthz within 60 s")


def login(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    client.get("/login")
    r = client.post("/login", data={"email": EMAIL, "password": PASSWORD,
                                    "csrftoken": client.cookies["csrftoken"]})  # fmt: skip
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return client


def timings(client: httpx.Client, url: str, samples: int, expect: str, **kw: object) -> list[float]:
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        r = client.get(url, **kw)  # type: ignore[arg-type]
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200 and expect in r.text, (url, r.status_code, r.text[:300])
    return out


async def visits_counted(url: str, ref_id: str) -> int:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as s:
            aff = await store_aff.get_by_ref(s, ref_id=ref_id)
            assert aff is not None and aff.id is not None
            today = datetime.now(UTC).date()
            rows = await store_aff.visit_days(
                s, affiliate_id=aff.id, start=today - timedelta(days=1), end=today
            )
            return sum(r.visits for r in rows)
    finally:
        await engine.dispose()


def line(label: str, lo: Load, base: Load | None = None) -> str:
    ratio = f" ({lo.rps / base.rps:.0%} of the baseline)" if base else ""
    return (f"  {label:<28} {lo.rps:>8,.0f} req/s  p50 {lo.p50_ms:6.1f} ms  p99 {lo.p99_ms:6.1f} ms"
            f"  errors {lo.errors}  [{lo.tool}]{ratio}")  # fmt: skip


def run(args: argparse.Namespace, db_url: str, schema: str, tmp: Path) -> None:
    print(f"seeding ({args.customers:,} customers, {args.visits:,} visits)…", flush=True)
    t = time.perf_counter()
    seeded = asyncio.run(seed(db_url, schema, args.customers, args.visits, args.others))
    print(f"seeded in {time.perf_counter() - t:.0f} s: {seeded.commissions:,} commissions of the "
          "affiliate", flush=True)  # fmt: skip
    proc, base = start(ROOT, db_url, args.redis, tmp)
    old = start(args.before, db_url, args.redis, tmp) if args.before else None
    try:
        print(f"load average before: {os.getloadavg()}")
        if "a" in args.only:
            before = asyncio.run(visits_counted(db_url, seeded.ref_id))
            urls = {"/healthz (baseline)": f"{base}/healthz",
                    "/static/app.css (baseline)": f"{base}/static/app.css",
                    "/r/REFID": f"{base}/r/{seeded.ref_id}",
                    "/?ref=REFID": f"{base}/?ref={seeded.ref_id}"}  # fmt: skip
            if old is not None:
                urls["/r/REFID, code before (--before)"] = f"{old[1]}/r/{seeded.ref_id}"
            runs: dict[str, list[Load]] = {label: [] for label in urls}
            for _ in range(args.rounds):  # interleaved: the machine's load swings
                for label, url in urls.items():
                    runs[label].append(load(url, None, args.seconds, args.connections))
            time.sleep(2.5)  # the server writes the visits it gathered every second
            after = asyncio.run(visits_counted(db_url, seeded.ref_id))
            served = sum(lo.requests for k in runs if "REFID" in k for lo in runs[k])
            med = {k: sorted(v, key=lambda lo: lo.rps)[len(v) // 2] for k, v in runs.items()}
            print(f"a) the referral redirect, one web process (median of {args.rounds} "
                  f"interleaved {args.seconds} s runs; each run's req/s in brackets):")  # fmt: skip
            for label, lo in med.items():
                each = ", ".join(f"{r.rps:,.0f}" for r in runs[label])
                ratio = med["/healthz (baseline)"] if "REFID" in label else None
                print(line(label, lo, ratio) + f"  [{each}]")
            cut = 2 * args.rounds * args.connections
            print(f"  visits counted {after - before:,} for {served:,} redirects wrk saw answered "
                  f"(wrk drops the ≤ {cut} in flight at each run's end)")  # fmt: skip
            worst = min(med["/r/REFID"].rps, med["/?ref=REFID"].rps)
            print(
                f"  target {REDIRECT_TARGET:,.0f} req/s: {'met' if worst >= REDIRECT_TARGET else 'MISSED'}"
            )
            print(f"  load average after a): {os.getloadavg()}")
        if "b" in args.only:
            client = login(base)
            today = datetime.now(UTC).date()
            year = f"from={(today - timedelta(days=364)).isoformat()}&to={today.isoformat()}"
            api = {"Authorization": f"Bearer {seeded.token}"}
            for _ in range(3):  # warm up
                client.get(f"/affiliate/stats?{year}")
            res = {
                "/healthz (baseline)": timings(client, "/healthz", args.samples, "ok"),
                "/affiliate (the Affiliate page)": timings(client, "/affiliate", args.samples,
                                                           'id="ref-id"'),
                "/affiliate/stats (30 days)": timings(client, "/affiliate/stats",
                                                      args.samples, 'id="stats"'),
                "/affiliate/stats (365 days)": timings(client, f"/affiliate/stats?{year}",
                                                       args.samples, 'id="stats"'),
                "/affiliate/stats.csv (365 days)": timings(client, f"/affiliate/stats.csv?{year}",
                                                           args.samples, "profit"),
                "API /affiliate/stats (365 days)": timings(
                    httpx.Client(base_url=base, timeout=60), f"/api/v1/affiliate/stats?{year}",
                    args.samples, '"days"', headers=api),
            }  # fmt: skip
            print(f"b) statistics of {seeded.customers:,} customers, {seeded.visits:,} visits, "
                  f"{seeded.commissions:,} commissions over a year ({args.samples} requests each):")  # fmt: skip
            for label, ms in res.items():
                print(f"  {label:<34} p50 {statistics.median(ms):7.1f} ms  p95 {pct(ms, 95):7.1f} ms"
                      f"  max {max(ms):7.1f} ms")  # fmt: skip
            p95 = pct(res["/affiliate/stats (365 days)"], 95)
            print(
                f"  target p95 ≤ {STATS_TARGET_MS:.0f} ms: {'met' if p95 <= STATS_TARGET_MS else 'MISSED'}"
            )
            print(f"  load average after b): {os.getloadavg()}")
    finally:
        for p in (proc, old[0] if old else None):
            if p is not None:
                p.terminate()
                p.wait(10)


async def _clean_redis(url: str) -> None:
    r = Redis.from_url(url)
    keys = [k async for k in r.scan_iter("ccbb:aff:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of a)")
    parser.add_argument("--before", type=Path, help="a checkout of the code before (its "
                        "/r/REFID measured side by side): git archive BASE | tar -x -C DIR")  # fmt: skip
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=20, help="other affiliates (noise)")
    parser.add_argument("--only", default="ab", help="a: redirect req/s, b: statistics latency")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()}")  # fmt: skip
    schema = f"ccbb_affbench_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.database, f'CREATE SCHEMA "{schema}"'))
    db_url = url_in_schema(args.database, schema)
    try:
        upgrade(db_url)
        with tempfile.TemporaryDirectory() as tmp:
            run(args, db_url, schema, Path(tmp))
    finally:
        asyncio.run(run_ddl(args.database, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        asyncio.run(_clean_redis(args.redis))


if __name__ == "__main__":
    main()
