"""Scan credits: an append-only ledger and the balance row it keeps, with their queries.

Tables:

- ``credit_ledger``: one row per change of a user's credits, **never updated or deleted**
  (rows go only with their user, when the account is deleted). ``delta`` (+ grant, − spend),
  ``balance_after`` (CHECK ≥ 0), ``shortfall`` (what a partial revoke could not take back),
  ``kind`` (:data:`KINDS`: grant, revoke, purchase, scan, scan_refund, …), ``source`` (api,
  clickbank, admin, scan, demo…), ``comment`` (the user reads it in the Billing history),
  ``external_id`` (a ClickBank receipt, a scan id) and a UNIQUE ``idempotency_key``.
- ``credit_account``: one row per user: ``balance`` (CHECK ≥ 0, always the sum of the user's
  deltas: each write changes both in one transaction), and the plan (``plan_sku``,
  ``plan_status``, ``period_end``, ``renews``). Reading a balance is one primary-key read.

**Serialised per user.** Every write first takes the user's lock: ``SELECT … FOR UPDATE`` of
the balance row on PostgreSQL (the row is made on first use), ``BEGIN IMMEDIATE`` on SQLite
(one writer at a time for the whole file). Under the lock it reads the balance, decides, and
writes the ledger row and the new balance together; the CHECKs are the last line of defence.

**Transactions.** Each write function is one transaction of its own and commits, unless it is
given ``commit=False``: it then joins the caller's transaction (takes the same lock, writes,
and neither commits nor rolls back; the caller does). That is how a scan is created and paid
for at once (:func:`store.scans.create_scan_spending_credit`). On SQLite, call the first credits
function of such a transaction before any other write of it (``BEGIN IMMEDIATE`` must open it).
On failure (:class:`InsufficientCredits`, …) a committing function has rolled back; with
``commit=False`` the caller must roll back.

**Idempotency.** A repeated ``idempotency_key`` returns the first entry and changes nothing.
Two requests with the same key racing: the second one's insert meets the UNIQUE key and is
rolled back, then answered with the first entry (with ``commit=False``, the caller gets the
``IntegrityError`` and must roll back: keys made from a scan id cannot race).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Row, Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import messages
from store.models import BigId, User, UtcDateTime, table_of, utcnow

log = logging.getLogger(__name__)

# what ledger rows say they are (other modules may add their own kinds: the column is text)
KINDS = ("grant", "revoke", "purchase", "scan", "scan_refund", "consume", "plan", "demo")
MAX_AMOUNT = 1_000_000  # credits in one operation
MAX_KEY = 200
MAX_COMMENT = 500
PLAN_STATUSES = ("none", "active", "cancelled", "ended", "past_due")
# a plan in these states still applies (a cancelled plan runs to the end of its period)
LIVE_PLAN_STATUSES = ("active", "cancelled", "past_due")


class LedgerEntry(SQLModel, table=True):
    """One change of a user's credits (append-only)."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        CheckConstraint("balance_after >= 0", name="balance_after"),
        CheckConstraint("shortfall >= 0", name="shortfall"),
        Index("ix_credit_ledger_user_id_id", "user_id", "id"),
        Index("ix_credit_ledger_external_id", "external_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    delta: int
    balance_after: int
    shortfall: int = 0  # what a partial revoke could not take back (the balance was short)
    kind: str = Field(max_length=32)
    source: str = Field(max_length=32)
    comment: str = Field(default="", max_length=MAX_COMMENT)
    external_id: str | None = Field(default=None, max_length=200)
    idempotency_key: str = Field(max_length=MAX_KEY, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class CreditAccount(SQLModel, table=True):
    """A user's balance (the sum of their ledger deltas) and plan."""

    __tablename__ = "credit_account"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance"),)

    user_id: int = Field(
        primary_key=True,
        foreign_key="user.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    balance: int = 0
    plan_sku: str | None = Field(default=None, max_length=64)
    plan_status: str = Field(default="none", max_length=16)  # PLAN_STATUSES
    period_end: datetime | None = Field(default=None, sa_type=UtcDateTime)
    renews: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)

    @property
    def live_plan(self) -> str | None:
        """The SKU of the plan that applies now (None: no plan, or it ended)."""
        return self.plan_sku if self.plan_status in LIVE_PLAN_STATUSES else None


class CreditApiAnswer(SQLModel, table=True):
    """What the credits API answered a request with an idempotency key (an ``Idempotency-Key``
    header, an ``external_purchase_id``), so that a repeat gets the same answer."""

    __tablename__ = "credit_api_answer"

    key: str = Field(primary_key=True, max_length=300)
    body_sha256: str = Field(max_length=64)
    answer: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


LEDGER = table_of(LedgerEntry)
ACCOUNT: Table = table_of(CreditAccount)
ANSWER = table_of(CreditApiAnswer)
USER = table_of(User)


class CreditError(Exception):
    """A credits operation that cannot be done; the message says why (plain English)."""


class InsufficientCredits(CreditError):
    def __init__(self, *, balance: int, needed: int) -> None:
        self.balance = balance
        self.needed = needed
        super().__init__(messages.INSUFFICIENT.format(balance=balance, needed=needed))


class UnknownUser(CreditError, LookupError):
    pass


class IdempotencyKeyReused(CreditError):
    """The key was used for another user's entry: a caller's bug, not a replay."""


@dataclass(frozen=True)
class Locked:
    """The user's balance, read under their lock, and the entry of the key if it exists."""

    balance: int
    replay: LedgerEntry | None


# ---- the lock ---------------------------------------------------------------------------


async def lock_account(
    session: AsyncSession, *, user_id: int, idempotency_key: str | None = None
) -> Locked:
    """Take the user's lock in the session's transaction (see the module docstring) and read
    their balance (and the entry already written under ``idempotency_key``, if any). Makes the
    balance row on first use. Raises :class:`UnknownUser`."""
    conn = await session.connection()
    if conn.dialect.name == "sqlite":
        raw = await conn.get_raw_connection()
        if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
    found = await _locked_read(conn, user_id, idempotency_key)
    if found is None:
        if (await conn.execute(select(USER.c.id).where(USER.c.id == user_id))).first() is None:
            raise UnknownUser(f"no user {user_id}")
        ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(
            ins(ACCOUNT)
            .values(user_id=user_id, balance=0, plan_status="none", renews=False,
                    updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["user_id"])
        )  # fmt: skip
        found = await _locked_read(conn, user_id, idempotency_key)
        assert found is not None
    balance, replay = found
    return Locked(balance, replay)


async def _locked_read(
    conn: AsyncConnection, user_id: int, key: str | None
) -> tuple[int, LedgerEntry | None] | None:
    if key is None:
        stmt = select(ACCOUNT.c.balance).where(ACCOUNT.c.user_id == user_id).with_for_update()
        row = (await conn.execute(stmt)).first()
        return None if row is None else (int(row[0]), None)
    stmt2 = (
        select(ACCOUNT.c.balance, *LEDGER.c)
        .select_from(ACCOUNT.outerjoin(LEDGER, LEDGER.c.idempotency_key == key))
        .where(ACCOUNT.c.user_id == user_id)
        .with_for_update(of=ACCOUNT)
    )
    row2 = (await conn.execute(stmt2)).first()
    if row2 is None:
        return None
    replay = _entry(row2) if row2.id is not None else None
    return int(row2.balance), replay


def _entry(row: Row[Any]) -> LedgerEntry:
    values = row._mapping
    return LedgerEntry(**{c.name: values[c.name] for c in LEDGER.c})


# ---- writes -----------------------------------------------------------------------------


async def grant(
    session: AsyncSession,
    *,
    user_id: int,
    amount: int,
    kind: str,
    source: str,
    comment: str,
    external_id: str | None = None,
    idempotency_key: str,
    commit: bool = True,
) -> LedgerEntry:
    """Add ``amount`` credits (> 0). A repeated key returns the first entry, changes nothing."""
    _check(amount, idempotency_key)
    return await _apply(
        session, user_id, amount, False, kind, source, comment, external_id,
        idempotency_key, commit,
    )  # fmt: skip


async def revoke(
    session: AsyncSession,
    *,
    user_id: int,
    amount: int,
    kind: str,
    source: str,
    comment: str,
    external_id: str | None = None,
    idempotency_key: str,
    partial: bool = False,
    commit: bool = True,
) -> LedgerEntry:
    """Take ``amount`` credits (> 0) away. Raises :class:`InsufficientCredits` if the balance
    is short, unless ``partial``: then takes what there is (maybe 0) and the entry's
    ``shortfall`` says what could not be taken. A repeated key returns the first entry."""
    _check(amount, idempotency_key)
    return await _apply(
        session, user_id, -amount, partial, kind, source, comment, external_id,
        idempotency_key, commit,
    )  # fmt: skip


def _check(amount: int, key: str) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise ValueError(f"amount must be a whole number from 1 to {MAX_AMOUNT:,}, not {amount!r}")
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"idempotency_key must be 1 to {MAX_KEY} characters")


async def _apply(
    session: AsyncSession,
    user_id: int,
    delta: int,
    partial: bool,
    kind: str,
    source: str,
    comment: str,
    external_id: str | None,
    key: str,
    commit: bool,
) -> LedgerEntry:
    args = (user_id, delta, partial, kind, source, comment, external_id, key)
    try:
        try:
            entry = None
            if commit:
                entry = await _apply_fast(session, *args)
            if entry is None:
                entry = await _apply_once(session, *args)
        except IntegrityError:
            if not commit:
                raise
            await session.rollback()  # a same-key request won the race: answer its entry
            entry = await _apply_once(session, *args)
    except BaseException:
        if commit:
            await session.rollback()
        raise
    if commit:
        await session.commit()
    return entry


async def _apply_fast(
    session: AsyncSession,
    user_id: int,
    delta: int,
    partial: bool,
    kind: str,
    source: str,
    comment: str,
    external_id: str | None,
    key: str,
) -> LedgerEntry | None:
    """PostgreSQL, the common case in one statement: the balance row's UPDATE takes the row
    lock and checks the balance, the ledger row is written from what it returns. None when it
    does not apply (no balance row yet, the balance short, not PostgreSQL): the general path
    then decides, under the lock, and says why. A repeated key fails the INSERT (UNIQUE): the
    caller rolls back and the general path answers the first entry."""
    conn = await session.connection()
    if conn.dialect.name != "postgresql" or session.in_nested_transaction():
        return None
    row = (await conn.execute(_FAST, {  # p_: not taken for the UPDATE's own SET columns
        "p_user_id": user_id, "p_delta": delta, "p_need": max(0, -delta), "p_now": utcnow(),
        "p_kind": kind[:32], "p_source": source[:32], "p_comment": comment[:MAX_COMMENT],
        "p_external_id": None if external_id is None else external_id[:200], "p_key": key,
    })).first()  # fmt: skip
    return None if row is None else _entry(row)


def _fast_statement() -> Any:
    from sqlalchemy import Integer, String, bindparam, literal_column

    def param(name: str, kind: Any) -> Any:
        return bindparam(name, type_=kind)

    now = param("p_now", UtcDateTime())
    set_balance = (
        update(ACCOUNT)
        .where(ACCOUNT.c.user_id == param("p_user_id", Integer()),
               ACCOUNT.c.balance >= param("p_need", Integer()))
        .values(balance=ACCOUNT.c.balance + param("p_delta", Integer()), updated_at=now)
        .returning(ACCOUNT.c.balance)
        .cte("set_balance")
    )  # fmt: skip
    new_row = select(
        param("p_user_id", Integer()), param("p_delta", Integer()), set_balance.c.balance,
        literal_column("0"), param("p_kind", String()), param("p_source", String()),
        param("p_comment", String()), param("p_external_id", String()), param("p_key", String()),
        now,
    ).select_from(set_balance)  # fmt: skip
    columns = ["user_id", "delta", "balance_after", "shortfall", "kind", "source", "comment",
               "external_id", "idempotency_key", "created_at"]  # fmt: skip
    return insert(LEDGER).from_select(columns, new_row).returning(*LEDGER.c)


_FAST = _fast_statement()


async def _apply_once(
    session: AsyncSession,
    user_id: int,
    delta: int,
    partial: bool,
    kind: str,
    source: str,
    comment: str,
    external_id: str | None,
    key: str,
) -> LedgerEntry:
    locked = await lock_account(session, user_id=user_id, idempotency_key=key)
    if locked.replay is not None:
        if locked.replay.user_id != user_id:
            raise IdempotencyKeyReused(f"idempotency key {key!r} belongs to another user")
        return locked.replay
    shortfall = 0
    if locked.balance + delta < 0:
        if not partial:
            raise InsufficientCredits(balance=locked.balance, needed=-delta)
        shortfall = -delta - locked.balance
        delta = -locked.balance
    return await _write(
        session, user_id=user_id, delta=delta, new_balance=locked.balance + delta,
        shortfall=shortfall, kind=kind, source=source, comment=comment,
        external_id=external_id, key=key,
    )  # fmt: skip


async def _write(
    session: AsyncSession,
    *,
    user_id: int,
    delta: int,
    new_balance: int,
    shortfall: int,
    kind: str,
    source: str,
    comment: str,
    external_id: str | None,
    key: str,
) -> LedgerEntry:
    """The ledger row and the new balance, under the lock: one statement on PostgreSQL (a
    data-modifying CTE), two on SQLite."""
    now = utcnow()
    conn = await session.connection()
    row_values = {
        "user_id": user_id,
        "delta": delta,
        "balance_after": new_balance,
        "shortfall": shortfall,
        "kind": kind[:32],
        "source": source[:32],
        "comment": comment[:MAX_COMMENT],
        "external_id": None if external_id is None else external_id[:200],
        "idempotency_key": key,
        "created_at": now,
    }
    set_balance = (
        update(ACCOUNT)
        .where(ACCOUNT.c.user_id == user_id)
        .values(balance=new_balance, updated_at=now)
    )
    add_row = insert(LEDGER).values(**row_values).returning(*LEDGER.c)
    if conn.dialect.name == "postgresql":
        row = (await conn.execute(add_row.add_cte(set_balance.cte("set_balance")))).one()
    else:
        await conn.execute(set_balance)
        row = (await conn.execute(add_row)).one()
    return _entry(row)


async def set_plan(
    session: AsyncSession,
    *,
    user_id: int,
    sku: str | None,
    status: str,
    period_end: datetime | None,
    renews: bool,
    commit: bool = True,
) -> None:
    """The user's plan (``sku`` None: no plan) and its state (:data:`PLAN_STATUSES`), when
    its period ends and whether it renews. Credits are granted separately (:func:`grant`)."""
    if status not in PLAN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(PLAN_STATUSES)}, not {status!r}")
    try:
        await lock_account(session, user_id=user_id)
        conn = await session.connection()
        await conn.execute(
            update(ACCOUNT)
            .where(ACCOUNT.c.user_id == user_id)
            .values(plan_sku=sku, plan_status=status, period_end=period_end, renews=renews,
                    updated_at=utcnow())
        )  # fmt: skip
    except BaseException:
        if commit:
            await session.rollback()
        raise
    if commit:
        await session.commit()


# ---- reads ------------------------------------------------------------------------------


async def balance(session: AsyncSession, *, user_id: int) -> int:
    """The user's credits (0 before their first): one primary-key read, no ledger scan."""
    conn = await session.connection()
    stmt = select(ACCOUNT.c.balance).where(ACCOUNT.c.user_id == user_id)
    value = (await conn.execute(stmt)).scalar_one_or_none()
    return int(value or 0)


async def get_account(session: AsyncSession, *, user_id: int) -> CreditAccount | None:
    conn = await session.connection()
    row = (await conn.execute(select(ACCOUNT).where(ACCOUNT.c.user_id == user_id))).first()
    return None if row is None else CreditAccount(**row._mapping)


async def history(
    session: AsyncSession, *, user_id: int, limit: int = 50, offset: int = 0
) -> list[LedgerEntry]:
    """The user's ledger, newest first."""
    conn = await session.connection()
    stmt = (
        select(LEDGER)
        .where(LEDGER.c.user_id == user_id)
        .order_by(LEDGER.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_entry(r) for r in (await conn.execute(stmt)).all()]


async def get_entry(session: AsyncSession, *, idempotency_key: str) -> LedgerEntry | None:
    """The entry written under ``idempotency_key``, if any."""
    conn = await session.connection()
    stmt = select(LEDGER).where(LEDGER.c.idempotency_key == idempotency_key)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _entry(row)


async def ledger_sum(session: AsyncSession, *, user_id: int) -> int:
    """The sum of the user's deltas (what the balance must equal; for checks and tests)."""
    from sqlalchemy import func

    conn = await session.connection()
    stmt = select(func.coalesce(func.sum(LEDGER.c.delta), 0)).where(LEDGER.c.user_id == user_id)
    return int((await conn.execute(stmt)).scalar_one())


async def user_ids_by_public_id(session: AsyncSession, *, public_ids: list[str]) -> dict[str, int]:
    """The database ids of the users with these public ids (unknown ones are absent)."""
    if not public_ids:
        return {}
    conn = await session.connection()
    stmt = select(USER.c.public_id, USER.c.id).where(USER.c.public_id.in_(sorted(set(public_ids))))
    return {str(r.public_id): int(r.id) for r in (await conn.execute(stmt)).all()}


async def get_answer(session: AsyncSession, *, key: str) -> CreditApiAnswer | None:
    conn = await session.connection()
    row = (await conn.execute(select(ANSWER).where(ANSWER.c.key == key))).first()
    return None if row is None else CreditApiAnswer(**row._mapping)


async def save_answer(
    session: AsyncSession, *, key: str, body_sha256: str, answer: dict[str, Any]
) -> None:
    """Keep an answer, in the caller's transaction (no commit): with the writes it answers."""
    conn = await session.connection()
    await conn.execute(
        insert(ANSWER).values(key=key[:300], body_sha256=body_sha256, answer=answer,
                              created_at=utcnow())
    )  # fmt: skip
