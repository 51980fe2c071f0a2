"""Affiliate payouts: tables and queries (keyword-only functions). Append-only: a row is never
updated nor deleted; what happens to a payout is a new event row.

- ``affiliate_payout_batch``: one PayPal batch per payout date (``sender_batch_id`` made from
  the date, so a date can never be paid twice), recorded with its items *before* PayPal is
  called.
- ``affiliate_payout``: one item of a batch: what one affiliate is paid that date (one per
  affiliate and batch), to which PayPal address.
- ``affiliate_payout_event``: what became of it. Batch events (``payout_id`` empty): SUBMITTED
  (PayPal took the batch: its ``payout_batch_id``) or REFUSED (PayPal refused it, nothing was
  paid). Item events: each PayPal ``transaction_status`` seen (PENDING, SUCCESS, FAILED,
  UNCLAIMED, RETURNED…), once each. An event whose ``returned`` is the item's amount gives it back
  to the affiliate's balance; ``returns_payout_id`` is unique, so that happens once at most.

For the Affiliate page and the JSON API: :func:`payouts_of` (every payout of one affiliate) and
:func:`balance_of` (pending, payable, paid).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Date, ForeignKey, Integer, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from affiliates import commissions as cm
from store.affiliates import ACTIVE, MONEY, Affiliate, AffiliateCommission, commissions_of
from store.models import UtcDateTime, table_of, utcnow

SUBMITTED, REFUSED = "SUBMITTED", "REFUSED"  # batch events
NEW = "NEW"  # an item recorded, its batch not taken by PayPal yet (shown status)
ZERO = Decimal("0.00")


class PayoutBatch(SQLModel, table=True):
    __tablename__ = "affiliate_payout_batch"

    id: int | None = Field(default=None, primary_key=True)
    payout_date: date = Field(sa_column=Column(Date, nullable=False, unique=True))
    sender_batch_id: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class AffiliatePayout(SQLModel, table=True):
    __tablename__ = "affiliate_payout"
    __table_args__ = (UniqueConstraint("batch_id", "affiliate_id"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("affiliate_payout_batch.id", ondelete="RESTRICT"), nullable=False
        )
    )
    affiliate_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("affiliate.id", ondelete="RESTRICT"), nullable=False, index=True
        )
    )
    receiver: str = Field(max_length=320)  # the PayPal address at the time
    amount: Decimal = Field(sa_type=MONEY)  # USD, > 0
    sender_item_id: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class PayoutEvent(SQLModel, table=True):
    __tablename__ = "affiliate_payout_event"
    __table_args__ = (UniqueConstraint("payout_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("affiliate_payout_batch.id", ondelete="RESTRICT"),
            nullable=False,
            index=True,
        )
    )
    payout_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("affiliate_payout.id", ondelete="RESTRICT"),
            nullable=True,
            index=True,
        ),
    )
    status: str = Field(max_length=24)
    paypal_batch_id: str = Field(default="", max_length=64)
    paypal_item_id: str = Field(default="", max_length=64)
    transaction_id: str = Field(default="", max_length=64)
    detail: str = Field(default="", max_length=500)
    returned: Decimal = Field(default=ZERO, sa_type=MONEY)  # given back to the balance
    returns_payout_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("affiliate_payout.id", ondelete="RESTRICT"),
            nullable=True,
            unique=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


BATCH_TABLE = table_of(PayoutBatch)
PAYOUT_TABLE = table_of(AffiliatePayout)
EVENT_TABLE = table_of(PayoutEvent)


# ---- the run's writes --------------------------------------------------------------------


async def batch_for_date(session: AsyncSession, *, payout_date: date) -> PayoutBatch | None:
    stmt = select(PayoutBatch).where(col(PayoutBatch.payout_date) == payout_date)
    return (await session.exec(stmt)).one_or_none()


async def create_batch(
    session: AsyncSession, *, payout_date: date, sender_batch_id: str, items: list[dict[str, Any]]
) -> PayoutBatch:
    """The batch of ``payout_date`` and its items (``affiliate_id``, ``receiver``, ``amount``,
    ``sender_item_id``), in one transaction. Raises IntegrityError when the date has a batch
    already (another run made it: use that one)."""
    batch = PayoutBatch(payout_date=payout_date, sender_batch_id=sender_batch_id)
    session.add(batch)
    await session.flush()
    assert batch.id is not None
    for item in items:
        session.add(AffiliatePayout(batch_id=batch.id, **item))
    await session.commit()
    await session.refresh(batch)
    return batch


async def items_of(session: AsyncSession, *, batch_id: int) -> list[AffiliatePayout]:
    stmt = (
        select(AffiliatePayout)
        .where(col(AffiliatePayout.batch_id) == batch_id)
        .order_by(col(AffiliatePayout.id))
    )
    return list((await session.exec(stmt)).all())


async def events_of(session: AsyncSession, *, batch_id: int) -> list[PayoutEvent]:
    stmt = (
        select(PayoutEvent)
        .where(col(PayoutEvent.batch_id) == batch_id)
        .order_by(col(PayoutEvent.id))
    )
    return list((await session.exec(stmt)).all())


async def add_event(session: AsyncSession, *, values: dict[str, Any]) -> bool:
    """Record one event; False when it was recorded already (the same status of the same item,
    or a second giving back of one item): nothing changes."""
    conn = await session.connection()
    insert_into = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    row = {"created_at": utcnow(), **values}
    result = await conn.execute(insert_into(EVENT_TABLE).values(**row).on_conflict_do_nothing())
    await session.commit()
    return bool(result.rowcount)


async def active_affiliates(session: AsyncSession, *, every: bool = False) -> list[Affiliate]:
    """The members a payout date pays (``every``: refused and revoked ones too)."""
    stmt = select(Affiliate).order_by(col(Affiliate.id))
    if not every:
        stmt = stmt.where(col(Affiliate.status) == ACTIVE)
    return list((await session.exec(stmt)).all())


async def recent_batches(session: AsyncSession, *, since: date) -> list[PayoutBatch]:
    stmt = (
        select(PayoutBatch)
        .where(col(PayoutBatch.payout_date) >= since)
        .order_by(col(PayoutBatch.payout_date))
    )
    return list((await session.exec(stmt)).all())


async def paid_totals(
    session: AsyncSession, *, affiliate_id: int | None = None
) -> dict[int, Decimal]:
    """Per affiliate (or for ``affiliate_id`` only): every amount recorded for payment, less
    what came back."""
    out: dict[int, Decimal] = {}
    sent = select(AffiliatePayout.affiliate_id, func.sum(AffiliatePayout.amount)).group_by(
        col(AffiliatePayout.affiliate_id)
    )
    back = (
        select(AffiliatePayout.affiliate_id, func.sum(PayoutEvent.returned))
        .join(AffiliatePayout, col(AffiliatePayout.id) == col(PayoutEvent.returns_payout_id))
        .group_by(col(AffiliatePayout.affiliate_id))
    )
    if affiliate_id is not None:
        sent = sent.where(col(AffiliatePayout.affiliate_id) == affiliate_id)
        back = back.where(col(AffiliatePayout.affiliate_id) == affiliate_id)
    for affiliate_id, total in (await session.exec(sent)).all():
        out[affiliate_id] = Decimal(total or 0)
    for affiliate_id, total in (await session.exec(back)).all():
        out[affiliate_id] = out.get(affiliate_id, ZERO) - Decimal(total or 0)
    return {k: v.quantize(cm.CENT) for k, v in out.items()}


# ---- what the affiliate sees -------------------------------------------------------------


@dataclass(frozen=True)
class PayoutView:
    """One payout as the affiliate sees it."""

    payout_date: date
    amount: Decimal  # what was sent (USD)
    status: str  # NEW, PENDING, SUCCESS, FAILED, UNCLAIMED, RETURNED, BLOCKED, REFUSED…
    returned: Decimal  # what came back to the balance (0, or the whole amount)
    payout_batch_id: str  # PayPal's id of the batch ('' until PayPal took it)
    sender_batch_id: str  # ours, made from the date
    detail: str  # PayPal's reason for a failure, '' otherwise
    receiver: str = ""  # the PayPal address it was sent to
    ref_id: str = ""  # the affiliate's


def _shown_status(item_events: list[PayoutEvent], batch_events: list[PayoutEvent]) -> str:
    if item_events:
        return item_events[-1].status
    kinds = {e.status for e in batch_events}
    if REFUSED in kinds:
        return REFUSED
    return "PENDING" if SUBMITTED in kinds else NEW


async def payouts_of(session: AsyncSession, *, affiliate_id: int) -> list[PayoutView]:
    """Every payout of one affiliate, newest first: date, amount, status (the last PayPal
    transaction status seen; NEW before PayPal took the batch, PENDING after, REFUSED if it
    refused the batch), what came back to the balance, PayPal's batch id."""
    return await _views(session, col(AffiliatePayout.affiliate_id) == affiliate_id)


async def payouts_since(session: AsyncSession, *, since: date) -> list[PayoutView]:
    """Every payout of every affiliate on a payout date from ``since`` on, newest date first
    (then by affiliate), as :func:`payouts_of` tells them (``ccbb payouts list``)."""
    return await _views(session, col(PayoutBatch.payout_date) >= since)


async def _views(session: AsyncSession, where: Any) -> list[PayoutView]:
    stmt = (
        select(AffiliatePayout, PayoutBatch, Affiliate.ref_id)
        .join(PayoutBatch, col(PayoutBatch.id) == col(AffiliatePayout.batch_id))
        .join(Affiliate, col(Affiliate.id) == col(AffiliatePayout.affiliate_id))
        .where(where)
        .order_by(col(PayoutBatch.payout_date).desc(), col(AffiliatePayout.id))
    )
    rows = (await session.exec(stmt)).all()
    if not rows:
        return []
    batch_ids = {b.id for _, b, _ in rows}
    events = (
        await session.exec(
            select(PayoutEvent)
            .where(col(PayoutEvent.batch_id).in_(batch_ids))
            .order_by(col(PayoutEvent.id))
        )
    ).all()
    out = []
    for payout, batch, ref_id in rows:
        mine = [e for e in events if e.payout_id == payout.id]
        whole = [e for e in events if e.batch_id == batch.id and e.payout_id is None]
        submitted = [e.paypal_batch_id for e in whole if e.status == SUBMITTED]
        back = sum((e.returned for e in mine if e.returns_payout_id == payout.id), ZERO)
        detail = next((e.detail for e in reversed(mine + whole) if e.detail), "")
        out.append(
            PayoutView(
                payout_date=batch.payout_date,
                amount=payout.amount,
                status=_shown_status(mine, whole),
                returned=back,
                payout_batch_id=submitted[0] if submitted else "",
                sender_batch_id=batch.sender_batch_id,
                detail=detail,
                receiver=payout.receiver,
                ref_id=ref_id,
            )
        )
    return out


async def paid_of(session: AsyncSession, *, affiliate_id: int) -> Decimal:
    """What was paid to one affiliate: every payout recorded, less what came back."""
    return (await paid_totals(session, affiliate_id=affiliate_id)).get(affiliate_id, ZERO)


async def balance_of(
    session: AsyncSession,
    *,
    affiliate_id: int,
    now: datetime,
    entries: list[AffiliateCommission] | None = None,
) -> cm.Balance:
    """The balance of one affiliate at ``now`` (aware): ``pending`` (commissions not payable
    yet: this month's, or still in the refund window), ``payable`` (earned and due, less what was
    paid: what the next payout date pays when it is at least the minimum; negative after a
    paid commission was reversed), ``paid`` (paid out, less what came back). ``Decimal`` USD.
    ``entries``: the affiliate's commissions when the caller has them already."""
    if entries is None:
        entries = await commissions_of(session, affiliate_id=affiliate_id)
    paid = await paid_of(session, affiliate_id=affiliate_id)
    return cm.balance(entries, paid=paid, now=now)
