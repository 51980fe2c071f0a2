"""What a ClickBank notification does to an account, decided by one pure function:
:func:`effects` turns a :class:`~billing.clickbank_ins.Notification` into a list of effects, which
``billing.clickbank_apply`` carries out through the credits ledger.

- SALE (ORIGINAL, UPSELL, BUMP or CART line) of a plan: the plan active until the next payment
  date, its credits granted; of a credit pack: the pack's credits.
- BILL (a rebill): the plan's credits for the new period, the period moved on.
- RFND, CGBK, INSF: the credits of that payment revoked as far as the balance allows (what was
  spent already is recorded as a shortfall), and the plan ended if the payment was the plan's.
- CANCEL-REBILL: no more renewals; the plan runs to the end of its paid period.
- UNCANCEL-REBILL: renewals again. SUBSCRIPTION-CHG: the plan changes.
- TEST and TEST_*: recorded, no money moves. Notifications for another role (we as an affiliate
  or JV partner) are recorded only.

Every grant is keyed on the payment (receipt + item), every reversal on the payment too, so a
replay, a RFND followed by a CGBK of the same receipt, or two workers at once never count twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from billing import clickbank_ins as ins

REVERSALS = frozenset({ins.RFND, ins.CGBK, ins.INSF})
PAYMENTS = frozenset({ins.SALE, ins.BILL})
DEFAULT_PERIOD = timedelta(days=30)  # when a recurring line carries no next payment date


class Product(Protocol):
    @property
    def sku(self) -> str: ...
    @property
    def kind(self) -> str: ...  # plan | pack
    @property
    def credits(self) -> int: ...
    @property
    def recurring(self) -> bool: ...


@dataclass(frozen=True)
class Grant:
    """Credits for one payment (``key`` makes it happen once)."""

    sku: str
    credits: int
    key: str
    receipt: str
    amount: Decimal
    comment: str


@dataclass(frozen=True)
class Reverse:
    """Take back the credits granted for ``paid_key`` (as far as the balance allows)."""

    paid_key: str
    key: str
    receipt: str
    comment: str


@dataclass(frozen=True)
class PlanActive:
    sku: str
    period_end: datetime
    renews: bool


@dataclass(frozen=True)
class PlanEnded:
    sku: str


@dataclass(frozen=True)
class Renewals:
    renews: bool


@dataclass(frozen=True)
class PlanChanged:
    sku: str
    period_end: datetime | None


@dataclass(frozen=True)
class Unknown:
    """A line we cannot act on: the operator sees it in ``ccbb clickbank events``."""

    reason: str


Effect = Grant | Reverse | PlanActive | PlanEnded | Renewals | PlanChanged | Unknown


def payment_key(receipt: str, item_no: str) -> str:
    return f"clickbank:{receipt}:{item_no}"


def reversal_key(receipt: str, item_no: str) -> str:
    return f"clickbank-reversal:{receipt}:{item_no}"


def _period_end(n: ins.Notification, line: ins.LineItem) -> datetime:
    plan = line.payment_plan
    if plan is not None and plan.next_payment_date is not None:
        return plan.next_payment_date
    return n.transaction_time + DEFAULT_PERIOD


def effects(n: ins.Notification, product: Callable[[str], Product | None]) -> list[Effect]:
    """The effects of ``n``; ``product(item_no)`` finds the catalogue item a ClickBank item
    number sells (None: not ours)."""
    if n.is_test:
        return []
    if n.role != "VENDOR":
        return []
    kind = n.transaction_type
    out: list[Effect] = []
    for line in n.line_items:
        item = product(line.item_no)
        if item is None:
            out.append(Unknown(f"item {line.item_no} is not in the catalogue"))
            continue
        is_plan = item.kind == "plan"
        if kind in PAYMENTS:
            if kind == ins.BILL and not is_plan:
                out.append(Unknown(f"a rebill of {item.sku}, which is not a plan"))
                continue
            credits = item.credits * max(line.quantity, 1)
            what = "renewal" if kind == ins.BILL else line.line_item_type.lower()
            out.append(
                Grant(
                    sku=item.sku,
                    credits=credits,
                    key=payment_key(n.receipt, line.item_no),
                    receipt=n.receipt,
                    amount=line.account_amount,
                    comment=f"ClickBank {what} {n.receipt}: {item.sku}",
                )
            )
            if is_plan:
                renews = line.recurring or item.recurring
                out.append(PlanActive(item.sku, _period_end(n, line), renews))
        elif kind in REVERSALS:
            out.append(
                Reverse(
                    paid_key=payment_key(n.receipt, line.item_no),
                    key=reversal_key(n.receipt, line.item_no),
                    receipt=n.receipt,
                    comment=f"ClickBank {kind} {n.receipt}: {item.sku}",
                )
            )
            if is_plan:
                out.append(PlanEnded(item.sku))
        elif kind in (ins.CANCEL_REBILL, ins.UNCANCEL_REBILL):
            if is_plan:
                out.append(Renewals(kind == ins.UNCANCEL_REBILL))
        elif kind == ins.SUBSCRIPTION_CHG and is_plan:
            plan = line.payment_plan
            out.append(PlanChanged(item.sku, plan.next_payment_date if plan else None))
    if kind == ins.SUBSCRIPTION_CHG:
        # several lines may name the old and the new product: the last plan line is the new one
        changes = [e for e in out if isinstance(e, PlanChanged)]
        out = [e for e in out if not isinstance(e, PlanChanged)] + changes[-1:]
    return out
