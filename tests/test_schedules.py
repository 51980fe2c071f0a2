"""Scheduled scans on a real database (SQLite, and PostgreSQL when CCBB_TEST_POSTGRES_URL is
set) and a real Redis, the clock injected (never slept): two workers at the due time queue
and start the scan exactly once; a site still being scanned is skipped; credits running out
pause the schedule and tell the user once."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from ccbb import dispatch
from ccbb.schedule_rules import Rule
from ccbb.settings import Settings
from store import credentials, credits, monitoring, scans, users
from store import mail as store_mail
from store.crypto import SecretBox
from store.db import make_engine, session_factory
from store.migrate import upgrade
from store.models import Scan
from tests.conftest import PG_ENV

DUE = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)  # a Tuesday, 06:00 UTC
SITE = "https://shop.example/"


@dataclass
class Worker:
    """What one worker process has: its own database engine and Redis pool, one clock."""

    ctx: dict[str, Any]
    now: list[datetime]

    async def tick(self, at: datetime) -> int:
        self.now[0] = at
        return await dispatch.dispatch(self.ctx)


@dataclass
class World:
    workers: list[Worker]
    redis: ArqRedis
    sessions: Any
    user_id: int
    scan_id: int  # the finished scan the schedule was made from

    async def queued(self, prefix: str) -> list[str]:
        ids = await self.redis.zrange(self.redis.default_queue_name, 0, -1)
        return sorted(i.decode() for i in ids if i.decode().startswith(prefix))

    async def run_queued(self) -> list[str]:
        """Run every queued scheduled_scan_job in both workers at once, as arq would hand the
        same job to whichever worker asks (both get it here: the worst case)."""
        out: list[str] = []
        for job_id in await self.queued("sched:"):
            job = await self.redis._get_job_def(job_id.encode(), None)  # type: ignore[attr-defined]
            out += await asyncio.gather(
                *(dispatch.scheduled_scan_job(w.ctx, *job.args) for w in self.workers)
            )
            await self.redis.zrem(self.redis.default_queue_name, job_id)
        return sorted(out)

    async def schedule(self) -> Any:
        async with self.sessions() as session:
            (row,) = await monitoring.list_schedules(session, user_id=self.user_id)
            return row

    async def scans(self) -> list[Any]:
        async with self.sessions() as session:
            return await scans.list_scans(session, user_id=self.user_id)


@pytest.fixture(params=["sqlite", "postgresql"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, test_redis_url: str
) -> AsyncIterator[World]:
    if request.param == "postgresql":
        if not os.environ.get(PG_ENV):
            pytest.skip(f"PostgreSQL tests need {PG_ENV}")
        url = request.getfixturevalue("pg_schemas")()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'ccbb.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(CCBB_DATA_DIR=tmp_path, CCBB_SMTP_HOST="127.0.0.1", CCBB_SMTP_TLS="off",
                        CCBB_PUBLIC_URL="http://ccbb.test")  # fmt: skip
    queue = f"q-{uuid.uuid4().hex}"
    workers, engines, pools = [], [], []
    for _ in range(2):
        engine = make_engine(url)
        pool = await create_pool(RedisSettings.from_dsn(test_redis_url), default_queue_name=queue)
        engines.append(engine)
        pools.append(pool)
        now = [DUE]
        ctx = {"settings": settings, "sessions": session_factory(engine), "redis": pool,
               "clock": lambda now=now: now[0]}  # fmt: skip
        workers.append(Worker(ctx, now))
    sessions = session_factory(engines[0])
    async with sessions() as session:
        user = await users.create_user(session, email="me@example.com", password_hash="x")
        assert user.id is not None
        await credits.grant(session, user_id=user.id, amount=2, kind="grant", source="test",
                            comment="test", idempotency_key=f"t:{user.id}")  # fmt: skip
        cred = await credentials.create_credential(
            session, box=SecretBox.from_settings(settings), user_id=user.id,
            credential_id="CID", secret="s3cret", partner_tag="me-20",
        )  # fmt: skip
        scan = await scans.create_scan(
            session, user_id=user.id, site=SITE, marketplace="www.amazon.com",
            partner_tag="me-20", options={"cloak_prefixes": [], "tps": 1.0},
            credential_id=cred.id,
        )  # fmt: skip
        assert scan.id is not None
        await scans.fail_scan(session, scan_id=scan.id, reason="done with it")
        await monitoring.save_schedule(
            session, from_scan=scan, rule=Rule("daily", hour=6), now=DUE - timedelta(hours=1)
        )
    try:
        yield World(workers, pools[0], sessions, user.id, scan.id)
    finally:
        for pool in pools:
            await pool.delete(queue)
            await pool.aclose()
        for engine in engines:
            await engine.dispose()


async def test_two_workers_at_the_due_time_queue_and_start_the_scan_once(world: World) -> None:
    a, b = world.workers
    assert (await world.schedule()).next_due_at == DUE
    # a minute early: nothing is due
    assert await a.tick(DUE - timedelta(minutes=1)) == 0
    # both workers tick at the due time, at once
    counts = await asyncio.gather(
        a.tick(DUE + timedelta(seconds=2)), b.tick(DUE + timedelta(seconds=3))
    )
    assert sorted(counts) == [0, 1]
    schedule = await world.schedule()
    assert await world.queued("sched:") == [
        dispatch.run_job_id(schedule.id, DUE, schedule.created_at)
    ]
    assert (await world.schedule()).next_due_at == DUE + timedelta(days=1)
    # the same job run by both workers: one scan, one credit
    outcomes = await world.run_queued()
    assert outcomes[1] == "taken up already" and outcomes[0].startswith("Scan #")
    made = [s for s in await world.scans() if s.id != world.scan_id]
    assert len(made) == 1 and made[0].options["scheduled"] is True
    assert await world.queued("scan:") == [
        f"scan:{made[0].id}:" + (await world.queued("scan:"))[0].split(":", 2)[2]
    ]
    async with world.sessions() as session:
        assert (await credits.get_account(session, user_id=world.user_id)).balance == 1
    # ticking again at the same time queues nothing more
    assert await a.tick(DUE + timedelta(minutes=1)) == 0


async def test_a_site_still_being_scanned_is_skipped_until_its_next_due_time(world: World) -> None:
    a, _ = world.workers
    await a.tick(DUE)
    await world.run_queued()
    (running,) = [s for s in await world.scans() if s.id != world.scan_id]
    assert running.state == "queued"  # not finished by the next day
    await a.tick(DUE + timedelta(days=1))
    assert await world.run_queued() == sorted([dispatch.STILL_SCANNING, "taken up already"])
    schedule = await world.schedule()
    assert schedule.last_outcome == dispatch.STILL_SCANNING
    assert schedule.next_due_at == DUE + timedelta(days=2)
    assert len(await world.scans()) == 2  # no second scan of the site


async def test_credits_running_out_pause_the_schedule_and_tell_the_user_once(world: World) -> None:
    a, _ = world.workers
    for day in range(2):  # two credits: two scheduled scans (each finished in between)
        await a.tick(DUE + timedelta(days=day))
        await world.run_queued()
        async with world.sessions() as session:
            for s in await scans.list_active_ids(session, user_id=world.user_id):
                await monitoring.touch(session, Scan, s, state="done")  # no refund
    await a.tick(DUE + timedelta(days=2))
    assert dispatch.NO_CREDITS in await world.run_queued()
    schedule = await world.schedule()
    assert schedule.next_due_at is None and schedule.paused_reason == dispatch.NO_CREDITS
    async with world.sessions() as session:
        mails = [m for m in await store_mail.recent_mails(session) if m.key.startswith("paused:")]
    assert len(mails) == 1 and mails[0].to_addr == "me@example.com"
    assert (
        "no scan credits left" in mails[0].text_body
        and "http://ccbb.test/monitoring" in mails[0].text_body
    )
    # paused: later ticks queue nothing, so the user is not told again
    assert await a.tick(DUE + timedelta(days=3)) == 0
    assert await a.tick(DUE + timedelta(days=10)) == 0
    # turned on again (after buying credits), the schedule runs and may pause (and tell) anew
    async with world.sessions() as session:
        scan = await scans.get_scan(session, scan_id=world.scan_id)
        row = await monitoring.save_schedule(
            session, from_scan=scan, rule=Rule("daily", hour=6), now=DUE + timedelta(days=10)
        )
    assert row.paused_reason is None and row.next_due_at == DUE + timedelta(days=11)
