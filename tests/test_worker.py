"""Persistent scans end to end: real worker processes (``ccbb worker``), the real database and
Redis, the demo site and the sandbox Amazon API on loopback. A worker killed with SIGKILL in the
middle of a scan: another one finishes it, with exactly the counts of an uninterrupted scan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from ccbb.jobs import PROGRESS_KEY, enqueue_scan, request_cancel
from ccbb.sandbox.amazon_api import Catalogue, RunningSandbox, running_sandbox
from ccbb.sandbox.demo_site import DemoSite, RunningSite, generate_site, running_site
from ccbb.settings import Settings
from store import credentials, scans, users
from store.crypto import SecretBox
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.conftest import PG_ENV
from tests.timing import MachineLag


@dataclass
class World:
    env: dict[str, str]
    site: DemoSite
    web: RunningSite
    sandbox: RunningSandbox
    sessions: Any
    redis: ArqRedis
    box: SecretBox
    procs: list[subprocess.Popen[bytes]]

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccbb.cli", "worker"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    async def new_scan(self, tps: float = 50.0, secret: str | None = None) -> int:
        async with self.sessions() as session:
            user = await users.create_user(session, email=f"{uuid.uuid4().hex}@x.test",
                                           password_hash="x")  # fmt: skip
            cred = self.site.catalogue["credentials"][0]
            credential = await credentials.create_credential(
                session, box=self.box, user_id=user.id, credential_id=cred["credential_id"],
                secret=secret or cred["credential_secret"], version=cred["version"],
                partner_tag=self.site.partner_tag,
            )  # fmt: skip
            scan = await scans.create_scan(
                session, user_id=user.id, site=self.site.base_url, marketplace="www.amazon.com",
                partner_tag=self.site.partner_tag, credential_id=credential.id,
                options={"cloak_prefixes": list(self.site.cloak_prefixes), "tps": tps},
            )  # fmt: skip
        assert scan.id is not None
        await enqueue_scan(self.redis, scan)
        return scan.id

    async def state(self, scan_id: int) -> str:
        async with self.sessions() as session:
            scan = await scans.get_scan(session, scan_id=scan_id)
            assert scan is not None
            return scan.state

    async def wait_state(self, scan_id: int, states: set[str], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.state(scan_id)
            if state in states:
                return state
            if all(p.poll() is not None for p in self.procs):
                break  # every worker died: say why
            await asyncio.sleep(0.2)
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
        errors = [p.stderr.read().decode()[-3000:] for p in self.procs if p.stderr]
        raise AssertionError(f"scan {scan_id} still {await self.state(scan_id)}; {errors}")

    async def progress(self, scan_id: int) -> dict[str, str]:
        raw = await self.redis.hgetall(PROGRESS_KEY.format(scan_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def report(self, scan_id: int) -> dict[str, Any]:
        async with self.sessions() as session:
            return await scans.report_json(session, scan_id=scan_id)


@pytest.fixture
async def world(
    tmp_path: Path, test_redis_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    async with make_world(tmp_path, test_redis_url, request) as made:
        yield made


@contextlib.asynccontextmanager
async def make_world(
    tmp_path: Path, REDIS_URL: str, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    """The demo site, the sandbox API, the database and a queue on ``REDIS_URL``; workers are
    started by the test (``World.start_worker``) and stopped here."""
    try:
        redis = await create_pool(
            RedisSettings.from_dsn(REDIS_URL), default_queue_name=f"q-{uuid.uuid4().hex}"
        )
        await redis.ping()
        await redis.flushdb()  # this test database is ours: scan ids restart at 1 in each test
    except Exception as exc:
        pytest.skip(f"no Redis at {REDIS_URL} ({exc}): set CCBB_TEST_REDIS_URL")
    queue = redis.default_queue_name
    if os.environ.get(PG_ENV):  # a fresh schema of the shared PostgreSQL database
        db_url = request.getfixturevalue("pg_schemas")()
    else:
        db_url = f"sqlite:///{tmp_path / 'ccbb.sqlite3'}"
    settings = Settings(CCBB_DATA_DIR=tmp_path, DATABASE_URL=db_url)  # type: ignore[call-arg]
    await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
    site = generate_site(pages=300, seed=11)
    catalogue = dict(site.catalogue)
    catalogue["credentials"] = [{**catalogue["credentials"][0], "tps": 60.0}]
    engine = make_engine(settings.sqlalchemy_url)
    async with (
        running_site(site) as web,
        running_sandbox(Catalogue.from_dict(catalogue)) as sandbox,
    ):
        key = SecretBox.from_settings(settings)
        env = {
            **os.environ, "CCBB_DATA_DIR": str(tmp_path), "DATABASE_URL": db_url,
            "REDIS_URL": REDIS_URL, "CCBB_QUEUE": queue,
            "CCBB_CONNECT_TO": ",".join(web.connect_to), "CCBB_AMAZON_API_HOST": sandbox.url,
            "CCBB_AMAZON_AUTH": sandbox.auth_endpoint, "CCBB_LEASE_SECONDS": "3",
            "CCBB_PAGE_WORKERS": "0",
        }  # fmt: skip
        world = World(env, site, web, sandbox, session_factory(engine), redis, key, [])
        try:
            yield world
        finally:
            for proc in world.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in world.procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            await redis.aclose()
            await engine.dispose()


async def test_a_queued_scan_runs_in_a_worker_and_is_stored(world: World) -> None:
    world.start_worker()
    scan_id = await world.new_scan()
    assert await world.wait_state(scan_id, {"done", "failed"}) == "done"
    report = await world.report(scan_id)
    assert report["summary"] == world.site.expected.summary()
    progress = await world.progress(scan_id)
    assert progress["state"] == "done"
    assert int(progress["pages_crawled"]) == world.site.expected.urls_scanned


async def test_a_killed_worker_is_replaced_and_the_counts_are_exact(world: World) -> None:
    first = world.start_worker()
    scan_id = await world.new_scan(tps=8.0)  # ~20 s of lookups: time to kill it mid-way
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = await world.progress(scan_id)
        if int(progress.get("products_checked", 0)) >= 40:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the scan did not progress: {progress}")
    first.send_signal(signal.SIGKILL)
    first.wait()
    world.start_worker()
    assert await world.wait_state(scan_id, {"done", "failed"}, timeout=90) == "done"
    report = await world.report(scan_id)
    assert report["summary"] == world.site.expected.summary()
    got = {(p["marketplace"], p["asin"]): p["status"] for p in report["products"]}
    assert got == {k: str(v) for k, v in world.site.expected.products.items()}
    us = sum(1 for k in world.site.expected.products if k[0] == "www.amazon.com")
    # each answered batch is saved as it arrives: only batches in flight at the kill are asked
    # again (at 8 TPS with loopback latency, one or two)
    assert len(world.sandbox.requests()) <= -(-us // 10) + 2


async def test_cancel_stops_the_scan_and_keeps_what_it_found(world: World) -> None:
    world.start_worker()
    scan_id = await world.new_scan(tps=4.0)
    deadline = time.monotonic() + 30
    while int((await world.progress(scan_id)).get("products_checked", 0)) < 10:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    with MachineLag() as lag:
        await request_cancel(world.redis, scan_id)
        t0 = time.monotonic()
        state = await world.wait_state(scan_id, {"cancelled", "done", "failed"}, timeout=30)
        took = time.monotonic() - t0
    assert state == "cancelled"
    # the worker looks for a cancel at each heartbeat (1 s); the rest is its own stopping
    assert took < lag.bound(5.0), (took, lag.stolen)
    report = await world.report(scan_id)
    assert report["summary"]["urls_scanned"] > 0
    assert any(p["error"] == "not checked: the scan was cancelled" for p in report["products"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"}, "127.0.0.1:1"),
        ({"DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/ccbb"}, "127.0.0.1:1"),
    ],
)
def test_a_worker_without_its_services_says_so_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    full = {**os.environ, "CCBB_DATA_DIR": str(tmp_path), **env}
    if "REDIS_URL" not in env:
        full.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "ccbb.cli", "worker"], env=full, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ccbb:")]
    assert len(errors) == 1, done.stderr  # one line says what is wrong (info lines may precede)
    assert message in errors[0] and "hunter2" not in done.stderr


async def test_a_redis_restart_during_a_scan_does_not_corrupt_it(
    world: World, tmp_path: Path
) -> None:
    from ccbb.embedded import EmbeddedRedis

    if os.environ.get("CCBB_TEST_REDIS_URL"):
        pytest.skip("needs the embedded Redis, which the test can restart")
    world.start_worker()
    scan_id = await world.new_scan(tps=8.0)
    deadline = time.monotonic() + 30
    while int((await world.progress(scan_id)).get("products_checked", 0)) < 20:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    socket_dir = Path(world.env["REDIS_URL"].removeprefix("unix://")).parent.parent
    server = EmbeddedRedis(socket_dir)
    server.start()  # joins the running one
    server.stop(force=True)
    await asyncio.sleep(1.0)
    EmbeddedRedis(socket_dir).start()
    assert await world.wait_state(scan_id, {"done", "failed"}, timeout=90) == "done"
    report = await world.report(scan_id)
    assert report["summary"] == world.site.expected.summary()


async def test_refused_credentials_fail_the_scan_with_the_fix(world: World) -> None:
    world.start_worker()
    scan_id = await world.new_scan(secret="not-the-secret")
    assert await world.wait_state(scan_id, {"done", "failed"}) == "failed"
    async with world.sessions() as session:
        scan = await scans.get_scan(session, scan_id=scan_id)
    assert scan is not None and "refused the credentials" in (scan.error or "")
    assert "not-the-secret" not in (scan.error or "")
    assert (await world.progress(scan_id))["state"] == "failed"


def test_a_worker_on_an_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    env = {**os.environ, "CCBB_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{empty}"}
    env.pop("REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "ccbb.cli", "worker"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("ccbb:")]
    assert len(errors) == 1 and "ccbb migrate" in errors[0], done.stderr


async def test_a_scan_deleted_while_it_runs_ends_quietly(world: World) -> None:
    """The user deletes the account mid-scan (the web cancels, then deletes): the worker stops,
    writes nothing for the gone scan, reports no internal error and runs the next scan."""
    worker = world.start_worker()
    scan_id = await world.new_scan(tps=4.0)
    deadline = time.monotonic() + 30
    while int((await world.progress(scan_id)).get("products_checked", 0)) < 10:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    async with world.sessions() as session:
        owner = (await scans.get_scan(session, scan_id=scan_id)).user_id
        await request_cancel(world.redis, scan_id)
        assert await users.delete_user(session, user_id=owner)
    deadline = time.monotonic() + 10
    while await world.redis.exists(f"ccbb:lease:{scan_id}"):  # the job let go of it
        assert time.monotonic() < deadline, "the worker still holds the deleted scan"
        await asyncio.sleep(0.1)
    following = await world.new_scan()
    assert await world.wait_state(following, {"done", "failed"}) == "done"
    worker.send_signal(signal.SIGTERM)
    worker.wait(10)
    assert worker.stderr is not None
    log = worker.stderr.read().decode()
    assert "internal error" not in log, log[-3000:]
