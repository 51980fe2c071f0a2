# ruff: noqa: F811  (pytest fixtures imported from tests.test_store)
"""The credits ledger against real databases (SQLite always, PostgreSQL when
``CCBB_TEST_POSTGRES_URL`` is set): the balance never below zero, always the sum of the deltas,
idempotent keys, and writes serialised per user even from several processes at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from scanner.amazon import ProductResult
from scanner.classify import Status
from store import credits, scans, users
from store.credits import LEDGER
from store.db import make_engine, session_factory
from store.models import Scan
from tests import ledger_worker
from tests.test_store import db_url, engine, pg_url, session  # noqa: F401 (fixtures)


async def _user(session: AsyncSession) -> int:
    user = await users.create_user(
        session, email=f"{uuid.uuid4().hex[:12]}@example.com", password_hash="x"
    )
    assert user.id is not None
    return user.id


async def _grant(session: AsyncSession, user_id: int, amount: int, key: str | None = None) -> None:
    await credits.grant(
        session, user_id=user_id, amount=amount, kind="grant", source="admin",
        comment="Granted by support", idempotency_key=key or uuid.uuid4().hex,
    )  # fmt: skip


async def _rows(session: AsyncSession, user_id: int) -> int:
    conn = await session.connection()
    stmt = select(func.count()).select_from(LEDGER).where(LEDGER.c.user_id == user_id)
    return int((await conn.execute(stmt)).scalar_one())


async def _consistent(session: AsyncSession, user_id: int) -> int:
    """The balance, after checking it equals the sum of the deltas and the last balance_after."""
    await session.commit()
    balance = await credits.balance(session, user_id=user_id)
    assert balance == await credits.ledger_sum(session, user_id=user_id)
    last = await credits.history(session, user_id=user_id, limit=1, offset=0)
    assert balance == (last[0].balance_after if last else 0)
    return balance


async def test_grant_revoke_and_history(session: AsyncSession) -> None:
    uid = await _user(session)
    assert await credits.balance(session, user_id=uid) == 0
    assert await credits.get_account(session, user_id=uid) is None
    first = await credits.grant(
        session, user_id=uid, amount=10, kind="purchase", source="clickbank",
        comment="Pro plan, monthly renewal", external_id="P3RGBKGB", idempotency_key="cb:1",
    )  # fmt: skip
    assert (first.delta, first.balance_after, first.external_id) == (10, 10, "P3RGBKGB")
    spent = await credits.revoke(
        session, user_id=uid, amount=3, kind="revoke", source="admin", comment="Correction",
        idempotency_key="adm:1",
    )  # fmt: skip
    assert (spent.delta, spent.balance_after, spent.shortfall) == (-3, 7, 0)
    assert await _consistent(session, uid) == 7
    entries = await credits.history(session, user_id=uid, limit=10, offset=0)
    assert [e.comment for e in entries] == ["Correction", "Pro plan, monthly renewal"]
    assert [e.idempotency_key for e in await credits.history(session, user_id=uid, limit=1,
            offset=1)] == ["cb:1"]  # fmt: skip
    account = await credits.get_account(session, user_id=uid)
    assert account is not None and account.balance == 7 and account.plan_sku is None


async def test_a_repeated_key_answers_the_first_entry_and_changes_nothing(
    session: AsyncSession,
) -> None:
    uid, other = await _user(session), await _user(session)
    first = await credits.grant(
        session, user_id=uid, amount=5, kind="grant", source="api", comment="first",
        idempotency_key="k-1",
    )  # fmt: skip
    again = await credits.grant(
        session, user_id=uid, amount=50, kind="grant", source="api", comment="second",
        idempotency_key="k-1",
    )  # fmt: skip
    assert again.id == first.id and again.delta == 5 and again.comment == "first"
    spent = await credits.revoke(
        session, user_id=uid, amount=2, kind="revoke", source="api", comment="r",
        idempotency_key="k-2",
    )  # fmt: skip
    replay = await credits.revoke(
        session, user_id=uid, amount=2, kind="revoke", source="api", comment="r",
        idempotency_key="k-2",
    )  # fmt: skip
    assert replay.id == spent.id
    assert await _consistent(session, uid) == 3
    assert await _rows(session, uid) == 2
    with pytest.raises(credits.IdempotencyKeyReused):
        await _grant(session, other, 1, key="k-1")
    assert await _consistent(session, other) == 0


async def test_revoking_more_than_the_balance(session: AsyncSession) -> None:
    uid = await _user(session)
    await _grant(session, uid, 4)
    with pytest.raises(credits.InsufficientCredits) as caught:
        await credits.revoke(
            session, user_id=uid, amount=5, kind="revoke", source="api", comment="too much",
            idempotency_key=uuid.uuid4().hex,
        )  # fmt: skip
    assert (caught.value.balance, caught.value.needed) == (4, 5)
    assert "Billing" in str(caught.value)
    assert await _consistent(session, uid) == 4 and await _rows(session, uid) == 1
    # partial: takes what there is, says what it could not
    part = await credits.revoke(
        session, user_id=uid, amount=5, kind="refund", source="clickbank", comment="Refund",
        idempotency_key="p-1", partial=True,
    )  # fmt: skip
    assert (part.delta, part.balance_after, part.shortfall) == (-4, 0, 1)
    empty = await credits.revoke(
        session, user_id=uid, amount=2, kind="refund", source="clickbank", comment="Refund",
        idempotency_key="p-2", partial=True,
    )  # fmt: skip
    assert (empty.delta, empty.balance_after, empty.shortfall) == (0, 0, 2)
    assert await _consistent(session, uid) == 0


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, 10**7])
async def test_bad_amounts_are_refused(session: AsyncSession, amount: object) -> None:
    uid = await _user(session)
    with pytest.raises(ValueError, match="whole number"):
        await credits.grant(
            session, user_id=uid, amount=amount, kind="grant", source="api",  # type: ignore[arg-type]
            comment="", idempotency_key="x",
        )  # fmt: skip


async def test_unknown_user(session: AsyncSession) -> None:
    with pytest.raises(credits.UnknownUser):
        await _grant(session, 987_654_321, 1)


async def test_the_database_refuses_a_negative_balance(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        uid = await _user(session)
        await _grant(session, uid, 1)
    for stmt in (
        text("UPDATE credit_account SET balance = -1 WHERE user_id = :u"),
        text(
            "INSERT INTO credit_ledger (user_id, delta, balance_after, shortfall, kind, source, "
            "comment, idempotency_key, created_at) VALUES (:u, -2, -1, 0, 'scan', 'scan', '', "
            "'neg', CURRENT_TIMESTAMP)"
        ),
    ):
        async with engine.connect() as conn:
            with pytest.raises(IntegrityError):
                await conn.execute(stmt, {"u": uid})


async def test_set_plan(session: AsyncSession) -> None:
    uid = await _user(session)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    await credits.set_plan(
        session, user_id=uid, sku="plan_pro", status="active", period_end=end, renews=True
    )
    account = await credits.get_account(session, user_id=uid)
    assert account is not None
    assert (account.plan_sku, account.plan_status, account.period_end, account.renews) == (
        "plan_pro", "active", end, True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="status"):
        await credits.set_plan(
            session, user_id=uid, sku=None, status="gone", period_end=None, renews=False
        )


def _pool(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


@pytest.mark.slow
@pytest.mark.parametrize("path", ["session", "writes"])
async def test_50_concurrent_spends_from_5_processes_against_a_balance_of_10(
    db_url: str,
    session: AsyncSession,
    path: str,
) -> None:
    """Through the session, and through a Writes pool (the one-statement spend in autocommit on
    PostgreSQL; on SQLite it stays idle and the session path runs)."""
    uid = await _user(session)
    await _grant(session, uid, 10)
    await session.commit()
    start = time.time() + 3.0  # the processes start, then all spend at once
    tag = uuid.uuid4().hex
    with _pool(5) as pool:
        futures = [
            pool.submit(ledger_worker.spend, db_url, uid, 10, start, f"{tag}:{p}", path)
            for p in range(5)
        ]
        results = [f.result(timeout=90) for f in futures]
    assert sum(ok for ok, _ in results) == 10
    assert sum(refused for _, refused in results) == 40
    assert await _consistent(session, uid) == 0
    assert await _rows(session, uid) == 11  # the grant and exactly 10 spends
    balances = [e.balance_after for e in await credits.history(session, user_id=uid, limit=20)]
    assert balances == list(range(0, 11))  # each spend saw the one before it


@pytest.mark.slow
async def test_20_concurrent_scan_creations_get_exactly_the_cap(
    db_url: str,
    session: AsyncSession,
) -> None:
    """Issue 8: 20 concurrent creations from one user gave 8 active scans with a cap of 3."""
    uid = await _user(session)
    await _grant(session, uid, 100)
    await session.commit()
    start = time.time() + 3.0
    with _pool(4) as pool:
        futures = [
            pool.submit(ledger_worker.create_scans, db_url, uid, 5, 3, start) for _ in range(4)
        ]
        results = [f.result(timeout=90) for f in futures]
    assert sum(r[0] for r in results) == 3
    assert sum(r[1] for r in results) == 17
    assert sum(r[2] for r in results) == 0
    assert len(await scans.list_active_ids(session, user_id=uid)) == 3
    assert await _consistent(session, uid) == 97


# ---- the one-statement write on a Writes pool (PostgreSQL) ----------------------------------


@pytest.fixture
async def writes(db_url: str) -> AsyncIterator[credits.Writes]:
    pool = credits.Writes(db_url)
    await pool.start()
    yield pool
    await pool.close()


def _statements(engine: AsyncEngine) -> list[str]:
    """The SQL the engine (the session path) runs from now on."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_writes_spend_in_one_statement_and_leave_the_rest_to_the_session(
    db_url: str, engine: AsyncEngine, session: AsyncSession, writes: credits.Writes
) -> None:
    uid, other = await _user(session), await _user(session)
    await session.commit()
    on_pg = db_url.startswith("postgresql")
    assert (writes.pool is not None) == on_pg  # SQLite: idle, the session path runs
    seen = _statements(engine)
    # the first write of a user (no balance row yet): the session path makes the row
    await credits.grant(
        session, user_id=uid, amount=5, kind="grant", source="admin", comment="Welcome",
        idempotency_key=f"w-grant:{uid}", writes=writes,
    )  # fmt: skip
    assert seen, "the first grant makes the balance row through the session"
    seen.clear()
    spent = await credits.revoke(
        session, user_id=uid, amount=2, kind="scan", source="scan", comment="Scan #1 of a.example",
        external_id="1", idempotency_key=f"w-spend:{uid}", writes=writes,
    )  # fmt: skip
    assert (seen == []) == on_pg, seen  # PostgreSQL: not one statement through the session
    assert (spent.delta, spent.balance_after, spent.shortfall, spent.external_id) == (-2, 3, 0, "1")
    assert spent.created_at.tzinfo is not None and spent.created_at.utcoffset() == timedelta(0)
    stored = await credits.get_entry(session, idempotency_key=f"w-spend:{uid}")
    assert stored is not None and stored.model_dump() == spent.model_dump()
    await session.commit()
    # a repeated key: the first entry, nothing changed (the statement meets the UNIQUE key)
    replay = await credits.revoke(
        session, user_id=uid, amount=2, kind="scan", source="scan", comment="again",
        idempotency_key=f"w-spend:{uid}", writes=writes,
    )  # fmt: skip
    assert replay.model_dump() == spent.model_dump()
    assert await _consistent(session, uid) == 3 and await _rows(session, uid) == 2
    # the balance short: refused, or what there is taken with the shortfall written down
    with pytest.raises(credits.InsufficientCredits) as caught:
        await credits.revoke(
            session, user_id=uid, amount=4, kind="scan", source="scan", comment="too much",
            idempotency_key=f"w-short:{uid}", writes=writes,
        )  # fmt: skip
    assert (caught.value.balance, caught.value.needed) == (3, 4)
    part = await credits.revoke(
        session, user_id=uid, amount=4, kind="refund", source="clickbank", comment="Refund",
        idempotency_key=f"w-part:{uid}", partial=True, writes=writes,
    )  # fmt: skip
    assert (part.delta, part.balance_after, part.shortfall) == (-3, 0, 1)
    with pytest.raises(credits.IdempotencyKeyReused):
        await credits.grant(
            session, user_id=other, amount=1, kind="grant", source="admin", comment="",
            idempotency_key=f"w-spend:{uid}", writes=writes,
        )  # fmt: skip
    assert await _consistent(session, uid) == 0 and await _rows(session, uid) == 3
    assert await _consistent(session, other) == 0


async def test_writes_leave_a_callers_open_transaction_to_the_session(
    session: AsyncSession, writes: credits.Writes
) -> None:
    """A write that commits given a session with work of its own pending commits that work with
    it: the pool (autocommit, another connection) is not used then."""
    uid = await _user(session)
    await _grant(session, uid, 1)
    scan = Scan(user_id=uid, site="https://a.example/", marketplace="www.amazon.com",
                partner_tag="x-20")  # fmt: skip
    session.add(scan)
    await session.flush()  # pending in the session's transaction
    await credits.revoke(
        session, user_id=uid, amount=1, kind="scan", source="scan", comment="Scan",
        idempotency_key=f"w-open:{uid}", writes=writes,
    )  # fmt: skip
    await session.rollback()  # nothing left to roll back: the revoke committed both
    assert await scans.get_scan(session, scan_id=scan.id or 0) is not None
    assert await _consistent(session, uid) == 0


async def test_writes_run_again_on_a_connection_dropped_in_the_middle(pg_url: str) -> None:
    """The server ends the connection while the spend waits for the user's row lock (a
    restart, an operator's pg_terminate_backend): the spend is run again on a new connection,
    once, and written once."""
    writes = credits.Writes(pg_url, connections=1)
    await writes.start()
    engine = make_engine(pg_url)
    sessions = session_factory(engine)
    try:
        assert writes.pool is not None
        async with sessions() as session:
            uid = await _user(session)
            await _grant(session, uid, 3)
        async with writes.pool.acquire() as raw:
            pid = raw.get_server_pid()  # the pool's one connection
        async with engine.connect() as holder, engine.connect() as admin:
            await holder.execute(  # the user's row lock, held: the spend waits for it
                text("SELECT balance FROM credit_account WHERE user_id = :u FOR UPDATE"),
                {"u": uid},
            )
            async with sessions() as session:
                spending = asyncio.create_task(credits.revoke(
                    session, user_id=uid, amount=1, kind="scan", source="scan", comment="Scan",
                    idempotency_key=f"w-drop:{uid}", writes=writes,
                ))  # fmt: skip
                waiting = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
                for _ in range(200):
                    if (await admin.execute(waiting, {"pid": pid})).scalar() == "Lock":
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("the spend never waited for the lock")
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await asyncio.sleep(0.2)  # the spend runs again and waits for the lock again
                await holder.rollback()  # the lock goes
                spent = await asyncio.wait_for(spending, 30)
        assert spent.balance_after == 2
        async with sessions() as session:
            assert await _consistent(session, uid) == 2 and await _rows(session, uid) == 2
    finally:
        await writes.close()
        await engine.dispose()


# ---- a scan spends a credit, and gets it back once -------------------------------------------


async def _paid_scan(session: AsyncSession, uid: int, enabled: bool = True) -> Scan:
    return await scans.create_scan_spending_credit(
        session, user_id=uid, credits_enabled=enabled, active_cap=10,
        site="https://shop.example/", marketplace="www.amazon.com", partner_tag="x-20",
    )  # fmt: skip


async def test_a_scan_spends_one_credit_and_none_when_there_is_none(session: AsyncSession) -> None:
    uid = await _user(session)
    with pytest.raises(scans.NoCredits, match="Billing"):
        await _paid_scan(session, uid)
    assert await scans.list_scans(session, user_id=uid) == []
    await _grant(session, uid, 1)
    scan = await _paid_scan(session, uid)
    assert await _consistent(session, uid) == 0
    entry = (await credits.history(session, user_id=uid, limit=1))[0]
    assert (entry.kind, entry.delta, entry.external_id) == ("scan", -1, str(scan.id))
    assert entry.comment == f"Scan #{scan.id} of shop.example"
    with pytest.raises(scans.NoCredits):
        await _paid_scan(session, uid)
    free = await _paid_scan(session, uid, enabled=False)  # CCBB_CREDITS=off
    assert free.id is not None and await _rows(session, uid) == 2


async def _refunds(session: AsyncSession, uid: int) -> list[credits.LedgerEntry]:
    return [
        e for e in await credits.history(session, user_id=uid, limit=100) if e.kind == "scan_refund"
    ]


async def test_cancelled_before_it_starts_is_refunded_once(session: AsyncSession) -> None:
    uid = await _user(session)
    await _grant(session, uid, 2)
    scan = await _paid_scan(session, uid)
    assert scan.id is not None
    assert await scans.cancel_scan(session, scan_id=scan.id)
    assert not await scans.cancel_scan(session, scan_id=scan.id)
    refunds = await _refunds(session, uid)
    assert len(refunds) == 1 and refunds[0].comment.startswith(f"Refund: scan #{scan.id}")
    assert await _consistent(session, uid) == 2
    # started, then cancelled: the credit is spent
    started = await _paid_scan(session, uid)
    assert started.id is not None
    await scans.mark_running(session, scan_id=started.id)
    assert await scans.cancel_scan(session, scan_id=started.id)
    assert len(await _refunds(session, uid)) == 1
    assert await _consistent(session, uid) == 1


async def test_failed_before_any_product_is_refunded_once(session: AsyncSession) -> None:
    uid = await _user(session)
    await _grant(session, uid, 2)
    scan = await _paid_scan(session, uid)
    assert scan.id is not None
    await scans.mark_running(session, scan_id=scan.id)
    await scans.mark_running(session, scan_id=scan.id)  # a second attempt (worker restarted)
    assert await scans.fail_scan(session, scan_id=scan.id, reason="site unreachable")
    assert not await scans.fail_scan(session, scan_id=scan.id, reason="again")
    assert len(await _refunds(session, uid)) == 1
    assert await _consistent(session, uid) == 2
    # failed after checking products: no refund
    other = await _paid_scan(session, uid)
    assert other.id is not None
    await scans.mark_running(session, scan_id=other.id)
    result = ProductResult("B000000001", "www.amazon.com", Status.AVAILABLE, "T")
    await scans.save_products(session, scan_id=other.id, results=[result])
    assert await scans.fail_scan(session, scan_id=other.id, reason="Amazon refused")
    assert len(await _refunds(session, uid)) == 1
    assert await _consistent(session, uid) == 1


async def test_a_free_scan_gets_no_refund(session: AsyncSession) -> None:
    uid = await _user(session)
    scan = await _paid_scan(session, uid, enabled=False)
    assert scan.id is not None
    assert await scans.cancel_scan(session, scan_id=scan.id)
    assert await _refunds(session, uid) == []
    assert await _consistent(session, uid) == 0


def test_keys_differ_for_a_reused_scan_id() -> None:
    now = datetime.now(UTC)
    assert scans.spend_key(5, now) != scans.spend_key(5, now + timedelta(seconds=1))
    assert scans.spend_key(5, now) != scans.refund_key(5, now)
