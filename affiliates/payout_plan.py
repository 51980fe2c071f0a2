"""Who a payout date pays, decided by pure functions: the ids PayPal sees, the cut-off, the
$50 minimum, and what a PayPal item status means for the affiliate's balance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from affiliates.commissions import Balance

# PayPal item statuses (transaction_status) whose money came back to us: the amount returns to
# the affiliate's balance. UNCLAIMED is taken back (cancelled) first, then comes back RETURNED.
GIVE_BACK = frozenset({"FAILED", "RETURNED", "BLOCKED", "REFUNDED", "REVERSED", "DENIED"})
SETTLED = GIVE_BACK | {"SUCCESS"}
UNCLAIMED = "UNCLAIMED"
# a batch recorded but never taken by PayPal is sent again only this long: PayPal refuses a
# repeated sender_batch_id for 30 days, after which a second send could pay twice
RESEND_DAYS = 25


def sender_batch_id(prefix: str, day: date) -> str:
    """One batch per payout date, ever: ``ccbb-payout-2026-12-10``."""
    return f"{prefix}-payout-{day.isoformat()}"


def sender_item_id(prefix: str, day: date, affiliate_id: int) -> str:
    return f"{prefix}-{day:%Y%m%d}-{affiliate_id}"


def cut_off(day: date) -> datetime:
    """The moment a payout date's balances are taken at: its first second (UTC), so that a run
    retried later that day, or days later, computes what the first one did."""
    return datetime.combine(day, time(0), UTC)


@dataclass(frozen=True)
class Candidate:
    affiliate_id: int
    ref_id: str
    receiver: str
    balance: Balance


def split(
    candidates: Iterable[Candidate], minimum: Decimal
) -> tuple[list[Candidate], list[Candidate]]:
    """(paid, carried over): a payable balance of at least ``minimum`` (and above zero) is paid
    whole; a smaller one, or a negative one (a paid commission reversed), carries over."""
    paid: list[Candidate] = []
    carried: list[Candidate] = []
    for c in candidates:
        (paid if c.balance.payable >= minimum and c.balance.payable > 0 else carried).append(c)
    return paid, carried
