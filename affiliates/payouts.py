"""The payout run: on a payout date, every active affiliate's payable balance (commissions of
previous months, out of the refund window, less what was paid) of at least the minimum is paid
through one PayPal batch; smaller balances carry over; a negative balance (a paid commission
reversed) is paid back by later commissions before anything more is paid.

Exactly once, whatever happens to the process:

1. the batch of the date and its items are recorded in our database first, in one
   transaction (a date has one batch: a second run finds it and resumes it);
2. the batch is sent with ``sender_batch_id`` made from the date; when PayPal has it already
   (an earlier run was stopped after sending, before writing the answer down) PayPal refuses
   the repeat and links to the original, which we take as the answer;
3. the batch status is read back; FAILED, BLOCKED, RETURNED… items give their amount back to
   the balance (a new event row, once per item); UNCLAIMED ones are cancelled first (so that
   a late claim cannot pay them twice), then come back RETURNED.

Every run first resumes the batches of earlier dates that are not settled (not sent yet, or with
items still pending). I/O through :mod:`store.payouts` and :mod:`affiliates.paypal_payouts`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from affiliates import commissions as cm
from affiliates import payout_plan as plan
from affiliates.messages import PAYOUT_EMAIL_SUBJECT, PAYOUT_NOTE
from affiliates.payout_dates import is_payout_date, next_payout_date
from affiliates.paypal_payouts import (
    BatchRefused,
    DuplicateBatch,
    ItemStatus,
    PayoutItem,
    PaypalError,
    PaypalPayouts,
)
from ccbb.settings import Settings
from store import affiliates as store_aff
from store import payouts as store_pay

log = logging.getLogger(__name__)

SETTLE_DAYS = 120  # earlier batches still looked at by a run


class RunIncomplete(Exception):
    """PayPal could not be reached (or did not say): run again; nothing will be paid twice."""


@dataclass(frozen=True)
class Line:
    ref_id: str
    receiver: str
    amount: Decimal


@dataclass
class RunReport:
    payout_date: date
    payout_day: bool  # whether the date is a payout date at all
    sender_batch_id: str
    paid: list[Line] = field(default_factory=list)  # sent (or, dry run: would be)
    carried: list[Line] = field(default_factory=list)  # non-zero, under the minimum: carried
    resumed: bool = False  # the date's batch was recorded by an earlier run
    paypal_batch_id: str = ""
    statuses: dict[str, int] = field(default_factory=dict)  # item statuses seen
    returned: Decimal = Decimal("0.00")  # given back to balances by this run
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.paid), Decimal("0.00"))


async def candidates(session: AsyncSession, *, day: date) -> list[plan.Candidate]:
    """Every active affiliate with the balance a payout on ``day`` looks at."""
    at = plan.cut_off(day)
    paid = await store_pay.paid_totals(session)
    out = []
    for affiliate in await store_pay.active_affiliates(session):
        assert affiliate.id is not None
        entries = await store_aff.commissions_of(session, affiliate_id=affiliate.id)
        balance = cm.balance(entries, paid=paid.get(affiliate.id, Decimal("0.00")), now=at)
        out.append(plan.Candidate(affiliate.id, affiliate.ref_id, affiliate.paypal_email,
                                  balance))  # fmt: skip
    return out


async def run_payouts(
    session: AsyncSession,
    client: PaypalPayouts | None,
    *,
    day: date,
    settings: Settings,
    dry_run: bool = False,
) -> RunReport:
    """Pay what ``day`` pays (nothing when it is not a payout date), after resuming earlier
    batches. ``dry_run``: say who would be paid what; no PayPal call, no row written.
    Raises :class:`RunIncomplete` when PayPal did not answer (run again later)."""
    report = RunReport(day, is_payout_date(day, settings.payout_country),
                       plan.sender_batch_id(settings.payout_batch_prefix, day))  # fmt: skip
    if not dry_run:
        assert client is not None
        for earlier in await store_pay.recent_batches(
            session, since=day - timedelta(days=SETTLE_DAYS)
        ):
            if earlier.payout_date == day:
                continue
            try:
                await _resume_safely(session, client, earlier, report=None)
            except RunIncomplete as exc:  # read again next time; today's batch goes on
                log.warning("payout batch of %s not read back: %s", earlier.payout_date, exc)
                report.notes.append(f"the batch of {earlier.payout_date} was not read back: {exc}")
    if not report.payout_day:
        report.notes.append(
            f"{day} is not a payout date (next: {next_payout_date(day, settings.payout_country)})"
        )
        return report
    batch = await store_pay.batch_for_date(session, payout_date=day)
    if batch is None:
        paid, carried = plan.split(await candidates(session, day=day), settings.payout_minimum)
        report.paid = [Line(c.ref_id, c.receiver, c.balance.payable) for c in paid]
        report.carried = [
            Line(c.ref_id, c.receiver, c.balance.payable) for c in carried if c.balance.payable
        ]
        if dry_run or not paid:
            return report
        assert client is not None
        if not client.configured:
            report.notes.append("PayPal is not set up (CCBB_PAYPAL_CLIENT_ID, "
                                "CCBB_PAYPAL_CLIENT_SECRET): nothing was paid")  # fmt: skip
            return report
        items = [
            {
                "affiliate_id": c.affiliate_id,
                "receiver": c.receiver,
                "amount": c.balance.payable,
                "sender_item_id": plan.sender_item_id(
                    settings.payout_batch_prefix, day, c.affiliate_id
                ),
            }
            for c in paid
        ]
        try:
            batch = await store_pay.create_batch(
                session, payout_date=day, sender_batch_id=report.sender_batch_id, items=items
            )
        except IntegrityError:  # another run recorded this date's batch first: resume it
            await session.rollback()
            batch = await store_pay.batch_for_date(session, payout_date=day)
            assert batch is not None
            report.resumed = True
    else:
        report.resumed = True
    if report.resumed:
        refs = {a.id: a.ref_id for a in await store_pay.active_affiliates(session, every=True)}
        report.paid = [
            Line(refs.get(i.affiliate_id, "?"), i.receiver, i.amount)
            for i in await store_pay.items_of(session, batch_id=batch.id or 0)
        ]
        if dry_run:
            report.notes.append(f"the batch of {day} was recorded before: it is resumed, "
                                "not made again")  # fmt: skip
            return report
    assert client is not None
    await _resume_safely(session, client, batch, report=report)
    return report


async def _resume_safely(
    session: AsyncSession,
    client: PaypalPayouts,
    batch: store_pay.PayoutBatch,
    *,
    report: RunReport | None,
) -> None:
    try:
        await _resume(session, client, batch, report=report)
    except PaypalError as exc:  # unreachable, 5xx, or our credentials refused: nothing lost
        raise RunIncomplete(f"{exc}: run again, nothing will be paid twice") from None


async def _resume(
    session: AsyncSession,
    client: PaypalPayouts,
    batch: store_pay.PayoutBatch,
    *,
    report: RunReport | None,
) -> None:
    """Send the batch if PayPal has not taken it yet, then read its status back."""
    assert batch.id is not None
    events = await store_pay.events_of(session, batch_id=batch.id)
    items = await store_pay.items_of(session, batch_id=batch.id)
    whole = [e for e in events if e.payout_id is None]
    if any(e.status == store_pay.REFUSED for e in whole):
        return
    latest: dict[int | None, str] = {e.payout_id: e.status for e in events if e.payout_id}
    if items and all(latest.get(i.id, "") in plan.SETTLED for i in items):
        return
    sent = [e.paypal_batch_id for e in whole if e.status == store_pay.SUBMITTED]
    paypal_batch_id = sent[0] if sent else await _send(session, client, batch, items)
    if not paypal_batch_id:
        return
    if report is not None:
        report.paypal_batch_id = paypal_batch_id
    status = await client.batch(paypal_batch_id)
    seen = {s.sender_item_id: s for s in status.items}
    returned = {e.returns_payout_id for e in events if e.returns_payout_id is not None}
    for item in items:
        state = seen.get(item.sender_item_id)
        if state is None:
            continue
        if state.status == plan.UNCLAIMED:
            await _event(session, batch, item, state, paypal_batch_id, returned)
            cancelled = await client.cancel_item(state.payout_item_id)
            if cancelled is not None:
                state = cancelled
        back = await _event(session, batch, item, state, paypal_batch_id, returned)
        if report is not None:
            report.statuses[state.status] = report.statuses.get(state.status, 0) + 1
            report.returned += back


async def _event(
    session: AsyncSession,
    batch: store_pay.PayoutBatch,
    item: store_pay.AffiliatePayout,
    state: ItemStatus,
    paypal_batch_id: str,
    returned: set[int],
) -> Decimal:
    """Record the item's status (once); give its amount back when the money came back. The
    amount given back by this call."""
    give_back = state.status in plan.GIVE_BACK and item.id not in returned
    added = await store_pay.add_event(session, values={
        "batch_id": batch.id, "payout_id": item.id, "status": state.status,
        "paypal_batch_id": paypal_batch_id, "paypal_item_id": state.payout_item_id,
        "transaction_id": state.transaction_id, "detail": state.error,
        "returned": item.amount if give_back else Decimal("0.00"),
        "returns_payout_id": item.id if give_back else None,
    })  # fmt: skip
    if added and give_back:
        assert item.id is not None
        returned.add(item.id)
        log.info("payout %s (%s) came back %s: %s USD back to the balance",
                 item.sender_item_id, batch.payout_date, state.status, item.amount)  # fmt: skip
        return item.amount
    return Decimal("0.00")


async def _send(
    session: AsyncSession,
    client: PaypalPayouts,
    batch: store_pay.PayoutBatch,
    items: list[store_pay.AffiliatePayout],
) -> str:
    """PayPal's id of the batch, sent now (or found sent before); '' when PayPal refused it or
    it is too old to send safely."""
    assert batch.id is not None
    if datetime.now(UTC) - batch.created_at > timedelta(days=plan.RESEND_DAYS):
        log.error("payout batch %s was recorded on %s and never confirmed sent: not sent again "
                  "(PayPal forgets sender_batch_ids after 30 days); look it up in PayPal",
                  batch.sender_batch_id, batch.created_at.date())  # fmt: skip
        return ""
    try:
        paypal_batch_id = await client.create_batch(
            sender_batch_id=batch.sender_batch_id,
            items=[PayoutItem(i.receiver, i.amount, i.sender_item_id,
                              PAYOUT_NOTE.format(day=batch.payout_date.isoformat()))
                   for i in items],
            email_subject=PAYOUT_EMAIL_SUBJECT,
        )  # fmt: skip
    except DuplicateBatch as exc:
        if not exc.payout_batch_id:
            raise RunIncomplete(
                f"PayPal has the batch {batch.sender_batch_id} but did not say which it is"
            ) from None
        paypal_batch_id = exc.payout_batch_id
    except BatchRefused as exc:
        await store_pay.add_event(
            session,
            values={"batch_id": batch.id, "status": store_pay.REFUSED, "detail": str(exc)[:500]},
        )
        for item in items:
            await store_pay.add_event(session, values={
                "batch_id": batch.id, "payout_id": item.id, "status": store_pay.REFUSED,
                "detail": str(exc)[:500], "returned": item.amount, "returns_payout_id": item.id,
            })  # fmt: skip
        log.error("payout batch %s refused by PayPal: %s (the amounts are back in the "
                  "balances)", batch.sender_batch_id, exc)  # fmt: skip
        return ""
    await store_pay.add_event(
        session,
        values={
            "batch_id": batch.id,
            "status": store_pay.SUBMITTED,
            "paypal_batch_id": paypal_batch_id,
        },
    )
    log.info("payout batch %s sent: PayPal batch %s, %d item(s)", batch.sender_batch_id,
             paypal_batch_id, len(items))  # fmt: skip
    return paypal_batch_id
