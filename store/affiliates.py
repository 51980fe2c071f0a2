"""The affiliate program's tables and queries (keyword-only functions).

- ``affiliate``: a member of the program (one per account), its REF ID, PayPal e-mail, website
  and status (active, refused, revoked — the operator's decisions).
- ``affiliate_visit_day``: visits and unique visits of one affiliate's link, per UTC day (the
  visitor is never stored: uniqueness is judged on a keyed hash kept a day in Redis).
- ``affiliate_referral``: the account a referral brought, for good (one per referred account),
  with the landing time and whether it looks like a self-referral (for the operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    UniqueConstraint,
    bindparam,
    case,
    func,
)
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import User, UtcDateTime, table_of, utcnow

ACTIVE, REFUSED, REVOKED = "active", "refused", "revoked"
# blocked: revoked for abuse (self-referral): no commission, and nothing of the balance paid
BLOCKED = "blocked"
STATUSES = (ACTIVE, REFUSED, REVOKED, BLOCKED)


class Affiliate(SQLModel, table=True):
    __tablename__ = "affiliate"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    ref_id: str = Field(max_length=16, unique=True)
    paypal_email: str = Field(max_length=320)
    website: str = Field(default="", max_length=500)
    status: str = Field(default=ACTIVE, max_length=16)
    status_reason: str = Field(default="", max_length=500)
    joined_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    status_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class AffiliateVisitDay(SQLModel, table=True):
    __tablename__ = "affiliate_visit_day"

    affiliate_id: int = Field(
        sa_column=Column(Integer, ForeignKey("affiliate.id", ondelete="CASCADE"), primary_key=True)
    )
    day: date = Field(sa_column=Column(Date, primary_key=True))
    visits: int = 0
    unique_visits: int = 0


class AffiliateReferral(SQLModel, table=True):
    __tablename__ = "affiliate_referral"
    __table_args__ = (UniqueConstraint("user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    affiliate_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("affiliate.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    landed_at: datetime = Field(sa_type=UtcDateTime)
    signed_up_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    self_referral: bool = False
    flag_reason: str = Field(default="", max_length=500)


AFFILIATE_TABLE = table_of(Affiliate)
VISIT_TABLE = table_of(AffiliateVisitDay)
REFERRAL_TABLE = table_of(AffiliateReferral)


def _visit_upsert(insert_into: Any) -> Any:
    new = insert_into(VISIT_TABLE)
    return new.on_conflict_do_update(
        index_elements=["affiliate_id", "day"],
        set_={
            "visits": VISIT_TABLE.c.visits + new.excluded.visits,
            "unique_visits": VISIT_TABLE.c.unique_visits + new.excluded.unique_visits,
        },
    )


_VISIT_UPSERT = {False: _visit_upsert(sqlite_insert), True: _visit_upsert(pg_insert)}


# ---- membership ------------------------------------------------------------------------


async def create_affiliate(
    session: AsyncSession, *, user_id: int, ref_id: str, paypal_email: str, website: str
) -> Affiliate:
    """A new member. Raises sqlalchemy.exc.IntegrityError if the account is a member already
    (or, once in 2**60, the REF ID is taken: the caller draws another)."""
    affiliate = Affiliate(
        user_id=user_id, ref_id=ref_id, paypal_email=paypal_email, website=website
    )
    session.add(affiliate)
    await session.commit()
    await session.refresh(affiliate)
    return affiliate


async def get_by_user(session: AsyncSession, *, user_id: int) -> Affiliate | None:
    stmt = select(Affiliate).where(col(Affiliate.user_id) == user_id)
    return (await session.exec(stmt)).one_or_none()


async def get_by_ref(session: AsyncSession, *, ref_id: str) -> Affiliate | None:
    stmt = select(Affiliate).where(col(Affiliate.ref_id) == ref_id)
    return (await session.exec(stmt)).one_or_none()


async def get_affiliate(session: AsyncSession, *, affiliate_id: int) -> Affiliate | None:
    return await session.get(Affiliate, affiliate_id)


@dataclass(frozen=True)
class Member:
    affiliate: Affiliate
    email: str
    referrals: int
    flagged: int


async def list_members(session: AsyncSession, *, status: str | None = None) -> list[Member]:
    """Every member (or those of ``status``) with their referral counts, in one query."""
    r = REFERRAL_TABLE.c
    counts = (
        core_select(
            r.affiliate_id,
            func.count().label("referrals"),
            func.sum(case((r.self_referral.is_(True), 1), else_=0)).label("flagged"),
        )
        .group_by(r.affiliate_id)
        .subquery()
    )
    stmt = (
        select(Affiliate, User.email, counts.c.referrals, counts.c.flagged)
        .join(User, col(User.id) == col(Affiliate.user_id))
        .outerjoin(counts, counts.c.affiliate_id == col(Affiliate.id))
    )
    if status is not None:
        stmt = stmt.where(col(Affiliate.status) == status)
    rows = (await session.exec(stmt.order_by(col(Affiliate.id)))).all()
    return [Member(a, email, int(n or 0), int(f or 0)) for a, email, n, f in rows]


@dataclass(frozen=True)
class FlaggedReferral:
    referral: AffiliateReferral
    ref_id: str
    affiliate_email: str
    affiliate_status: str
    customer_email: str


async def flagged_referrals(session: AsyncSession, *, limit: int = 500) -> list[FlaggedReferral]:
    """The self-referrals recorded, newest first, with who is who (for the operator)."""
    owner = User.__table__.alias("owner")  # type: ignore[attr-defined]
    customer = User.__table__.alias("customer")  # type: ignore[attr-defined]
    stmt = (
        core_select(REFERRAL_TABLE, AFFILIATE_TABLE.c.ref_id, AFFILIATE_TABLE.c.status,
                    owner.c.email.label("owner_email"), customer.c.email.label("customer_email"))
        .join(AFFILIATE_TABLE, AFFILIATE_TABLE.c.id == REFERRAL_TABLE.c.affiliate_id)
        .join(owner, owner.c.id == AFFILIATE_TABLE.c.user_id)
        .join(customer, customer.c.id == REFERRAL_TABLE.c.user_id)
        .where(REFERRAL_TABLE.c.self_referral.is_(True))
        .order_by(REFERRAL_TABLE.c.id.desc())
        .limit(limit)
    )  # fmt: skip
    conn = await session.connection()
    out = []
    for row in (await conn.execute(stmt)).mappings().all():
        referral = AffiliateReferral.model_validate(
            {k: row[k] for k in AffiliateReferral.model_fields}
        )
        out.append(FlaggedReferral(referral, row["ref_id"], row["owner_email"], row["status"],
                                   row["customer_email"]))  # fmt: skip
    return out


async def set_status(
    session: AsyncSession, *, ref_id: str, status: str, reason: str = ""
) -> Affiliate | None:
    """Refuse or revoke a member (or make them active again). None: no such REF ID."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    affiliate = await get_by_ref(session, ref_id=ref_id)
    if affiliate is None:
        return None
    affiliate.status = status
    affiliate.status_reason = reason
    affiliate.status_at = utcnow()
    session.add(affiliate)
    await session.commit()
    await session.refresh(affiliate)
    return affiliate


# ---- visits ----------------------------------------------------------------------------


async def count_visit(session: AsyncSession, *, affiliate_id: int, day: date, unique: bool) -> None:
    """One visit of the link (and a unique one when ``unique``), in one upsert."""
    conn = await session.connection()
    stmt = _VISIT_UPSERT[conn.dialect.name == "postgresql"]
    await conn.execute(
        stmt,
        {"affiliate_id": affiliate_id, "day": day, "visits": 1, "unique_visits": int(unique)},
    )
    await session.commit()


async def count_visits(session: AsyncSession, *, counts: list[dict[str, Any]]) -> None:
    """Many (affiliate, day) counters at once (``affiliate_id, day, visits, unique_visits``
    each), added in one transaction: what the web process's visit buffer flushes."""
    if not counts:
        return
    conn = await session.connection()
    await conn.execute(_VISIT_UPSERT[conn.dialect.name == "postgresql"], counts)
    await session.commit()


# the referral link's lookup (web.reads: one round trip, no transaction)
ACTIVE_BY_REF = core_select(AFFILIATE_TABLE.c.id, AFFILIATE_TABLE.c.status).where(
    AFFILIATE_TABLE.c.ref_id == bindparam("ref_id")
)


async def visit_days(
    session: AsyncSession, *, affiliate_id: int, start: date, end: date
) -> list[AffiliateVisitDay]:
    stmt = (
        select(AffiliateVisitDay)
        .where(col(AffiliateVisitDay.affiliate_id) == affiliate_id)
        .where(col(AffiliateVisitDay.day) >= start, col(AffiliateVisitDay.day) <= end)
        .order_by(col(AffiliateVisitDay.day))
    )
    return list((await session.exec(stmt)).all())


# ---- referrals -------------------------------------------------------------------------


async def add_referral(
    session: AsyncSession,
    *,
    user_id: int,
    affiliate_id: int,
    landed_at: datetime,
    self_referral: bool,
    flag_reason: str = "",
) -> AffiliateReferral:
    """The account ``user_id`` was brought by ``affiliate_id``, for good. Raises
    IntegrityError if the account was attributed already (attribution never changes)."""
    referral = AffiliateReferral(
        user_id=user_id, affiliate_id=affiliate_id, landed_at=landed_at,
        self_referral=self_referral, flag_reason=flag_reason,
    )  # fmt: skip
    session.add(referral)
    await session.commit()
    await session.refresh(referral)
    return referral


async def referral_of(session: AsyncSession, *, user_id: int) -> AffiliateReferral | None:
    stmt = select(AffiliateReferral).where(col(AffiliateReferral.user_id) == user_id)
    return (await session.exec(stmt)).one_or_none()


async def referrals_of(session: AsyncSession, *, affiliate_id: int) -> list[AffiliateReferral]:
    stmt = (
        select(AffiliateReferral)
        .where(col(AffiliateReferral.affiliate_id) == affiliate_id)
        .order_by(col(AffiliateReferral.id))
    )
    return list((await session.exec(stmt)).all())


async def has_paid(session: AsyncSession, *, user_id: int) -> bool:
    """Whether the account ever paid for a plan or pack (a purchase in its credits ledger)."""
    from store.credits import LedgerEntry

    stmt = (
        select(LedgerEntry.id)
        .where(col(LedgerEntry.user_id) == user_id, col(LedgerEntry.kind) == "purchase")
        .limit(1)
    )
    return (await session.exec(stmt)).first() is not None


# ---- commissions (append-only) -----------------------------------------------------------

MONEY = Numeric(14, 2)
SALE, UPSELL, REBILL, REVERSAL = "sale", "upsell", "rebill", "reversal"


class AffiliateCommission(SQLModel, table=True):
    """One commission, or the reversal of one (a negative amount linked to the original by
    ``reverses_id``; one reversal per original). Keyed by the notification's idempotency key,
    so a notification never pays twice. Never updated, never deleted."""

    __tablename__ = "affiliate_commission"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    affiliate_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("affiliate.id", ondelete="RESTRICT"), nullable=False, index=True
        )
    )
    customer_user_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="SET NULL"), nullable=True),
    )
    kind: str = Field(max_length=16)
    receipt: str = Field(max_length=40, index=True)
    transaction_time: datetime = Field(sa_type=UtcDateTime)
    due_at: datetime = Field(sa_type=UtcDateTime)  # pending until then (the refund window)
    payment_amount: Decimal = Field(sa_type=MONEY)  # the payment (our share, USD)
    rate: Decimal = Field(sa_type=Numeric(5, 4))
    amount: Decimal = Field(sa_type=MONEY)  # the commission; negative for a reversal
    reverses_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("affiliate_commission.id"), nullable=True, unique=True
        ),
    )
    flagged: bool = False  # self-referral: pays nothing, for the operator to look at
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


COMMISSION_TABLE = table_of(AffiliateCommission)


async def add_commission(
    session: AsyncSession, *, values: dict[str, Any], commit: bool = True
) -> bool:
    """Record one commission entry; False when its key (or the payment it reverses) has one
    already: nothing changes. ``commit=False`` leaves it in the caller's transaction."""
    conn = await session.connection()
    insert_into = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert_into(COMMISSION_TABLE).values(**values).on_conflict_do_nothing()
    result = await conn.execute(stmt)
    if commit:
        await session.commit()
    return bool(result.rowcount)


async def commission_of_payment(
    session: AsyncSession, *, receipt: str
) -> AffiliateCommission | None:
    """The commission earned on the payment ``receipt`` (a sale, upsell or rebill)."""
    stmt = select(AffiliateCommission).where(
        col(AffiliateCommission.receipt) == receipt,
        col(AffiliateCommission.kind).in_((SALE, UPSELL, REBILL)),
    )
    return (await session.exec(stmt.order_by(col(AffiliateCommission.id)))).first()


async def commissions_of(session: AsyncSession, *, affiliate_id: int) -> list[AffiliateCommission]:
    stmt = (
        select(AffiliateCommission)
        .where(col(AffiliateCommission.affiliate_id) == affiliate_id)
        .order_by(col(AffiliateCommission.id))
    )
    return list((await session.exec(stmt)).all())


async def recent_commissions(
    session: AsyncSession, *, affiliate_id: int, limit: int
) -> tuple[list[AffiliateCommission], int]:
    """The latest ``limit`` entries of an affiliate, newest first, and how many there are."""
    stmt = (
        select(AffiliateCommission)
        .where(col(AffiliateCommission.affiliate_id) == affiliate_id)
        .order_by(col(AffiliateCommission.id).desc())
        .limit(limit)
    )
    rows = list((await session.exec(stmt)).all())
    count = (
        await session.exec(
            select(func.count()).where(col(AffiliateCommission.affiliate_id) == affiliate_id)
        )
    ).one()
    return rows, int(count)
