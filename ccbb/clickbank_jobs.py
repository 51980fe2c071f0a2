"""The background job that processes one ClickBank notification kept by ``POST /clickbank/ins``.

One order's events (its sale, rebills, refunds…) are processed one at a time (a Redis lock per
order), each in one database transaction: the ledger rows (``store.credits`` with
``commit=False``), the plan, and the event's outcome commit together or not at all. Every grant
and reversal is keyed on the payment, so a replay, a second delivery or two workers at once
never grant twice.

Out of order: an event that needs an earlier one (a BILL, RFND or CANCEL-REBILL before the
order's SALE was processed, an upsell before its original sale) waits (state ``waiting``) and
is tried again after each of :data:`WAIT_DELAYS`; a processed SALE wakes the waiting events at
once. A payment whose order never shows up is finally tied to the account by the buyer's e-mail
(or a new account, invited to set a password).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq import Retry

from affiliates import program
from billing import clickbank_effects as fx
from billing import clickbank_ins as ins
from billing import invitations
from billing.catalogue import Catalogue, load_catalogue
from billing.clickbank_links import REFERENCE_PARAM
from ccbb import clickbank_mails
from store import clickbank as store_cb
from store import credits as store_credits
from store import users as store_users
from store.models import utcnow

log = logging.getLogger(__name__)

JOB_NAME = "clickbank_event_job"
WAIT_DELAYS = (2.0, 10.0, 60.0, 300.0, 1800.0, 3600.0)  # then: resolved by e-mail, or failed
MAX_TRIES = len(WAIT_DELAYS) + 2
LOCK = "ccbb:clickbank:order:{}"


def job_id(event_id: int, key: str, delivery: int = 1) -> str:
    """One job per delivery of an event (a redelivery of an unfinished event runs it again:
    harmless, everything it does is keyed). The notification's key is in it too: arq keeps job
    ids in Redis for a day, and a recreated database (or another deployment sharing the Redis)
    numbers its events from 1 again — a bare id would make their jobs no-ops."""
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"clickbank:{event_id}:{digest}:{delivery}"


class Waiting(Exception):
    """The event needs an earlier one first: a payment of the order ``order``."""

    def __init__(self, message: str, order: str) -> None:
        super().__init__(message)
        self.order = order


@dataclass
class Result:
    state: str
    outcome: str
    user_id: int | None = None
    sku: str | None = None
    credits: int | None = None
    invite: tuple[str, str, str | None] | None = None  # (e-mail, link, order language): mail it
    waits_for: str | None = None
    wakes: list[tuple[int, str]] = field(default_factory=list)


async def clickbank_event_job(ctx: dict[str, Any], event_id: int) -> str:
    sessions = ctx["sessions"]
    async with sessions() as session:
        event = await store_cb.get_event(session, event_id=event_id)
        if event is None:
            return "gone"
        base = event.base_receipt
    async with ctx["redis"].lock(LOCK.format(base), timeout=60, blocking_timeout=60):
        result = await process_event(ctx, event_id)
    # the mails, after the commit (each keyed: a job run again queues none twice)
    if result.invite is not None and result.user_id is not None:
        email, link, language = result.invite
        await clickbank_mails.queue_invitation(
            ctx, user_id=result.user_id, email=email, link=link, order_language=language
        )
    await clickbank_mails.queue_receipt(ctx, event_id, _catalogue(ctx))
    for other, key in result.wakes:
        await ctx["redis"].enqueue_job(JOB_NAME, other, _job_id=job_id(other, key, 1000 + event_id))
    if result.state == store_cb.WAITING:
        tries = ctx.get("job_try", 1)
        raise Retry(defer=WAIT_DELAYS[min(tries - 1, len(WAIT_DELAYS) - 1)])
    return f"{result.state}: {result.outcome}"


def _catalogue(ctx: dict[str, Any]) -> Catalogue:
    if "catalogue" not in ctx:
        ctx["catalogue"] = load_catalogue()
    catalogue: Catalogue = ctx["catalogue"]
    return catalogue


async def process_event(ctx: dict[str, Any], event_id: int) -> Result:
    """Process one event (under its order's lock) and record the outcome."""
    settings = ctx["settings"]
    catalogue = _catalogue(ctx)
    last_try = ctx.get("job_try", 1) >= MAX_TRIES
    async with ctx["sessions"]() as session:
        event = await store_cb.get_event(session, event_id=event_id)
        if event is None or event.state in (store_cb.DONE, store_cb.IGNORED):
            return Result(event.state if event else "gone", "already processed")
        n: ins.Notification | None = None
        try:
            n = ins.parse(ins.loads(event.raw), vendor=settings.clickbank_vendor)
            result = await _decide(ctx, session, n, catalogue, last_try=last_try)
        except Waiting as why:
            await session.rollback()
            result = Result(store_cb.WAITING, str(why), waits_for=why.order)
            if last_try:
                result = Result(store_cb.FAILED, f"{why}; gave up waiting")
        except Exception as exc:
            await session.rollback()
            log.exception("ClickBank event %s failed", event_id)
            result = Result(store_cb.FAILED, f"{type(exc).__name__}: {exc}"[:500])
        fresh = await store_cb.get_event(session, event_id=event_id)
        assert fresh is not None
        await store_cb.set_outcome(
            session, event=fresh, state=result.state, outcome=result.outcome,
            user_id=result.user_id, sku=result.sku, credits=result.credits,
            waits_for=result.waits_for,
        )  # fmt: skip
        if result.state == store_cb.DONE and n is not None and n.transaction_type in fx.PAYMENTS:
            result.wakes = await store_cb.waiting_for(session, base_receipt=n.base_receipt)
    return result


async def _decide(
    ctx: dict[str, Any],
    session: Any,
    n: ins.Notification,
    catalogue: Catalogue,
    *,
    last_try: bool,
) -> Result:
    if n.is_test:
        return Result(store_cb.IGNORED, "test notification: recorded, no money moves")
    if n.role != "VENDOR":
        return Result(store_cb.IGNORED, f"role {n.role}: recorded only")
    effects = fx.effects(n, catalogue.by_clickbank_item)
    unknown = [e.reason for e in effects if isinstance(e, fx.Unknown)]
    acting = [e for e in effects if not isinstance(e, fx.Unknown)]
    if not acting:
        return Result(store_cb.FAILED, "; ".join(unknown) or "nothing to do for this product")
    user_id, invite = await _account(ctx, session, n, last_try=last_try)
    # the reversals need the payment they reverse: it must have been granted first
    paid: dict[str, int] = {}
    for e in acting:
        if isinstance(e, fx.Reverse):
            entry = await store_credits.get_entry(session, idempotency_key=e.paid_key)
            if entry is None:
                if not last_try:
                    raise Waiting(f"payment {e.receipt} not processed yet", n.base_receipt)
                unknown.append(f"payment {e.receipt} was never granted: nothing to revoke")
                continue
            paid[e.key] = entry.delta
    await session.commit()  # end the reads: the ledger's first write opens the transaction
    account = await store_credits.get_account(session, user_id=user_id)
    await session.commit()
    moved, notes, sku = 0, [], None
    for e in acting:
        if isinstance(e, fx.Grant):
            entry = await store_credits.grant(
                session, user_id=user_id, amount=e.credits, kind="purchase",
                source="clickbank", comment=e.comment, external_id=e.receipt,
                idempotency_key=e.key, commit=False,
            )  # fmt: skip
            moved += entry.delta
            sku = e.sku
            notes.append(f"+{entry.delta} credits ({e.sku}, {e.amount} {n.currency})")
        elif isinstance(e, fx.Reverse) and e.key in paid:
            entry = await store_credits.revoke(
                session, user_id=user_id, amount=paid[e.key], kind="revoke",
                source="clickbank", comment=e.comment, external_id=e.receipt,
                idempotency_key=e.key, partial=True, commit=False,
            )  # fmt: skip
            moved += entry.delta
            spent = f", {entry.shortfall} already spent" if entry.shortfall else ""
            notes.append(f"{entry.delta} credits{spent}")
        elif isinstance(e, fx.PlanActive):
            await store_credits.set_plan(
                session, user_id=user_id, sku=e.sku, status="active",
                period_end=e.period_end, renews=e.renews, commit=False,
            )  # fmt: skip
            sku = e.sku
            notes.append(f"plan {e.sku} active until {e.period_end:%Y-%m-%d}")
        elif isinstance(e, fx.PlanEnded):
            if account is not None and account.plan_sku == e.sku:
                await store_credits.set_plan(
                    session, user_id=user_id, sku=None, status="ended",
                    period_end=utcnow(), renews=False, commit=False,
                )  # fmt: skip
                notes.append(f"plan {e.sku} ended")
            sku = e.sku
        elif isinstance(e, fx.Renewals):
            if account is None or not account.plan_sku:
                notes.append("no plan to change")
                continue
            await store_credits.set_plan(
                session, user_id=user_id, sku=account.plan_sku,
                status="active" if e.renews else "cancelled",
                period_end=account.period_end, renews=e.renews, commit=False,
            )  # fmt: skip
            sku = account.plan_sku
            end = f"{account.period_end:%Y-%m-%d}" if account.period_end else "its end"
            notes.append("renews again" if e.renews else f"no more renewals; runs to {end}")
        elif isinstance(e, fx.PlanChanged):
            period_end = e.period_end or (account.period_end if account else None)
            await store_credits.set_plan(
                session, user_id=user_id, sku=e.sku, status="active",
                period_end=period_end, renews=True, commit=False,
            )  # fmt: skip
            sku = e.sku
            notes.append(f"plan changed to {e.sku}")
    if note := await program.record_commission(
        session, n=n, user_id=user_id, rate=ctx["settings"].affiliate_rate,
        hold=timedelta(days=ctx["settings"].affiliate_hold_days),
    ):  # fmt: skip
        notes.append(note)
    outcome = "; ".join(notes + unknown) or "nothing to do"
    return Result(store_cb.DONE, outcome, user_id, sku, moved, invite)


async def _account(
    ctx: dict[str, Any], session: Any, n: ins.Notification, *, last_try: bool
) -> tuple[int, tuple[str, str, str | None] | None]:
    """Whose notification is it? Our checkout reference first, then the order it belongs to,
    then (for a first sale, or when its order never came) the buyer's e-mail — a new account
    with an invitation when no account has it."""
    reference = n.vendor_variables.get(REFERENCE_PARAM)
    if reference:
        checkout = await store_cb.get_checkout(session, reference=reference)
        if checkout is not None:
            return checkout.user_id, None
    orders = [n.base_receipt]
    if n.upsell is not None and n.upsell.original_receipt:
        orders.append(n.upsell.original_receipt.split("-", 1)[0])
    for order in orders:
        owner = await store_cb.order_owner(session, base_receipt=order)
        if owner is not None:
            return owner, None
    first_sale = n.transaction_type == ins.SALE and n.upsell is None
    if not first_sale and not last_try:
        raise Waiting(f"order {orders[-1]} not processed yet", orders[-1])
    if not n.customer_email:
        raise Waiting("no account and no e-mail to make one", orders[-1])
    user = await store_users.get_user_by_email(session, email=n.customer_email)
    if user is not None and user.id is not None:
        return user.id, None
    from web.auth import hash_password

    unusable = hash_password(secrets.token_urlsafe(32))  # nobody knows it: set through the link
    user = await store_users.create_user(session, email=n.customer_email, password_hash=unusable)
    assert user.id is not None
    settings = ctx["settings"]
    token = invitations.make_token(
        ctx["signing_secret"], user_id=user.id, password_hash=user.password_hash
    )
    link = f"{settings.public_url.rstrip('/')}{invitations.WELCOME_PATH}{token}"
    log.info("ClickBank: account %s made for a buyer without one", user.id)
    return user.id, (n.customer_email, link, n.order_language)
