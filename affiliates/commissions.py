"""Commissions, decided by pure functions: what a payment of a referred customer earns, and
the pending / payable split of an affiliate's entries.

Rounding: the commission is ``payment × rate`` rounded half-up to the cent (0.005 → 0.01), on
``Decimal`` values; a reversal takes back exactly what its payment earned (or, for a partial
refund, the refunded amount × rate, rounded the same way, never more than was earned)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

CENT = Decimal("0.01")


def commission(payment: Decimal, rate: Decimal) -> Decimal:
    """``payment × rate``, rounded half-up to the cent."""
    return (payment * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def reversal(earned: Decimal, refunded: Decimal, rate: Decimal) -> Decimal:
    """The (negative) amount that reverses a commission ``earned`` on a payment of which
    ``refunded`` (a positive amount, or 0 when the notification does not say) came back."""
    if refunded <= 0:
        return -earned
    return -min(earned, commission(refunded, rate))


class Entry(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def reverses_id(self) -> int | None: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def transaction_time(self) -> datetime: ...
    @property
    def due_at(self) -> datetime: ...


@dataclass(frozen=True)
class Balance:
    pending: Decimal  # earned, not payable yet (this month's, or still in the refund window)
    payable: Decimal  # previous months' and out of the refund window, less what was paid
    paid: Decimal


def month_start(when: datetime) -> datetime:
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def balance(entries: Iterable[Entry], *, paid: Decimal, now: datetime) -> Balance:
    """Split an affiliate's entries at ``now``. Payable: entries of transactions before this
    month that are out of their refund window, less ``paid`` (it may be negative: a paid
    commission reversed — later commissions pay it back first). Pending: the rest.

    A reversal goes where the commission it reverses is: a refund of a commission still pending
    cancels it within the pending part; a refund of a payable (or paid) commission takes it
    back from the payable part at once, whatever month the refund is of — so a commission
    refunded just before a payout date is never paid."""
    entries = list(entries)
    start = month_start(now)

    def is_due(e: Entry) -> bool:
        return e.transaction_time < start and e.due_at <= now

    due_ids = {e.id for e in entries if e.reverses_id is None and is_due(e)}
    due = pending = Decimal("0.00")
    for e in entries:
        if (e.reverses_id in due_ids) if e.reverses_id is not None else is_due(e):
            due += e.amount
        else:
            pending += e.amount
    return Balance(pending=pending, payable=due - paid, paid=paid)
