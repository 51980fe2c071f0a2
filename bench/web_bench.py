"""The dashboard under load, as production runs it: ONE uvicorn worker (``ccbb web``, a process
of its own) on PostgreSQL and Redis, with users logged in (one through the real /login form, the
others with the session cookie /login would give them).

    .venv/bin/python bench/web_bench.py [--database postgresql://postgres@127.0.0.1:5432/test]
        [--redis redis://127.0.0.1:6379/13] [--seconds 10] [--connections 32] [--users 15000]
        [--only abc]                                              # ~5 minutes in all

Targets (the issue): the progress endpoint serves ≥ 1,000 requests/s (15,000 users polling every
15 s); a report page of a scan with 50,000 products, filtered, sorted and paginated, p95 ≤ 150 ms;
the CSV export of 1,000,000 link rows streams in constant memory.

Measures, each next to a baseline run side by side against the same server:
  a) ``/scans/progress.json`` in requests/s, by ``wrk`` (``apt-get install wrk``; else a
     multi-process aiohttp client) in another process: for one user with 15 scans, 2 running
     (live progress hashes in Redis, as ccbb/jobs.py writes them) and 1 queued; and for 15,000
     users in turn (5–20 scans each, one in ten running one), first with none of them in the
     server's user cache, then for 60 s, past the cache's 5 s lifetime. Baselines: ``/healthz`` of
     the same worker (the server's ceiling), and the load generator against a canned-answer
     server (its own ceiling);
  b) the report page of a 50,000-product scan: p50/p95/p99 over a mix of status filters, ASIN
     filters, every sortable column both ways, first, middle and last pages; baseline: the
     unfiltered first page;
  c) the CSV export of a scan of 1,000,000 link rows and of one of 100,000: peak RSS of the
     server process while it streams (VmHWM, reset before each export through
     /proc/PID/clear_refs) and rows/s.

It works in a PostgreSQL schema of its own (dropped at the end) and removes its Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from ccbb.jobs import PROGRESS_KEY, progress_fields
from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget, LinkKind
from scanner.classify import Status
from scanner.crawl import FailedPage, LinkOccurrence, Progress
from scanner.scan import ScanReport
from store import scans as store_scans
from store import users as store_users
from store.db import make_engine, masked_url, run_ddl, session_factory, url_in_schema
from store.migrate import upgrade
from store.sessions import hash_session_id
from web.auth import hash_password
from web.sessions import new_session_id

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_TARGET = 1_000.0  # requests/s
REPORT_TARGET_MS = 150.0  # p95
EMAIL, PASSWORD = "bench@example.com", "a bench password 123"
MARKET, TAG = "www.amazon.com", "mytag-20"
SITE = "https://www.example-affiliate-site.com/"
STATUS_MIX = (
    [Status.AVAILABLE] * 70 + [Status.OUT_OF_STOCK] * 12 + [Status.REMOVED] * 10
    + [Status.ERROR] * 8
)  # fmt: skip
WORDS = [
    "wireless", "bluetooth", "headphones", "noise", "cancelling", "kitchen", "knife", "set",
    "stainless", "steel", "coffee", "grinder", "burr", "electric", "standing", "desk",
    "ergonomic", "office", "chair", "mesh", "gaming", "mouse", "keyboard", "mechanical",
    "portable", "charger", "power", "bank", "usb", "cable", "fast", "camping", "tent",
    "waterproof", "hiking", "backpack", "running", "shoes", "trail", "yoga", "mat", "thick",
    "non", "slip", "air", "fryer", "oven", "cast", "iron", "skillet", "robot", "vacuum",
    "cleaner", "smart", "watch", "fitness", "tracker", "led", "lamp", "dimmable",
]  # fmt: skip
CATEGORIES = ("reviews", "guides", "best", "deals", "how-to", "versus")


# ---- synthetic scans ----------------------------------------------------------------------


@dataclass
class Made:
    report: ScanReport
    link_rows: int
    table_rows: int  # distinct (product, Amazon link): the rows of the report's table and CSV
    asins: list[str] = field(default_factory=list)


def _code(rng: random.Random, n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


def make_report(*, products: int, link_rows: int, links_per_page: int, seed: int) -> Made:
    """A scan as a real affiliate site gives it: every product on several pages under 1–3
    Amazon links (direct with the tag, without it or with another one, amzn.to short links,
    long search URLs full of tracking parameters, a few of them kilobytes long), every tenth
    link a 3-product widget, popular products on many pages; a status mix of 70 % available,
    12 % out of stock, 10 % removed, 8 % error."""
    rng = random.Random(seed)
    asins = [f"B0{n:08d}" for n in rng.sample(range(10**8), products)]
    hrefs: list[list[tuple[str, LinkKind, AmazonTarget]]] = []
    found: dict[tuple[str, str], ProductResult] = {}
    for i, a in enumerate(asins):
        words = rng.sample(WORDS, rng.randint(2, 9))
        title = " ".join(w.capitalize() for w in words) + f" {rng.randint(2, 900)}"
        status = STATUS_MIX[i % len(STATUS_MIX)]
        if status == Status.AVAILABLE:
            stock = rng.choice(("In Stock", "In Stock", "Only 3 left in stock", "Pre-order"))
        elif status == Status.OUT_OF_STOCK:
            stock = rng.choice(("Temporarily out of stock", "Currently unavailable"))
        else:
            stock = None
        removed = status in (Status.REMOVED, Status.ERROR)
        found[(MARKET, a)] = ProductResult(
            a,
            MARKET,
            status,
            None if removed else title,
            stock,
            None if removed else f"https://www.amazon.com/dp/{a}?tag={TAG}&linkCode=ogi&th=1",
            "ItemNotAccessible" if status == Status.ERROR else None,
        )
        tag = rng.choices((TAG, None, "someone-21"), (85, 10, 5))[0]
        mine: list[tuple[str, LinkKind, AmazonTarget]] = [
            (
                f"https://www.amazon.com/dp/{a}" + (f"?tag={tag}" if tag else ""),
                "direct",
                AmazonTarget(MARKET, (a,), tag),
            )
        ]
        if rng.random() < 0.5:
            mine.append(
                (f"https://amzn.to/{_code(rng, 7)}", "short", AmazonTarget(MARKET, (a,), TAG))
            )
        if rng.random() < 0.25:
            slug = "-".join(words)
            long = (
                f"https://www.amazon.com/{slug}/dp/{a}/ref=sr_1_{rng.randint(1, 40)}?crid="
                f"{_code(rng, 13).upper()}&keywords={'+'.join(words)}&qid={rng.randint(10**9, 2 * 10**9)}"
                f"&sprefix={words[0]}%2Caps%2C{rng.randint(100, 999)}&sr=8-{rng.randint(1, 40)}"
                f"&linkCode=ll1&tag={TAG}&linkId={uuid.UUID(int=rng.getrandbits(128)).hex}"
                "&language=en_US&ref_=as_li_ss_tl"
            )
            if rng.random() < 0.02:  # a page builder's tracking blob: kilobytes of one URL
                long += "&pd_rd_w=" + _code(rng, rng.randint(1500, 3000))
            mine.append((long, "direct", AmazonTarget(MARKET, (a,), TAG)))
        hrefs.append(mine)

    pages: list[str] = []
    links: list[LinkOccurrence] = []
    groups: set[tuple[str, str]] = set()
    rows = 0
    order = iter(range(products))  # every product at least once, then the popular ones more
    while rows < link_rows:
        words = rng.sample(WORDS, 4)
        page = f"{SITE}{CATEGORIES[len(pages) % 6]}/{'-'.join(words)}-{len(pages)}/"
        pages.append(page)
        for k in range(links_per_page):
            if rows >= link_rows:
                break
            if k % 10 == 9 and link_rows - rows >= 3 and products >= 3:
                first = rng.randrange(products - 2)
                trio = tuple(asins[first : first + 3])
                href = (
                    "https://ws-na.amazon-adsystem.com/widgets/q?ServiceVersion=20070822&"
                    f"OneJS=1&Operation=GetAdHtml&MarketPlace=US&asins={','.join(trio)}"
                    f"&tracking_id={TAG}&ad_type=product_link"
                )
                links.append(
                    LinkOccurrence(page, href, "widget", AmazonTarget(MARKET, trio, TAG, True))
                )
                groups.update((a, href) for a in trio)
                rows += 3
                continue
            n = next(order, None)
            if n is None:
                n = int(products * rng.random() ** 2)
            href, kind, target = rng.choice(hrefs[n])
            links.append(LinkOccurrence(page, href, kind, target))
            groups.add((asins[n], href))
            rows += 1
    start = datetime.now(UTC) - timedelta(hours=2)
    report = ScanReport(
        site=SITE,
        marketplace=MARKET,
        partner_tag=TAG,
        started_at=start,
        finished_at=start + timedelta(minutes=40),
        pages=pages,
        failed=[FailedPage(f"{SITE}gone-{i}/", 404, "HTTP 404") for i in range(30)],
        links=links,
        unresolved=[],
        products=found,
        api_requests=products // 10,
        timings={"crawl_seconds": 1200.0, "total_seconds": 2400.0},
    )
    return Made(report, rows, len(groups), asins)


@dataclass
class Seeded:
    user_id: int
    scans: int
    running: list[int]
    big: int = 0
    big_made: Made | None = None
    csv: dict[str, tuple[int, Made]] = field(default_factory=dict)  # label → (scan id, report)


async def seed(
    url: str, redis_url: str, products: int, csv_rows: list[int], with_report: bool
) -> Seeded:
    """The user who logs in: a dozen small finished scans, 2 running (their live counters in
    Redis, as ccbb/jobs.py writes them), 1 queued; with_report: the big scans too."""
    redis = Redis.from_url(redis_url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    try:
        async with sessions() as s:
            user = await store_users.create_user(
                s, email=EMAIL, password_hash=hash_password(PASSWORD)
            )
        assert user.id is not None

        async def finished(made: Made) -> int:
            async with sessions() as s:
                scan = await store_scans.create_scan(
                    s, user_id=user.id, site=made.report.site, marketplace=MARKET, partner_tag=TAG
                )
                assert scan.id is not None
                await store_scans.mark_running(s, scan_id=scan.id)
                await store_scans.finish_scan(s, scan_id=scan.id, report=made.report)
                return scan.id

        out = Seeded(user.id, 0, [])
        for i in range(12):  # the user's history: small finished scans
            await finished(make_report(products=40, link_rows=300, links_per_page=20, seed=i))
            out.scans += 1
        if with_report:
            for n in sorted(csv_rows):
                print(f"  a scan of {n:,} link rows…", flush=True)
                made = make_report(products=max(3, n // 20), link_rows=n, links_per_page=20, seed=n)
                t = time.perf_counter()
                out.csv[f"{n:,}"] = (await finished(made), made)
                print(f"    finish_scan {time.perf_counter() - t:.1f} s", flush=True)
                out.scans += 1
            print(f"  a scan of {products:,} products…", flush=True)
            out.big_made = make_report(
                products=products, link_rows=products * 4, links_per_page=20, seed=7
            )
            t = time.perf_counter()
            out.big = await finished(out.big_made)
            print(f"    finish_scan {time.perf_counter() - t:.1f} s", flush=True)
            out.scans += 1
        for i in range(2):  # running now (their live counters in Redis) + 1 queued: the most
            # a user may have active (CCBB_ACTIVE_SCANS_PER_USER)
            async with sessions() as s:
                scan = await store_scans.create_scan(
                    s, user_id=user.id, site=f"https://running-{i}.example/", marketplace=MARKET,
                    partner_tag=TAG,
                )  # fmt: skip
                assert scan.id is not None
                await store_scans.mark_running(s, scan_id=scan.id)
            progress = Progress("crawling", 1234 + i, 5000, 321, 120)
            await redis.hset(
                PROGRESS_KEY.format(scan.id), mapping=progress_fields(progress, "running")
            )  # type: ignore[misc]
            out.running.append(scan.id)
            out.scans += 1
        async with sessions() as s:  # and one waiting for a worker
            await store_scans.create_scan(
                s,
                user_id=user.id,
                site="https://queued.example/",
                marketplace=MARKET,
                partner_tag=TAG,
            )
            out.scans += 1
        return out
    finally:
        await engine.dispose()
        await redis.aclose()


@dataclass
class Crowd:
    users: list[tuple[int, str]]  # (id, its session id: what the session cookie holds)
    scans: int
    running: list[int]


async def seed_crowd(url: str, schema: str, redis_url: str, users: int) -> Crowd:
    """``users`` more accounts polling their dashboards, written in bulk (COPY): 5–20 scans
    each, newest first; one in ten has a scan running (its counters in Redis) and maybe one
    queued. They share one password hash (hashing 15,000 passwords would take minutes)."""
    rng = random.Random(3)
    password_hash = hash_password(PASSWORD)
    now = datetime.now(UTC)
    engine = make_engine(url)
    redis = Redis.from_url(redis_url)
    try:
        async with engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.copy_records_to_table(
                "user",
                records=[
                    (f"u{i}@bench.example", False, password_hash, now, str(uuid.uuid4()))
                    for i in range(users)
                ],
                columns=["email", "is_admin", "password_hash", "created_at", "public_id"],
                schema_name=schema,
            )
            ids = [r[0] for r in await raw.fetch(
                "SELECT id FROM \"user\" WHERE email LIKE 'u%@bench.example' ORDER BY id")]  # fmt: skip
            records = []
            running_at: list[int] = []
            summary = json.dumps({"urls_scanned": 120, "total_products": 85})
            for uid in ids:
                count = rng.randint(5, 20)
                active = rng.random() < 0.1
                for k in range(count):
                    created = now - timedelta(days=count - k, minutes=rng.randint(0, 600))
                    state = "done"
                    if active and k == count - 1:
                        state = "running"
                    elif active and k == count - 2 and rng.random() < 0.5:
                        state = "queued"
                    if state == "running":
                        running_at.append(len(records))
                    done = state == "done"
                    records.append((
                        uid, f"https://site-{uid}-{k}.example/", MARKET, TAG, "{}", state, created,
                        created if state != "queued" else None,
                        created + timedelta(minutes=12) if done else None, 1 if state != "queued" else 0,
                        "done" if done else "crawling" if state == "running" else "",
                        120 if done else 40, 120 if done else 300, 85 if done else 30,
                        85 if done else 10, 9, False, summary if done else None,
                        "{}" if done else None,
                    ))  # fmt: skip
            await raw.copy_records_to_table(
                "scan",
                records=records,
                columns=["user_id", "site", "marketplace", "partner_tag", "options", "state",
                         "created_at", "started_at", "finished_at", "attempt", "phase",
                         "pages_crawled", "pages_discovered", "products_found",
                         "products_checked", "api_requests", "truncated", "summary", "stats"],
                schema_name=schema,
            )  # fmt: skip
            scan_ids = [r[0] for r in await raw.fetch(
                "SELECT id FROM scan WHERE user_id = ANY($1::int[]) ORDER BY id", ids)]  # fmt: skip
        running = [scan_ids[i] for i in running_at]
        async with redis.pipeline(transaction=False) as pipe:
            for n, sid in enumerate(running):
                progress = Progress("crawling", 100 + n % 900, 2000, 50, 20)
                pipe.hset(PROGRESS_KEY.format(sid), mapping=progress_fields(progress, "running"))
            await pipe.execute()
        # one session each, as /login makes them (store.sessions: the cookie's id, hashed)
        sids = [new_session_id() for _ in ids]
        expires = now + timedelta(days=14)
        async with engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.copy_records_to_table(
                "user_session",
                records=[
                    (hash_session_id(s), u, now, expires) for s, u in zip(sids, ids, strict=True)
                ],
                columns=["id_hash", "user_id", "created_at", "expires_at"],
                schema_name=schema,
            )
        return Crowd(list(zip(ids, sids, strict=True)), len(records), running)
    finally:
        await engine.dispose()
        await redis.aclose()


def session_cookie(session_id: str) -> str:
    """The session cookie /login would give the user (an opaque id: web.sessions)."""
    return "ccbb_session=" + session_id


# ---- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_server(
    db_url: str, redis_url: str, port: int, data_dir: Path, secret_key: str
) -> subprocess.Popen[bytes]:
    """``ccbb web``: one uvicorn process, as docker-compose runs it (its access log in a file)."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CCBB_SECRET_KEY": secret_key,
        "CCBB_DATA_DIR": str(data_dir),
        "CCBB_QUEUE": f"ccbb:bench:{uuid.uuid4().hex}",
    }
    log = open(data_dir / "web.log", "wb")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccbb.cli", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped:\n{(data_dir / 'web.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer /healthz within 60 s")


def login(base: str) -> httpx.Client:
    """A client logged in through the real form (CSRF token and all)."""
    client = httpx.Client(base_url=base, timeout=120)
    client.get("/login")
    r = client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrftoken": client.cookies["csrftoken"]},
    )
    assert r.status_code == 303 and r.headers["location"] == "/", (r.status_code, r.text[:300])
    return client


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> bool:
    """VmHWM back to the current RSS (Linux ≥ 4.0; needs to own the process or be root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ---- a) progress: requests per second -------------------------------------------------------


CANNED = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
)


def canned_server(port: int) -> None:
    """A server that answers every request at once without parsing it: what the load
    generator achieves against it is (a floor of) its own ceiling."""

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
                self.t.write(CANNED * n)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str


def _wrk_ms(text_: str, label: str) -> float:
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text_, re.M)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


WRK_SCRIPT = """
local cookies = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do cookies[#cookies + 1] = line end
end
function request()
  i = i % #cookies + 1
  return wrk.format("GET", nil, {["Cookie"] = cookies[i]})
end
"""


def wrk(url: str, cookies: Path | None, seconds: int, connections: int) -> Load:
    """wrk, one thread (a core of its own); ``cookies``: a file of Cookie headers, one per
    request in turn (a Lua script)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if cookies is not None:
        script = cookies.with_suffix(".lua")
        script.write_text(WRK_SCRIPT)
        cmd += ["-s", str(script), url, "--", str(cookies)]
    else:
        cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return Load(rps, _wrk_ms(out, "50%"), _wrk_ms(out, "99%"), total, errors, "wrk")


def _aiohttp_worker(url: str, cookies: list[str], seconds: float, connections: int, q: Any) -> None:
    import aiohttp

    async def main() -> None:
        lat: list[float] = []
        errors = 0
        n = 0
        end = time.perf_counter() + seconds
        conn = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def one() -> None:
                nonlocal errors, n
                while time.perf_counter() < end:
                    headers = {"Cookie": cookies[n % len(cookies)]} if cookies else {}
                    n += 1
                    t = time.perf_counter()
                    async with s.get(url, headers=headers, allow_redirects=False) as r:
                        await r.read()
                        if r.status != 200:
                            errors += 1
                    lat.append(time.perf_counter() - t)

            await asyncio.gather(*(one() for _ in range(connections)))
        q.put((lat, errors))

    asyncio.run(main())


def aiohttp_load(
    url: str, cookies: Path | None, seconds: int, connections: int, procs: int = 2
) -> Load:
    import multiprocessing as mp

    lines = cookies.read_text().splitlines() if cookies else []
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    workers = [
        ctx.Process(
            target=_aiohttp_worker,
            args=(url, lines[k::procs], seconds, connections // procs, q),
        )
        for k in range(procs)
    ]
    for w in workers:
        w.start()
    lat: list[float] = []
    errors = 0
    for _ in workers:
        part, err = q.get()
        lat += part
        errors += err
    for w in workers:
        w.join()
    qs = statistics.quantiles(lat, n=100)
    return Load(len(lat) / seconds, qs[49] * 1000, qs[98] * 1000, len(lat), errors, "aiohttp")


def load(url: str, cookies: Path | None, seconds: int, connections: int) -> Load:
    if shutil.which("wrk"):
        return wrk(url, cookies, seconds, connections)
    return aiohttp_load(url, cookies, seconds, connections)


# ---- b) report page: latency ----------------------------------------------------------------


def report_urls(
    client: httpx.Client, scan_id: int, asins: list[str], rng: random.Random
) -> list[tuple[str, str]]:
    """(kind, URL): every status filter × every sort both ways (and the default order) × the
    first, middle and last page; ASIN filters (found, with a status, and missing)."""
    out: list[tuple[str, str]] = []
    sorts = [("", "asc")] + [(s, d) for s in ("problems", "name", "asin", "link", "status",
                                              "stock", "href", "links", "pages")
                             for d in ("asc", "desc")]  # fmt: skip
    for per in ("product", "link"):
        for status in ("", "available", "out_of_stock", "removed", "error"):
            params = {"per": per} | ({"status": status} if status else {})
            html = client.get(f"/scans/{scan_id}", params=params).text
            m = re.search(r"page 1 of (\d+)", html)
            last = int(m.group(1)) if m else 1
            for sort, direction in sorts:
                for page in sorted({1, max(1, last // 2), last}):
                    q = {"per": per, "status": status, "sort": sort, "dir": direction,
                         "page": page}  # fmt: skip
                    kind = "first page" if page == 1 else "deep page"
                    out.append(
                        (kind, f"/scans/{scan_id}?{urlencode({k: v for k, v in q.items() if v})}")
                    )
    for a in rng.sample(asins, 20):
        out.append(("ASIN filter", f"/scans/{scan_id}?asin={a.lower()}"))
        out.append(
            ("ASIN filter", f"/scans/{scan_id}?asin={a}&status=available&sort=pages&dir=desc")
        )
    out.append(("ASIN filter", f"/scans/{scan_id}?asin=B0NOTHERE0"))
    for q in ("name=a", "name=zz&per=link", "page_url=gone", "page_url=/post-1&sort=name",
              f"asin={asins[0][:4]}&sort=links&dir=desc"):  # fmt: skip
        out.append(("text filter", f"/scans/{scan_id}?{q}"))
    return out


def timed_get(client: httpx.Client, url: str) -> float:
    t = time.perf_counter()
    r = client.get(url)
    elapsed = time.perf_counter() - t
    assert r.status_code == 200 and 'id="products"' in r.text, (url, r.status_code)
    return elapsed * 1000


def pct(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


# ---- c) CSV export --------------------------------------------------------------------------


@dataclass
class Export:
    rows: int
    link_rows: int
    seconds: float
    rss_before_mb: float
    peak_mb: float
    first_byte_ms: float
    reset: bool


def export(client: httpx.Client, pid: int, scan_id: int, made: Made) -> Export:
    reset = reset_peak(pid)
    before = memory_kb(pid)
    t = time.perf_counter()
    first = 0.0
    lines = 0
    tail = b""
    with client.stream("GET", f"/scans/{scan_id}/export.csv") as r:
        assert r.status_code == 200, r.status_code
        for chunk in r.iter_bytes():
            if not first:
                first = time.perf_counter() - t
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-4096:]
    seconds = time.perf_counter() - t
    after = memory_kb(pid)
    rows = lines - 1  # the header
    report = made.report
    linked = {(x.target.marketplace, a) for x in report.links for a in x.target.asins}
    expected = sum(len(x.target.asins) for x in report.links) + len(report.products.keys() - linked)
    assert rows == expected, (rows, expected)  # the CLI's shape: a row per link occurrence
    last = next(csv.reader(io.StringIO(tail.decode("utf-8", "replace").splitlines()[-1])))
    assert len(last) == 10, last
    return Export(rows, made.link_rows, seconds, before["VmRSS"] / 1024, after["VmHWM"] / 1024,
                  first * 1000, reset)  # fmt: skip


# ---- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, db_url: str, schema: str, tmp: Path) -> None:
    parts = set(args.only)
    print("seeding (the scans go through store.scans.finish_scan, as a worker writes them)…")
    t = time.perf_counter()
    sizes = sorted({args.csv_rows // 10, args.csv_rows})
    seeded = asyncio.run(
        seed(db_url, args.redis, args.products, sizes, with_report=bool(parts & {"b", "c"}))
    )
    crowd = None
    if "a" in parts and args.users:
        print(f"  {args.users:,} more users…", flush=True)
        crowd = asyncio.run(seed_crowd(db_url, schema, args.redis, args.users))
    print(f"seeded in {time.perf_counter() - t:.0f} s")
    secret_key = Fernet.generate_key().decode()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(db_url, args.redis, port, tmp, secret_key)
    loads: dict[str, Load] = {}
    by_kind: dict[str, list[float]] = {}
    baseline: list[float] = []
    urls: list[tuple[str, str]] = []
    slowest: list[tuple[float, str]] = []
    exports: dict[str, Export] = {}
    try:
        client = login(base)
        one = tmp / "one.cookies"
        one.write_text(cookie_header(client) + "\n")
        got = client.get("/scans/progress.json").json()
        assert len(got) == seeded.scans, (len(got), seeded.scans)
        live = {p["id"]: p for p in got}
        assert all(live[i]["phase"] == "crawling" for i in seeded.running)
        assert client.get("/", follow_redirects=False).status_code == 200

        if "a" in parts:
            print("a) requests per second…", flush=True)
            cookies = one
            if crowd is not None:
                cookies = tmp / "crowd.cookies"
                cookies.write_text("".join(session_cookie(sid) + "\n" for _, sid in crowd.users))
                for _, sid in random.Random(2).sample(crowd.users, 3):  # seeded = real
                    r = httpx.get(f"{base}/scans/progress.json",
                                  headers={"Cookie": session_cookie(sid)})  # fmt: skip
                    assert r.status_code == 200 and 5 <= len(r.json()) <= 20, r.text[:200]
            canned_port = free_port()
            import multiprocessing as mp

            canned = mp.get_context("spawn").Process(target=canned_server, args=(canned_port,))
            canned.start()
            wait_port(canned_port)
            try:
                loads["ceiling"] = load(
                    f"http://127.0.0.1:{canned_port}/", cookies, args.seconds, args.connections
                )
            finally:
                canned.terminate()
                canned.join()
            loads["healthz"] = load(f"{base}/healthz", None, args.seconds, args.connections)
            progress_url = f"{base}/scans/progress.json"
            if crowd is not None:  # the first pass: no user is in the process's cache yet
                loads["cold"] = load(progress_url, cookies, args.seconds, args.connections)
            load(progress_url, one, 2, args.connections)  # warm-up
            loads["one"] = load(progress_url, one, args.seconds, args.connections)
            if crowd is not None:
                loads["crowd"] = load(progress_url, cookies, args.crowd_seconds, args.connections)
            assert len(client.get("/scans/progress.json").json()) == seeded.scans

        if "b" in parts:
            print("b) report page latency…", flush=True)
            assert seeded.big_made is not None
            rng = random.Random(1)
            urls = report_urls(client, seeded.big, seeded.big_made.asins, rng)
            first_page = f"/scans/{seeded.big}"
            for _ in range(5):
                timed_get(client, first_page)  # warm-up
            for _ in range(args.rounds):
                rng.shuffle(urls)
                for kind, url in urls:
                    by_kind.setdefault(kind, []).append(timed_get(client, url))
                    if len(by_kind[kind]) % 4 == 0:  # the baseline interleaved with the mix
                        baseline.append(timed_get(client, first_page))
            slowest = sorted(((timed_get(client, u), u) for _, u in urls), reverse=True)[:3]

        if "c" in parts:
            print("c) CSV exports…", flush=True)
            for label, (sid, made) in seeded.csv.items():
                exports[label] = export(client, proc.pid, sid, made)
        server_rss = memory_kb(proc.pid)["VmRSS"] / 1024
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        keys = seeded.running + (crowd.running if crowd else [])
        asyncio.run(_delete(args.redis, [PROGRESS_KEY.format(i) for i in keys]))

    # ---- the tables ----
    print()
    print(
        f"Dashboard benchmark: {platform.machine()}, {os.cpu_count()} vCPUs, Python "
        f"{platform.python_version()}, one `ccbb web` (uvicorn {uvicorn_flavour()}) process; "
        f"{masked_url(args.database)}, {args.redis}"
    )
    if loads:
        print_loads(loads, seeded, crowd, args)
    if by_kind:
        print_report(by_kind, baseline, urls, slowest, seeded, args)
    if exports:
        print_exports(exports)
    print(f"\nserver RSS at the end: {server_rss:.0f} MB")


def uvicorn_flavour() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http}"


def print_loads(
    loads: dict[str, Load], seeded: Seeded, crowd: Crowd | None, args: argparse.Namespace
) -> None:
    health = loads["healthz"]
    print()
    print(
        f"a) requests/s: {loads['healthz'].tool}, {args.connections} connections, "
        f"{args.seconds} s per run"
        + (f" ({args.crowd_seconds} s for the {len(crowd.users):,} users)" if crowd else "")
    )
    print()
    print("| endpoint | requests/s | p50 | p99 | errors | vs /healthz | vs target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = [("ceiling", "load generator vs a canned-answer server (its ceiling)")]
    rows.append(("healthz", "baseline: `/healthz` (Redis PING), same worker"))
    rows.append(("one", f"`/scans/progress.json`, one user ({seeded.scans} scans, "
                        f"{len(seeded.running)} running, 1 queued)"))  # fmt: skip
    if crowd is not None:
        per = crowd.scans / len(crowd.users)
        who = (f"{len(crowd.users):,} users in turn ({per:.1f} scans each, "
               f"{len(crowd.running):,} running)")  # fmt: skip
        rows.append(("cold", f"`/scans/progress.json`, {who}, first pass: every user read"))
        rows.append(("crowd", f"`/scans/progress.json`, {who}"))
    for key, name in rows:
        x = loads.get(key)
        if x is None:
            continue
        vs = "" if key == "ceiling" else f"{x.rps / health.rps:.2f}×"
        target = "" if key == "ceiling" else f"{x.rps / PROGRESS_TARGET:.2f}×"
        print(
            f"| {name} | {x.rps:,.0f} | {x.p50_ms:.1f} ms | {x.p99_ms:.1f} ms | {x.errors} | "
            f"{vs} | {target} |"
        )
    print("(target: ≥ 1,000 requests/s, i.e. 15,000 users polling every 15 s)")


def print_report(
    by_kind: dict[str, list[float]],
    baseline: list[float],
    urls: list[tuple[str, str]],
    slowest: list[tuple[float, str]],
    seeded: Seeded,
    args: argparse.Namespace,
) -> None:
    big = seeded.big_made
    assert big is not None
    mix = [x for xs in by_kind.values() for x in xs]
    print()
    print(
        f"b) report page of a scan of {len(big.report.products):,} products, "
        f"{big.link_rows:,} link rows on {len(big.report.pages):,} pages, {big.table_rows:,} "
        f"table rows; {len(mix):,} sequential requests ({len(urls)} URLs × {args.rounds})"
    )
    print()
    print("| requests | n | p50 | p95 | p99 | max | p95 vs baseline | p95 vs target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    b95 = pct(baseline, 95)
    rows = [("baseline: unfiltered first page", baseline)]
    rows += sorted(by_kind.items())
    rows.append(("whole mix", mix))
    for name, xs in rows:
        print(
            f"| {name} | {len(xs)} | {pct(xs, 50):.1f} ms | {pct(xs, 95):.1f} ms | "
            f"{pct(xs, 99):.1f} ms | {max(xs):.1f} ms | {pct(xs, 95) / b95:.2f}× | "
            f"{pct(xs, 95) / REPORT_TARGET_MS:.2f}× (≤ 150 ms) |"
        )
    print("slowest: " + "; ".join(f"{ms:.0f} ms {u}" for ms, u in slowest))


def print_exports(exports: dict[str, Export]) -> None:
    print()
    print("c) CSV export (server process memory: VmHWM reset before each export)")
    print()
    print("| scan | link rows | CSV rows | seconds | CSV rows/s | link rows/s | first byte | "
          "RSS before | peak RSS while streaming | peak vs smaller |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    small_peak = exports[min(exports, key=lambda k: exports[k].link_rows)].peak_mb
    for label, e in sorted(exports.items(), key=lambda kv: kv[1].link_rows):
        print(
            f"| {label} link rows | {e.link_rows:,} | {e.rows:,} | {e.seconds:.1f} | "
            f"{e.rows / e.seconds:,.0f} | {e.link_rows / e.seconds:,.0f} | "
            f"{e.first_byte_ms:.0f} ms | {e.rss_before_mb:.0f} MB | {e.peak_mb:.0f} MB | "
            f"{e.peak_mb / small_peak:.2f}× |"
        )
    if not all(e.reset for e in exports.values()):
        print("(VmHWM could not be reset: the peaks are of the whole run)")


async def _delete(url: str, keys: list[str]) -> None:
    r = Redis.from_url(url)
    await r.delete(*keys)
    await r.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10, help="per requests/s run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the report URLs")
    parser.add_argument("--users", type=int, default=15_000, help="users polling, in turn")
    parser.add_argument("--crowd-seconds", type=int, default=60,
                        help="the run of all users: past the user cache's 5 s")  # fmt: skip
    parser.add_argument("--only", default="abc", help="a: requests/s, b: report, c: CSV")
    args = parser.parse_args()
    if not args.database.startswith("postgres"):
        raise SystemExit("--database: a PostgreSQL URL (the production setup)")
    schema = f"ccbb_webbench_{uuid.uuid4().hex[:8]}"
    asyncio.run(run_ddl(args.database, f'CREATE SCHEMA "{schema}"'))
    db_url = url_in_schema(args.database, schema)
    try:
        upgrade(db_url)
        with tempfile.TemporaryDirectory() as tmp:
            run(args, db_url, schema, Path(tmp))
    finally:
        asyncio.run(run_ddl(args.database, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
