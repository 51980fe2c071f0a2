"""ClickBank's side of the books: every notification received (raw, as decrypted, with what
processing it did), the checkout references our pay links carry, and the tickets (refund,
cancel, change) we filed through ClickBank's API. Tables and their keyword-only queries.

An event row is written once when the notification arrives (a retry of the same notification —
same role, receipt, type and time — only counts one more delivery) and then moves through
``pending`` → ``done`` / ``waiting`` (its order's first payment has not been processed yet) /
``ignored`` (a test, another role) / ``failed`` (an error the operator must see).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, Numeric, Text, UniqueConstraint, bindparam, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import Scan, UtcDateTime, table_of, utcnow

PENDING, DONE, WAITING, IGNORED, FAILED = "pending", "done", "waiting", "ignored", "failed"
MONEY = Numeric(14, 2)


class ClickbankEvent(SQLModel, table=True):
    __tablename__ = "clickbank_event"
    __table_args__ = (
        Index("ix_clickbank_event_base_receipt", "base_receipt"),
        Index("ix_clickbank_event_user_id", "user_id"),
        Index("ix_clickbank_event_state", "state"),
        Index("ix_clickbank_event_waits_for", "waits_for"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)  # role|receipt|type|time
    transaction_type: str = Field(max_length=32)
    receipt: str = Field(max_length=40)
    base_receipt: str = Field(max_length=40)  # the order's receipt (no rebill suffix)
    role: str = Field(max_length=16)
    transaction_time: datetime = Field(sa_type=UtcDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    deliveries: int = 1  # how many times ClickBank delivered it
    raw: str = Field(sa_type=Text, repr=False)  # the decrypted notification (personal data)
    state: str = Field(default=PENDING, max_length=16)
    outcome: str | None = Field(default=None, sa_type=Text)
    user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    sku: str | None = Field(default=None, max_length=64)
    amount: Decimal | None = Field(default=None, sa_type=MONEY)
    currency: str | None = Field(default=None, max_length=8)
    credits: int | None = None  # credits this event moved (+ granted, - revoked)
    tries: int = 0  # processing attempts
    waits_for: str | None = Field(default=None, max_length=40)  # the order it waits for
    processed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ClickbankCheckout(SQLModel, table=True):
    """One pay link made for one signed-in user: its random reference comes back in the
    notification's vendorVariables and names the account (never the user id or e-mail)."""

    __tablename__ = "clickbank_checkout"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    sku: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    receipt: str | None = Field(default=None, max_length=40)  # the order it paid, once used


class ClickbankTicket(SQLModel, table=True):
    """A request we filed through ClickBank's API (refund, cancel, change of product)."""

    __tablename__ = "clickbank_ticket"
    __table_args__ = (UniqueConstraint("receipt", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    receipt: str = Field(max_length=40)
    kind: str = Field(max_length=80)  # refund | cancel | change:<sku>
    ticket_id: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


EVENT_TABLE = table_of(ClickbankEvent)


# ---- events ----------------------------------------------------------------------------


def _upsert(insert_into: Any) -> Any:
    new = insert_into(EVENT_TABLE)
    return new.on_conflict_do_update(
        index_elements=["key"],
        set_={"deliveries": EVENT_TABLE.c.deliveries + new.excluded.deliveries},
    ).returning(EVENT_TABLE.c.key, EVENT_TABLE.c.id, EVENT_TABLE.c.state, EVENT_TABLE.c.deliveries)


_UPSERT = {False: _upsert(sqlite_insert), True: _upsert(pg_insert)}

# the columns the INS endpoint writes, and the one-row upsert of them with named parameters:
# ``web.ins_store`` sends it to PostgreSQL straight through asyncpg, as its own transaction
RECEIVED_COLUMNS = (
    "key", "transaction_type", "receipt", "base_receipt", "role", "transaction_time", "raw",
    "amount", "currency", "received_at", "deliveries", "state", "tries",
)  # fmt: skip
_ONE = pg_insert(EVENT_TABLE).values(
    {name: bindparam(name, type_=EVENT_TABLE.c[name].type) for name in RECEIVED_COLUMNS}
)
UPSERT_ONE = _ONE.on_conflict_do_update(
    index_elements=["key"],
    set_={"deliveries": EVENT_TABLE.c.deliveries + _ONE.excluded.deliveries},
).returning(EVENT_TABLE.c.id, EVENT_TABLE.c.state, EVENT_TABLE.c.deliveries)


def received_row(values: dict[str, Any]) -> dict[str, Any]:
    """The columns of a notification just received (``values``: key, transaction_type, …)."""
    return {"amount": None, "currency": None, **values, "received_at": utcnow(), "deliveries": 1,
            "state": PENDING, "tries": 0}  # fmt: skip


def received(row: Any) -> Received:
    """What :data:`UPSERT_ONE` answered: the event, and whether this delivery created it."""
    return Received(int(row["id"]), int(row["deliveries"]) == 1, str(row["state"]),
                    int(row["deliveries"]))  # fmt: skip


@dataclass(frozen=True)
class Received:
    event_id: int
    new: bool  # False: a retry of a notification we have already
    state: str
    deliveries: int = 1


async def record_events(
    session: AsyncSession, *, rows: list[dict[str, Any]]
) -> dict[str, Received]:
    """Keep notifications, or count one more delivery of those we have, in ONE statement (an
    upsert of every row) and ONE commit — one disk flush for the lot. ``rows``: each event's
    columns (key, transaction_type, …, raw); several may share a key (redeliveries arriving
    together). Returns, by key, the event's id, state and deliveries; ``new`` when this call
    created it."""
    if not rows:
        return {}
    counts: dict[str, int] = {}
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        counts[row["key"]] = counts.get(row["key"], 0) + 1
        first.setdefault(row["key"], row)
    now = utcnow()
    values = [
        {**row, "received_at": now, "deliveries": counts[key], "state": PENDING, "tries": 0}
        for key, row in first.items()
    ]
    conn = await session.connection()
    # one statement, compiled once per process: SQLAlchemy sends the rows as one multi-row
    # INSERT (its "insertmanyvalues"), RETURNING each row
    stmt = _UPSERT[conn.dialect.name == "postgresql"]
    found = (await conn.execute(stmt, values)).all()
    await session.commit()
    return {
        key: Received(int(event_id), int(deliveries) == counts[key], str(state), int(deliveries))
        for key, event_id, state, deliveries in found
    }


async def record_event(session: AsyncSession, *, values: dict[str, Any]) -> Received:
    """One notification: see :func:`record_events`."""
    return (await record_events(session, rows=[values]))[values["key"]]


async def get_event(session: AsyncSession, *, event_id: int) -> ClickbankEvent | None:
    return await session.get(ClickbankEvent, event_id)


async def events_of_order(session: AsyncSession, *, base_receipt: str) -> list[ClickbankEvent]:
    """Every event of one order (its first sale, rebills, refunds…), oldest first."""
    stmt = (
        select(ClickbankEvent)
        .where(col(ClickbankEvent.base_receipt) == base_receipt)
        .order_by(col(ClickbankEvent.transaction_time), col(ClickbankEvent.id))
    )
    return list((await session.exec(stmt)).all())


async def list_events(
    session: AsyncSession, *, limit: int = 50, state: str | None = None
) -> list[ClickbankEvent]:
    stmt = select(ClickbankEvent).order_by(col(ClickbankEvent.id).desc()).limit(limit)
    if state:
        stmt = stmt.where(col(ClickbankEvent.state) == state)
    return list((await session.exec(stmt)).all())


async def payments_of(session: AsyncSession, *, user_id: int) -> list[ClickbankEvent]:
    """A user's payments and reversals (what Billing lists), newest first; tests excluded."""
    kinds = ("SALE", "BILL", "RFND", "CGBK", "INSF")
    stmt = (
        select(ClickbankEvent)
        .where(
            col(ClickbankEvent.user_id) == user_id,
            col(ClickbankEvent.transaction_type).in_(kinds),
            col(ClickbankEvent.role) == "VENDOR",
        )
        .order_by(col(ClickbankEvent.transaction_time).desc(), col(ClickbankEvent.id).desc())
    )
    return list((await session.exec(stmt)).all())


async def count_by_state(session: AsyncSession) -> dict[str, int]:
    stmt = select(col(ClickbankEvent.state), func.count()).group_by(col(ClickbankEvent.state))
    return {str(s): int(n) for s, n in (await session.exec(stmt)).all()}


# ---- checkout references ---------------------------------------------------------------


async def create_checkout(
    session: AsyncSession, *, reference: str, user_id: int, sku: str
) -> ClickbankCheckout:
    checkout = ClickbankCheckout(reference=reference, user_id=user_id, sku=sku)
    session.add(checkout)
    await session.commit()
    await session.refresh(checkout)
    return checkout


async def get_checkout(session: AsyncSession, *, reference: str) -> ClickbankCheckout | None:
    stmt = select(ClickbankCheckout).where(col(ClickbankCheckout.reference) == reference)
    return (await session.exec(stmt)).one_or_none()


# ---- tickets ---------------------------------------------------------------------------


async def get_ticket(session: AsyncSession, *, receipt: str, kind: str) -> ClickbankTicket | None:
    stmt = select(ClickbankTicket).where(
        col(ClickbankTicket.receipt) == receipt, col(ClickbankTicket.kind) == kind
    )
    return (await session.exec(stmt)).one_or_none()


async def tickets_of(session: AsyncSession, *, user_id: int) -> list[ClickbankTicket]:
    stmt = select(ClickbankTicket).where(col(ClickbankTicket.user_id) == user_id)
    return list((await session.exec(stmt)).all())


async def add_ticket(
    session: AsyncSession,
    *,
    user_id: int | None,
    receipt: str,
    kind: str,
    ticket_id: str | None,
    detail: str | None = None,
) -> ClickbankTicket:
    ticket = ClickbankTicket(
        user_id=user_id, receipt=receipt, kind=kind, ticket_id=ticket_id, detail=detail
    )
    session.add(ticket)
    await session.commit()
    await session.refresh(ticket)
    return ticket


# ---- what Billing, the thank-you page and the refund rule ask -----------------------------

PAYMENT_TYPES = ("SALE", "BILL")


async def sale_event(session: AsyncSession, *, receipt: str) -> ClickbankEvent | None:
    """The vendor's payment notification of ``receipt`` (what the thank-you page waits for)."""
    stmt = select(ClickbankEvent).where(
        col(ClickbankEvent.receipt) == receipt,
        col(ClickbankEvent.transaction_type).in_(PAYMENT_TYPES),
        col(ClickbankEvent.role) == "VENDOR",
    )
    return (await session.exec(stmt)).first()


payment_event = sale_event


async def plan_order(
    session: AsyncSession, *, user_id: int, plan_skus: list[str]
) -> ClickbankEvent | None:
    """The latest processed first payment of a plan (its order is the subscription)."""
    stmt = (
        select(ClickbankEvent)
        .where(
            col(ClickbankEvent.user_id) == user_id,
            col(ClickbankEvent.transaction_type) == "SALE",
            col(ClickbankEvent.state) == DONE,
            col(ClickbankEvent.sku).in_(plan_skus),
        )
        .order_by(col(ClickbankEvent.transaction_time).desc())
    )
    return (await session.exec(stmt)).first()


async def set_outcome(
    session: AsyncSession,
    *,
    event: ClickbankEvent,
    state: str,
    outcome: str,
    user_id: int | None = None,
    sku: str | None = None,
    credits: int | None = None,
    waits_for: str | None = None,
) -> None:
    event.state = state
    event.waits_for = waits_for
    event.outcome = outcome
    event.tries += 1
    if user_id is not None:
        event.user_id = user_id
    if sku is not None:
        event.sku = sku
    if credits is not None:
        event.credits = credits
    if state in (DONE, IGNORED):
        event.processed_at = utcnow()
    session.add(event)
    await session.commit()


async def scan_ever_started(session: AsyncSession, *, user_id: int) -> bool:
    """Has the user ever started a scan (one that a worker began, still listed)?"""
    stmt = select(func.count()).where(
        col(Scan.user_id) == user_id, col(Scan.started_at).is_not(None)
    )
    return bool((await session.exec(stmt)).one())


async def order_owner(session: AsyncSession, *, base_receipt: str) -> int | None:
    """The account an order was tied to (by its processed events), if any."""
    stmt = (
        select(ClickbankEvent.user_id)
        .where(
            col(ClickbankEvent.base_receipt) == base_receipt,
            col(ClickbankEvent.user_id).is_not(None),
        )
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def waiting_for(session: AsyncSession, *, base_receipt: str) -> list[tuple[int, str]]:
    """(id, key) of the events waiting for the order ``base_receipt`` (woken when one of its
    payments is processed)."""
    stmt = select(ClickbankEvent.id, ClickbankEvent.key).where(
        col(ClickbankEvent.waits_for) == base_receipt, col(ClickbankEvent.state) == WAITING
    )
    return [(i, k) for i, k in (await session.exec(stmt)).all() if i is not None]
