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
from typing import Any

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


async def finished(world: World, scan_id: int) -> None:
    """Wait for the scan to end; it must end done (else say why, with the worker's log)."""
    from store import scans

    state = await world.wait_state(scan_id, {"done", "failed"}, timeout=120)
    if state != "done":
        async with world.sessions() as session:
            scan = await scans.get_scan(session, scan_id=scan_id)
        for proc in world.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
        logs = [
            "\n".join(
                line
                for line in p.stderr.read().decode().splitlines()
                if "retries remaining" not in line
            )[-6000:]
            for p in world.procs
            if p.stderr
        ]
        raise AssertionError(f"scan {scan_id} {state}: {scan and scan.error}; {logs}")


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
    await finished(world, scan_id)
    await assert_exact(world, scan_id)
    assert worker.poll() is None
    # the same worker, reconnected, takes the next scan
    second = await world.new_scan(tps=50.0)
    await finished(world, second)
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
    await finished(world, scan_id)
    await assert_exact(world, scan_id)


# ---- ccbb run supervises its worker -----------------------------------------------------------


def _worker_pid(parent: int) -> int | None:
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(parent)],
        capture_output=True, text=True,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "ccbb.cli worker" in args:
            return int(pid)
    return None


async def _demo_scan(data_dir: Path) -> tuple[Any, int]:
    """A scan of the demo site by the demo account, queued as the dashboard queues it."""
    from arq.connections import RedisSettings, create_pool

    from ccbb.embedded import EmbeddedRedis
    from ccbb.jobs import enqueue_scan
    from ccbb.settings import Settings
    from store import credentials, scans, users
    from store.db import make_engine, session_factory

    settings = Settings(CCBB_DATA_DIR=data_dir)  # type: ignore[call-arg]
    engine = make_engine(settings.sqlalchemy_url)
    sessions = session_factory(engine)
    async with sessions() as session:
        user = await users.get_user_by_email(session, email="demo@example.com")
        assert user is not None and user.id is not None
        [credential] = await credentials.list_credentials(session, user_id=user.id)
        scan = await scans.create_scan(
            session, user_id=user.id, site="http://demo.example/", marketplace="www.amazon.com",
            partner_tag="demo-20", credential_id=credential.id,
            options={"cloak_prefixes": ["http://demo.example/go/"], "tps": 5.0},
        )  # fmt: skip
    redis = await create_pool(
        RedisSettings.from_dsn(EmbeddedRedis(data_dir).url), default_queue_name="ccbb:queue"
    )
    await enqueue_scan(redis, scan)
    await redis.aclose()
    assert scan.id is not None
    return (engine, sessions), scan.id


async def _state(sessions: Any, scan_id: int) -> str:
    from store import scans

    async with sessions() as session:
        scan = await scans.get_scan(session, scan_id=scan_id)
        assert scan is not None
        return scan.state


@pytest.mark.timeout(240)
async def test_ccbb_run_restarts_a_killed_worker_and_the_scan_finishes(tmp_path: Path) -> None:
    import os

    from tests.test_run_demo import start_demo_run

    proc, _, log = start_demo_run(tmp_path, timeout=90)
    data_dir = tmp_path / "data"
    engine = None
    try:
        first = _worker_pid(proc.pid)
        assert first is not None, log.read_text()
        (engine, sessions), scan_id = await _demo_scan(data_dir)
        deadline = time.monotonic() + 60
        while await _state(sessions, scan_id) == "queued":
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (second := _worker_pid(proc.pid)) in (None, first):
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        text = log.read_text()
        assert f"the worker (pid {first}) exited with code -9: restarting it in 1 s" in text
        assert f"the worker is running again (pid {second})" in text
        deadline = time.monotonic() + 150
        while (state := await _state(sessions, scan_id)) not in ("done", "failed"):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
        assert state == "done", log.read_text()[-3000:]
    finally:
        if engine is not None:
            await engine.dispose()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            proc.kill()
