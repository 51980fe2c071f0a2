"""The affiliate program's actions (I/O through :mod:`store.affiliates`): join, count a link's
visit, attribute a sign-up."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from affiliates import rules
from store import affiliates as store_aff
from store.models import User

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
