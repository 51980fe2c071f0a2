"""The referral link's visit counters (web.visit_counter): gathered in memory, written in one
transaction; a failed write keeps them for the next try; a stopping server writes what it has.
A real SQLite database and the real app."""

# ruff: noqa: F811  (the fixtures are imported from test_affiliates)
from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from starlette.testclient import TestClient

from ccbb.settings import Settings
from store import affiliates as store_aff
from store import users as store_users
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.test_affiliates import app_settings, db, new_affiliate, visits  # noqa: F401
from web.app import create_app
from web.visit_counter import VisitCounter

DAY = date(2026, 12, 1)


def test_a_failed_write_keeps_the_counts_for_the_next_try(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'late.sqlite3'}"

    async def go() -> tuple[int, int]:
        engine = make_engine(url)
        counter = VisitCounter(session_factory(engine), interval=60)
        try:
            counter.add(affiliate_id=1, day=DAY, unique=True)
            counter.add(affiliate_id=1, day=DAY, unique=False)
            try:
                await counter.flush()  # no tables yet: the write fails
            except Exception:
                pass
            else:
                raise AssertionError("the write should have failed")
            counter.add(affiliate_id=1, day=DAY, unique=True)  # one more, meanwhile
            await asyncio.to_thread(upgrade, url)
            async with session_factory(engine)() as s:
                owner = await store_users.create_user(s, email="o@example.com", password_hash="x")
                await store_aff.create_affiliate(s, user_id=owner.id, ref_id="ABCDEFGHJK",
                                                 paypal_email="p@x.example", website="")  # fmt: skip
            await counter.flush()
            await counter.flush()  # nothing left: nothing added twice
            async with session_factory(engine)() as s:
                [row] = await store_aff.visit_days(s, affiliate_id=1, start=DAY, end=DAY)
                return row.visits, row.unique_visits
        finally:
            await engine.dispose()

    assert asyncio.run(go()) == (3, 2)


def test_a_stopping_server_writes_the_visits_it_gathered(app_settings: Settings) -> None:
    slow = app_settings.model_copy(update={"affiliate_visit_flush_seconds": 60.0})
    with TestClient(create_app(app_settings)) as client:
        aff = new_affiliate(client, app_settings, "stopping@example.com")
    with TestClient(create_app(slow)) as client:
        for _ in range(3):
            assert client.get(f"/r/{aff.ref_id}", follow_redirects=False).status_code == 303
        assert visits(app_settings, aff) == (0, 0)  # not written yet: once a minute
    assert visits(app_settings, aff) == (3, 1)  # written as the server stopped
