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

**The common write on PostgreSQL, in one statement.** A spend or grant that commits on its
own is first tried as one statement (:data:`_FAST`): the balance row's ``UPDATE … WHERE
balance >= need`` takes the user's row lock and checks the balance, the ledger row is inserted
from what it returns. It runs on a :class:`Writes` pool when the caller gives one (plain asyncpg
in autocommit: one round trip, the row lock held for the statement and its commit), else in
the session. When it does not apply (no balance row yet, the balance short, a repeated key: it
writes nothing), the general path above decides under the lock and says why.

**Idempotency.** A repeated ``idempotency_key`` returns the first entry and changes nothing.
Two requests with the same key racing: the second one's insert meets the UNIQUE key and is
rolled back, then answered with the first entry (with ``commit=False``, the caller gets the
``IntegrityError`` and must roll back: keys made from a scan id cannot race).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict, Unpack

import asyncpg
from sqlalchemy import JSON, CheckConstraint, Index, Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from billing import messages
from store.db import PG_DROPPED, async_url, asyncpg_pool, compile_for_asyncpg
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
    replay = _entry(row2._mapping) if row2.id is not None else None
    return int(row2.balance), replay


def _entry(values: Mapping[Any, Any]) -> LedgerEntry:
    """The entry of a row's mapping (SQLAlchemy's ``row._mapping``, an asyncpg record)."""
    return LedgerEntry(**{c.name: values[c.name] for c in LEDGER.c})


# ---- writes -----------------------------------------------------------------------------


class EntryText(TypedDict):
    """What a ledger row says besides its amount: the rest of :func:`grant`'s and
    :func:`revoke`'s keyword arguments."""

    kind: str
    source: str
    comment: str
    external_id: NotRequired[str | None]


async def grant(
    session: AsyncSession,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    commit: bool = True,
    writes: Writes | None = None,
    **text: Unpack[EntryText],
) -> LedgerEntry:
    """Add ``amount`` credits (> 0). A repeated key returns the first entry, changes nothing.
    ``writes``: see :class:`Writes`."""
    change = _Change.of(user_id, amount, idempotency_key, text, sign=1, partial=False)
    return await _apply(session, change, commit, writes)


async def revoke(
    session: AsyncSession,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    partial: bool = False,
    commit: bool = True,
    writes: Writes | None = None,
    **text: Unpack[EntryText],
) -> LedgerEntry:
    """Take ``amount`` credits (> 0) away. Raises :class:`InsufficientCredits` if the balance
    is short, unless ``partial``: then takes what there is (maybe 0) and the entry's
    ``shortfall`` says what could not be taken. A repeated key returns the first entry.
    ``writes``: see :class:`Writes`."""
    change = _Change.of(user_id, amount, idempotency_key, text, sign=-1, partial=partial)
    return await _apply(session, change, commit, writes)


@dataclass(frozen=True)
class _Change:
    """One write asked for: ``delta`` credits (− for a revoke) and what its row says."""

    user_id: int
    delta: int
    partial: bool  # a revoke may take less than asked (the shortfall is written down)
    kind: str
    source: str
    comment: str
    external_id: str | None
    key: str

    @classmethod
    def of(
        cls, user_id: int, amount: int, key: str, text: EntryText, *, sign: int, partial: bool
    ) -> _Change:
        """The change of ``sign`` × ``amount``, checked (ValueError), its texts cut to size."""
        if unknown := text.keys() - EntryText.__annotations__.keys():
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
            raise ValueError(
                f"amount must be a whole number from 1 to {MAX_AMOUNT:,}, not {amount!r}"
            )
        if not key or len(key) > MAX_KEY:
            raise ValueError(f"idempotency_key must be 1 to {MAX_KEY} characters")
        external_id = text.get("external_id")
        return cls(
            user_id=user_id, delta=sign * amount, partial=partial, kind=text["kind"][:32],
            source=text["source"][:32], comment=text["comment"][:MAX_COMMENT],
            external_id=None if external_id is None else external_id[:200], key=key,
        )  # fmt: skip

    def fast_params(self) -> dict[str, Any]:
        """The parameters of :data:`_FAST` (``p_``: not taken for the UPDATE's own SET
        columns)."""
        return {
            "p_user_id": self.user_id, "p_delta": self.delta, "p_need": max(0, -self.delta),
            "p_now": utcnow(), "p_kind": self.kind, "p_source": self.source,
            "p_comment": self.comment, "p_external_id": self.external_id, "p_key": self.key,
        }  # fmt: skip


async def _apply(
    session: AsyncSession, change: _Change, commit: bool, writes: Writes | None
) -> LedgerEntry:
    fast = commit  # the common case in one statement first (see _FAST)
    if fast and writes is not None and writes.pool is not None and not session.in_transaction():
        entry = await writes.apply(change)  # a write of its own: not in a caller's transaction
        if entry is not None:
            return entry
        fast = False  # it did not apply: the same statement in the session would not either
    try:
        try:
            entry = await _apply_fast(session, change) if fast else None
            if entry is None:
                entry = await _apply_once(session, change)
        except IntegrityError:
            if not commit:
                raise
            await session.rollback()  # a same-key request won the race: answer its entry
            entry = await _apply_once(session, change)
    except BaseException:
        if commit:
            await session.rollback()
        raise
    if commit:
        await session.commit()
    return entry


async def _apply_fast(session: AsyncSession, change: _Change) -> LedgerEntry | None:
    """:data:`_FAST` in the session (PostgreSQL). None when it does not apply (no balance row
    yet, the balance short, not PostgreSQL): the general path then decides, under the lock,
    and says why. A repeated key fails the INSERT (UNIQUE): the caller rolls back and the
    general path answers the first entry."""
    conn = await session.connection()
    if conn.dialect.name != "postgresql" or session.in_nested_transaction():
        return None
    row = (await conn.execute(_FAST, change.fast_params())).first()
    return None if row is None else _entry(row._mapping)


def _fast_statement() -> Any:
    """PostgreSQL, the common case of a write in one statement: the balance row's UPDATE takes
    the row lock and checks the balance (``balance >= p_need``; READ COMMITTED re-checks it on
    the row as it is once the lock is had), the ledger row is inserted from what it returns,
    so ``balance_after`` is the new balance. No row (nothing written) when the balance row is
    missing or short."""
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
_FAST_SQL = compile_for_asyncpg(_FAST)  # for Writes
WRITE_CONNECTIONS = 4  # per process; a write holds one for a round trip


class Writes:
    """The common write (:data:`_FAST`) on PostgreSQL without the session: plain asyncpg, a
    small pool of its own, autocommit. One round trip (no checkout ping, no ``BEGIN`` or
    ``COMMIT`` of their own: the statement is its transaction), and the user's row lock held
    for the statement and its commit only. ``start`` it once per process (the app's lifespan
    does); on SQLite it stays idle (``pool`` None) and the session path runs.

    Give it to :func:`grant` / :func:`revoke` as ``writes`` for a write that commits on its own
    in a session with nothing else open (it is skipped otherwise: a caller's transaction keeps
    its writes together). When the statement does not apply (no balance row yet, the balance
    short, a repeated key) the session path runs as without it and answers. A statement that
    meets a connection the server dropped is run again once: its idempotency key makes that
    safe (if the first one was written, the second meets the key and the first is answered)."""

    def __init__(self, url: str | URL, *, connections: int = WRITE_CONNECTIONS) -> None:
        self.url = make_url(async_url(url))
        self.connections = connections
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if self.url.get_backend_name() == "postgresql":
            self.pool = await asyncpg_pool(self.url, max_size=self.connections)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def apply(self, change: _Change) -> LedgerEntry | None:
        """The entry written, or None if the statement did not apply (nothing written)."""
        assert self.pool is not None, "Writes.start() first (PostgreSQL)"
        sql, names = _FAST_SQL
        params = change.fast_params()
        args = [params[name] for name in names]
        try:
            try:
                row = await self.pool.fetchrow(sql, *args)
            except PG_DROPPED:
                row = await self.pool.fetchrow(sql, *args)  # once more, on another connection
        except asyncpg.UniqueViolationError:
            return None  # the key is taken: the session path answers its entry
        return None if row is None else _entry(row)


async def _apply_once(session: AsyncSession, change: _Change) -> LedgerEntry:
    user_id, delta, key = change.user_id, change.delta, change.key
    locked = await lock_account(session, user_id=user_id, idempotency_key=key)
    if locked.replay is not None:
        if locked.replay.user_id != user_id:
            raise IdempotencyKeyReused(f"idempotency key {key!r} belongs to another user")
        return locked.replay
    shortfall = 0
    if locked.balance + delta < 0:
        if not change.partial:
            raise InsufficientCredits(balance=locked.balance, needed=-delta)
        shortfall = -delta - locked.balance
        delta = -locked.balance
    return await _write(session, change, delta=delta, new_balance=locked.balance + delta,
                        shortfall=shortfall)  # fmt: skip


async def _write(
    session: AsyncSession, change: _Change, *, delta: int, new_balance: int, shortfall: int
) -> LedgerEntry:
    """The ledger row and the new balance, under the lock: one statement on PostgreSQL (a
    data-modifying CTE), two on SQLite. ``delta`` may be less than asked (a partial revoke)."""
    now = utcnow()
    conn = await session.connection()
    row_values = {
        "user_id": change.user_id,
        "delta": delta,
        "balance_after": new_balance,
        "shortfall": shortfall,
        "kind": change.kind,
        "source": change.source,
        "comment": change.comment,
        "external_id": change.external_id,
        "idempotency_key": change.key,
        "created_at": now,
    }
    set_balance = (
        update(ACCOUNT)
        .where(ACCOUNT.c.user_id == change.user_id)
        .values(balance=new_balance, updated_at=now)
    )
    add_row = insert(LEDGER).values(**row_values).returning(*LEDGER.c)
    if conn.dialect.name == "postgresql":
        row = (await conn.execute(add_row.add_cte(set_balance.cte("set_balance")))).one()
    else:
        await conn.execute(set_balance)
        row = (await conn.execute(add_row)).one()
    return _entry(row._mapping)


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
    return [_entry(r._mapping) for r in (await conn.execute(stmt)).all()]


async def get_entry(session: AsyncSession, *, idempotency_key: str) -> LedgerEntry | None:
    """The entry written under ``idempotency_key``, if any."""
    conn = await session.connection()
    stmt = select(LEDGER).where(LEDGER.c.idempotency_key == idempotency_key)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _entry(row._mapping)


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
