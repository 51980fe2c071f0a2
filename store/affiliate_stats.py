"""An affiliate's statistics, per UTC day, straight from the program's own tables (no copy to
keep in step): visits and unique visits (``affiliate_visit_day``), sign-ups
(``affiliate_referral.signed_up_at``), sales and upsells, rebills and what reversals took back
(``affiliate_commission`` by ``transaction_time``), and the profit (the net commission). Each
is one grouped query on an index that starts with the affiliate (migration 0011).

Also the balance as sums in SQL (the same split as :func:`affiliates.commissions.balance`,
which the tests hold it to), and :func:`payouts_made`: the one place that reads what was paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, and_, case, cast, func, literal, select, type_coerce
from sqlalchemy.sql import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from affiliates.commissions import CENT, Balance, month_start
from store import payouts as store_payouts
from store.affiliates import (
    COMMISSION_TABLE,
    MONEY,
    REBILL,
    REFERRAL_TABLE,
    REVERSAL,
    SALE,
    UPSELL,
    VISIT_TABLE,
)

ZERO = Decimal("0.00")
MAX_DAYS = 731  # the longest period one page, CSV or API call covers (two years)


@dataclass
class DayStats:
    day: date
    visits: int = 0
    unique_visits: int = 0
    signups: int = 0
    sales: int = 0  # first sales and upsells
    sales_amount: Decimal = ZERO  # what those customers paid (USD)
    rebills: int = 0
    rebills_amount: Decimal = ZERO
    reversals: int = 0  # refunds and chargebacks of earlier payments
    reversals_amount: Decimal = ZERO  # the commission they took back (negative or zero)
    profit: Decimal = ZERO  # the net commission of the day (reversals included)


FIELDS = (
    "visits", "unique_visits", "signups", "sales", "sales_amount", "rebills", "rebills_amount",
    "reversals", "reversals_amount", "profit",
)  # fmt: skip


@dataclass
class Statistics:
    start: date
    end: date
    days: list[DayStats]
    totals: DayStats = field(init=False)

    def __post_init__(self) -> None:
        totals = DayStats(self.end)
        for row in self.days:
            for name in FIELDS:
                setattr(totals, name, getattr(totals, name) + getattr(row, name))
        self.totals = totals


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _day_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC day of a timestamp column (SQLite keeps naive UTC text; PostgreSQL timestamptz)."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _money(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    return type_coerce(func.coalesce(func.sum(expr), literal(0)), MONEY)


def _cents(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def statistics(
    session: AsyncSession, *, affiliate_id: int, start: date, end: date
) -> Statistics:
    """The per-day rows of ``start`` … ``end`` (UTC days, both included; every day has a row,
    zeros included), and their totals."""
    if end < start:
        raise ValueError("the period ends before it starts")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(f"a period is at most {MAX_DAYS} days")
    conn = await session.connection()
    dialect = conn.dialect.name
    lo, hi = _start_of(start), _start_of(end + timedelta(days=1))
    days = {start + timedelta(days=n): DayStats(start + timedelta(days=n))
            for n in range((end - start).days + 1)}  # fmt: skip

    v = VISIT_TABLE.c
    visits = select(v.day, v.visits, v.unique_visits).where(
        v.affiliate_id == affiliate_id, v.day >= start, v.day <= end
    )
    for day, n, unique in (await conn.execute(visits)).all():
        row = days[_as_date(day)]
        row.visits, row.unique_visits = int(n), int(unique)

    r = REFERRAL_TABLE.c
    r_day = _day_of(r.signed_up_at, dialect).label("d")
    signups = (
        select(r_day, func.count())
        .where(r.affiliate_id == affiliate_id, r.signed_up_at >= lo, r.signed_up_at < hi)
        .group_by(r_day)
    )
    for day, n in (await conn.execute(signups)).all():
        days[_as_date(day)].signups = int(n)

    c = COMMISSION_TABLE.c
    c_day = _day_of(c.transaction_time, dialect).label("d")
    sale = c.kind.in_((SALE, UPSELL))
    rebill = c.kind == REBILL
    reversal = c.kind == REVERSAL
    one = literal(1)
    nothing = literal(0)
    money = (
        select(
            c_day,
            func.sum(case((sale, one), else_=nothing)),
            _money(case((sale, c.payment_amount), else_=nothing)),
            func.sum(case((rebill, one), else_=nothing)),
            _money(case((rebill, c.payment_amount), else_=nothing)),
            func.sum(case((reversal, one), else_=nothing)),
            _money(case((reversal, c.amount), else_=nothing)),
            _money(c.amount),
        )
        .where(c.affiliate_id == affiliate_id, c.transaction_time >= lo, c.transaction_time < hi)
        .group_by(c_day)
    )
    for day, n_sales, sales_amt, n_rebills, rebills_amt, n_rev, rev_amt, profit in (
        await conn.execute(money)
    ).all():
        row = days[_as_date(day)]
        row.sales, row.sales_amount = int(n_sales or 0), _cents(sales_amt)
        row.rebills, row.rebills_amount = int(n_rebills or 0), _cents(rebills_amt)
        row.reversals, row.reversals_amount = int(n_rev or 0), _cents(rev_amt)
        row.profit = _cents(profit)
    return Statistics(start, end, [days[d] for d in sorted(days)])


# ---- the balance ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutMade:
    """A payout as the statistics page, its CSV and the API show it."""

    paid_on: date
    amount: Decimal
    status: str  # PayPal's item status, or NEW / PENDING / REFUSED (see store.payouts)
    reference: str  # PayPal's batch id, else ours (made from the date)


async def payouts_made(session: AsyncSession, *, affiliate_id: int) -> list[PayoutMade]:
    """Every payout made to the affiliate, newest first (``store.payouts``)."""
    return [
        PayoutMade(p.payout_date, p.amount, p.status, p.payout_batch_id or p.sender_batch_id)
        for p in await store_payouts.payouts_of(session, affiliate_id=affiliate_id)
    ]


async def paid_total(session: AsyncSession, *, affiliate_id: int) -> Decimal:
    """What was paid to the affiliate, less what came back (failed, unclaimed items)."""
    return await store_payouts.paid_of(session, affiliate_id=affiliate_id)


async def balance(
    session: AsyncSession, *, affiliate_id: int, paid: Decimal, now: datetime
) -> Balance:
    """:func:`affiliates.commissions.balance` in two sums: payable is what transactions of
    previous months earned once out of their refund window, less ``paid``; pending the rest."""
    entry = COMMISSION_TABLE.alias("entry")
    reversed_ = COMMISSION_TABLE.alias("reversed")
    c, r = entry.c, reversed_.c
    start = month_start(now)
    # a reversal counts where the commission it reverses counts (see commissions.balance)
    due = case(
        (c.reverses_id.is_(None), and_(c.transaction_time < start, c.due_at <= now)),
        else_=and_(r.transaction_time < start, r.due_at <= now),
    )
    stmt = (
        select(
            _money(case((due, c.amount), else_=literal(0))),
            _money(case((due, literal(0)), else_=c.amount)),
        )
        .select_from(entry.outerjoin(reversed_, r.id == c.reverses_id))
        .where(c.affiliate_id == affiliate_id)
    )
    conn = await session.connection()
    payable, pending = (await conn.execute(stmt)).one()
    return Balance(pending=_cents(pending), payable=_cents(payable) - paid, paid=paid)
