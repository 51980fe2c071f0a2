"""The affiliate program's actions (I/O through :mod:`store.affiliates`): join, count a link's
visit, attribute a sign-up."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from affiliates import commissions as cm
from affiliates import messages, rules
from billing import clickbank_ins as ins
from billing.clickbank_effects import PAYMENTS, REVERSALS
from store import affiliates as store_aff
from store.models import User, utcnow

log = logging.getLogger(__name__)


class AlreadyMember(Exception):
    pass


async def join(
    session: AsyncSession, *, user_id: int, paypal_email: str, website: str
) -> store_aff.Affiliate:
    """Make the account a member with a fresh REF ID (drawn again in the unlikely event of a
    collision). Raises :class:`AlreadyMember`."""
    if await store_aff.get_by_user(session, user_id=user_id) is not None:
        raise AlreadyMember()
    for _ in range(5):
        try:
            return await store_aff.create_affiliate(
                session, user_id=user_id, ref_id=rules.new_ref_id(),
                paypal_email=paypal_email.strip(), website=website.strip(),
            )  # fmt: skip
        except IntegrityError:
            await session.rollback()
            if await store_aff.get_by_user(session, user_id=user_id) is not None:
                raise AlreadyMember() from None
    raise RuntimeError("could not draw a free REF ID")


async def active_affiliate(session: AsyncSession, *, ref: str) -> store_aff.Affiliate | None:
    """The active member whose REF ID ``ref`` is (None: unknown, refused or revoked)."""
    ref_id = rules.normalize_ref(ref)
    if ref_id is None:
        return None
    affiliate = await store_aff.get_by_ref(session, ref_id=ref_id)
    if affiliate is None or affiliate.status != store_aff.ACTIVE:
        return None
    return affiliate


async def attribute_signup(
    session: AsyncSession, *, user: User, landing: rules.Landing | None, now: datetime
) -> store_aff.AffiliateReferral | None:
    """Attribute a new account to the affiliate whose link it landed from, for good — when the
    landing is within 90 days, the affiliate still active, and the account never paid before.
    A self-referral is recorded flagged (it earns nothing) for the operator to see."""
    if landing is None or user.id is None or not rules.within_window(landing.landed_at, now):
        return None
    affiliate = await active_affiliate(session, ref=landing.ref_id)
    if affiliate is None or affiliate.id is None:
        return None
    if await store_aff.referral_of(session, user_id=user.id) is not None:
        return None
    if await store_aff.has_paid(session, user_id=user.id):
        return None  # only new customers
    owner = await session.get(User, affiliate.user_id)
    reason = rules.self_referral(
        affiliate_user_id=affiliate.user_id,
        affiliate_email=owner.email if owner else "",
        paypal_email=affiliate.paypal_email,
        user_id=user.id,
        user_email=user.email,
        landing_user_id=landing.session_user_id,
    )
    if reason:
        log.warning("self-referral flagged: affiliate %s, account %s: %s",
                    affiliate.ref_id, user.id, reason)  # fmt: skip
    try:
        return await store_aff.add_referral(
            session, user_id=user.id, affiliate_id=affiliate.id, landed_at=landing.landed_at,
            self_referral=reason is not None, flag_reason=reason or "",
        )  # fmt: skip
    except IntegrityError:
        await session.rollback()
        return None


async def record_commission(
    session: AsyncSession,
    *,
    n: ins.Notification,
    user_id: int,
    rate: Decimal,
    hold: timedelta,
) -> str | None:
    """The commission (or its reversal) that the applied ClickBank notification ``n`` of the
    account ``user_id`` makes, in the caller's transaction (nothing committed here). Returns a
    note for the event's outcome, None when the payment concerns no affiliate."""
    kind = n.transaction_type
    if kind in PAYMENTS:
        referral = await store_aff.referral_of(session, user_id=user_id)
        if referral is None:
            return None
        affiliate = await store_aff.get_affiliate(session, affiliate_id=referral.affiliate_id)
        if affiliate is None or affiliate.id is None or affiliate.status != store_aff.ACTIVE:
            return None  # a refused or revoked member earns nothing more
        payment = abs(n.total_account_amount)
        flagged = referral.self_referral or affiliate.user_id == user_id
        earned = Decimal("0.00") if flagged else cm.commission(payment, rate)
        what = store_aff.REBILL if kind == ins.BILL else store_aff.SALE
        if kind == ins.SALE and (
            n.upsell is not None or any(li.line_item_type == "UPSELL" for li in n.line_items)
        ):
            what = store_aff.UPSELL
        note = referral.flag_reason or messages.SELF_SAME_ACCOUNT if flagged else ""
        added = await store_aff.add_commission(
            session, commit=False, values={
                "key": n.key, "affiliate_id": affiliate.id, "customer_user_id": user_id,
                "kind": what, "receipt": n.receipt, "transaction_time": n.transaction_time,
                "due_at": n.transaction_time + hold, "payment_amount": payment, "rate": rate,
                "amount": earned, "reverses_id": None, "flagged": flagged, "note": note,
                "created_at": utcnow(),
            },
        )  # fmt: skip
        if flagged:
            log.warning("self-referral: no commission for %s on %s", affiliate.ref_id, n.receipt)
        return f"affiliate {affiliate.ref_id}: {earned} USD" if added else None
    if kind in REVERSALS:
        original = await store_aff.commission_of_payment(session, receipt=n.receipt)
        if original is None or original.id is None:
            return None
        taken = cm.reversal(original.amount, abs(n.total_account_amount), original.rate)
        added = await store_aff.add_commission(
            session, commit=False, values={
                "key": n.key, "affiliate_id": original.affiliate_id,
                "customer_user_id": original.customer_user_id, "kind": store_aff.REVERSAL,
                "receipt": n.receipt, "transaction_time": n.transaction_time,
                "due_at": n.transaction_time, "payment_amount": -abs(n.total_account_amount),
                "rate": original.rate, "amount": taken, "reverses_id": original.id,
                "flagged": original.flagged,
                "note": messages.REVERSAL_NOTE.format(kind=kind, receipt=n.receipt),
                "created_at": utcnow(),
            },
        )  # fmt: skip
        return f"affiliate commission reversed: {taken} USD" if added else None
    return None
