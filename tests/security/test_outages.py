"""Outages during a scan, with real processes: a Redis server stopped for longer than 30 s (and
restarted empty, as a Redis without persistence comes back), and a worker killed with SIGKILL.
The scan finishes with exactly the counts of an undisturbed scan, and the worker is still there.

The Redis server is this test's own ``redis-server`` on a free loopback port, so stopping it
disturbs nobody else. CI runs this file (``.ci/run``), as part of ``./run test``.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ccbb.embedded import find_redis_server
from tests.test_worker import World, make_world

OUTAGE_SECONDS = 32.0


class RedisProcess:
    """``redis-server`` on 127.0.0.1:``port``, no persistence: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # a crash: nothing saved, clients cut off
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    if not shutil.which("redis-server"):
        try:
            find_redis_server()
        except Exception as exc:
            pytest.skip(f"no redis-server: {exc}")
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def world(
    tmp_path: Path, redis_server: RedisProcess, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    async with make_world(tmp_path, redis_server.url, request) as made:
        yield made


async def wait_checked(world: World, scan_id: int, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while int((await world.progress(scan_id)).get("products_checked", 0)) < at_least:
        assert time.monotonic() < deadline, "the scan did not progress"
        await asyncio.sleep(0.1)


async def assert_exact(world: World, scan_id: int) -> None:
    report = await world.report(scan_id)
    assert report["summary"] == world.site.expected.summary()
    got = {(p["marketplace"], p["asin"]): p["status"] for p in report["products"]}
    assert got == {k: str(v) for k, v in world.site.expected.products.items()}


async def test_a_scan_rides_out_a_redis_outage_of_more_than_30_seconds(
    world: World, redis_server: RedisProcess
) -> None:
    worker = world.start_worker()
    scan_id = await world.new_scan(tps=8.0)  # ~20 s of lookups: the outage falls inside
    await wait_checked(world, scan_id, 20)
    redis_server.stop()
    await asyncio.sleep(OUTAGE_SECONDS)
    assert worker.poll() is None, "the worker exited while Redis was away"
    redis_server.start()  # empty: the queue, the lease, the progress and the rate key are gone
    assert await world.wait_state(scan_id, {"done", "failed"}, timeout=120) == "done"
    await assert_exact(world, scan_id)
    assert worker.poll() is None
    # the same worker, reconnected, takes the next scan
    second = await world.new_scan(tps=50.0)
    assert await world.wait_state(second, {"done", "failed"}, timeout=120) == "done"
    await assert_exact(world, second)


async def test_a_worker_killed_during_a_scan_is_replaced_and_the_counts_are_exact(
    world: World,
) -> None:
    first = world.start_worker()
    scan_id = await world.new_scan(tps=8.0)
    await wait_checked(world, scan_id, 30)
    first.send_signal(signal.SIGKILL)
    first.wait()
    world.start_worker()
    assert await world.wait_state(scan_id, {"done", "failed"}, timeout=120) == "done"
    await assert_exact(world, scan_id)
