"""The INS endpoint's storage on SQLite and PostgreSQL: a batch of notifications written in one
statement (redeliveries in the same batch counted, one of them new), and the group-commit
writer that many concurrent requests share."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from store import clickbank as store_cb
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.conftest import _off_loop
from web.ins_store import InsStore
from web.ins_writer import EventWriter

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ccbb.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_schemas")()
    _off_loop(upgrade, url)
    return url


def row(key: str) -> dict[str, Any]:
    return {"key": key, "transaction_type": "SALE", "receipt": key[:8], "base_receipt": key[:8],
            "role": "VENDOR", "transaction_time": datetime(2026, 12, 1, tzinfo=UTC), "raw": "{}"}  # fmt: skip


async def test_a_batch_with_redeliveries(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            got = await store_cb.record_events(session, rows=[row("AAAA0001"), row("BBBB0001"),
                                                              row("AAAA0001")])  # fmt: skip
            assert got["AAAA0001"].new and got["AAAA0001"].deliveries == 2
            assert got["BBBB0001"].new and got["BBBB0001"].deliveries == 1
            again = await store_cb.record_event(session, values=row("AAAA0001"))
            assert not again.new and again.deliveries == 3
            assert again.event_id == got["AAAA0001"].event_id
            assert len(await store_cb.list_events(session)) == 2
    finally:
        await engine.dispose()


async def test_concurrent_requests_share_commits(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        writer = EventWriter(session_factory(engine))
        keys = [f"K{i % 60:07d}" for i in range(200)]  # 60 notifications, 200 deliveries
        got = await asyncio.gather(*(writer.record(row(k)) for k in keys))
        assert len({g.event_id for g in got}) == 60
        async with session_factory(engine)() as session:
            events = await store_cb.list_events(session, limit=100)
        assert len(events) == 60 and sum(e.deliveries for e in events) == 200
        assert writer.pending == [] and not writer.writing
        # a failing batch fails its requests, and the writer goes on
        bad = {**row(f"Z{uuid.uuid4().hex[:7]}"), "raw": None}  # NOT NULL
        with pytest.raises(Exception):  # noqa: B017 - the database's own error
            await writer.record(bad)
        assert (await writer.record(row("AFTER001"))).new
    finally:
        await engine.dispose()


async def test_the_ins_store_keeps_each_notification_in_one_statement(db_url: str) -> None:
    """web.ins_store, as the endpoint uses it: on PostgreSQL one upsert per notification on its
    own asyncpg pool (200 concurrent deliveries of 60 notifications: 60 events, every delivery
    counted); on SQLite the group-commit writer."""
    engine = make_engine(db_url)
    store = InsStore(db_url, session_factory(engine))
    await store.start()
    try:
        assert (store.pool is not None) is db_url.startswith("postgresql")
        keys = [f"S{i % 60:07d}" for i in range(200)]
        got = await asyncio.gather(*(store.record(row(k)) for k in keys))
        by_key: dict[str, list[store_cb.Received]] = {}
        for key, received in zip(keys, got, strict=True):
            by_key.setdefault(key, []).append(received)
        assert len(by_key) == 60
        for key, answers in by_key.items():
            assert len({a.event_id for a in answers}) == 1, key
            # on PostgreSQL exactly one delivery made it; the SQLite writer answers a batch's
            # redeliveries alike (their jobs share one id: queued once)
            assert sum(a.new for a in answers) == 1 if store.pool else any(a.new for a in answers)
            assert all(a.state == store_cb.PENDING for a in answers)
        async with session_factory(engine)() as session:
            events = await store_cb.list_events(session, limit=100)
        assert len(events) == 60 and sum(e.deliveries for e in events) == 200
        one = next(e for e in events if e.key == "S0000001")
        assert one.transaction_time == datetime(2026, 12, 1, tzinfo=UTC) and one.raw == "{}"
        # a refused row fails its own request only
        with pytest.raises(Exception):  # noqa: B017 - the database's own error
            await store.record({**row(f"Z{uuid.uuid4().hex[:7]}"), "raw": None})
        assert (await store.record(row("AFTER002"))).new
    finally:
        await store.close()
        await engine.dispose()
