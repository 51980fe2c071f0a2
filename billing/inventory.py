"""The credits API's rules, modelled on Xsolla Player Inventory (pure: no I/O).

Our inventory: the virtual currency ``scan_credit`` (a scan spends one), the catalogue's packs
(each turns into its credits when granted: ``credits_10`` × 2 is 20 credits) and plans (a
non-consumable item: granting one starts it for a period and brings its credits). A request
body is an array of operations ``{user:{id}, comment, platform, items:[{sku, quantity}]}``
(``purchase`` adds ``purchase{amount, currency, external_purchase_id,
external_purchase_date}``), checked here whole before anything is applied.

Errors carry Xsolla's codes (``[0401-NNNN]``): :class:`InventoryError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from billing.catalogue import Catalogue, CatalogueItem

CURRENCY_SKU = "scan_credit"
CURRENCY_NAME = "Scan credit"
CURRENCY_DESCRIPTION = "A scan spends one credit."
MAX_OPERATIONS = 50
MAX_ITEMS = 50
MAX_QUANTITY = 100_000
MAX_TEXT = 255

Method = Literal["reward", "revoke", "purchase"]

# errorCode → HTTP status (Xsolla's codes, from its Player Inventory documentation)
STATUS = {
    1020: 401,  # authorisation error (merchant key; bearer token)
    1102: 422,  # bad request data
    4001: 404,  # unknown SKU
    5002: 422,  # bad item data
    5003: 422,  # no user id
    5004: 422,  # not in the inventory / cannot remove that many
    5006: 422,  # not enough virtual currency
    5007: 422,  # consuming a non-consumable item
    5008: 404,  # user not found
    5009: 422,  # purchase missing
}


class InventoryError(Exception):
    """An error answered as ``{statusCode, errorCode, errorMessage: "[0401-NNNN]: …"}``."""

    def __init__(self, code: int, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or STATUS.get(code, 422)
        self.message = message

    def body(self, transaction_id: str) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "errorCode": self.code,
            "errorMessage": f"[0401-{self.code}]: {self.message}",
            "transactionId": transaction_id,
        }


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int
    product: CatalogueItem | None  # None: the scan_credit currency

    @property
    def credits(self) -> int:
        """The credits it is worth (0 for a plan revoked; a plan granted brings its own)."""
        if self.product is None:
            return self.quantity
        return self.product.credits * self.quantity

    @property
    def is_plan(self) -> bool:
        return self.product is not None and self.product.kind == "plan"


@dataclass(frozen=True)
class Purchase:
    amount: Decimal
    currency: str
    external_purchase_id: str
    external_purchase_date: str  # as given (ISO 8601, checked)


@dataclass(frozen=True)
class Operation:
    user_id: str  # the user's public id
    comment: str
    platform: str
    items: tuple[Item, ...]
    purchase: Purchase | None
    digest: str  # SHA-256 of the operation as sent (canonical JSON)


def digest(value: Any) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def parse_operations(body: Any, catalogue: Catalogue, method: Method) -> list[Operation]:
    """The checked operations of a server method's body; raises :class:`InventoryError`."""
    if not isinstance(body, list) or not body:
        raise InventoryError(
            1102, "The body must be a JSON array of operations [{user, comment, platform, items}]."
        )
    if len(body) > MAX_OPERATIONS:
        raise InventoryError(
            1102,
            f"{len(body)} operations in one request: send at most {MAX_OPERATIONS} (nothing was "
            "applied; split the batch).",
        )
    return [_operation(n, op, catalogue, method) for n, op in enumerate(body, 1)]


def _operation(n: int, op: Any, catalogue: Catalogue, method: Method) -> Operation:
    where = f"operation {n}"
    if not isinstance(op, dict):
        raise InventoryError(1102, f"{where}: must be an object {{user, comment, items}}.")
    user = op.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, str) or not user_id.strip():
        raise InventoryError(5003, f"{where}: user.id is missing (the user's public id).")
    comment = _text(op.get("comment"), f"{where}: comment")
    platform = _text(op.get("platform"), f"{where}: platform")
    items = op.get("items")
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
        raise InventoryError(
            5002, f"{where}: items must be a list of 1 to {MAX_ITEMS} {{sku, quantity}}."
        )
    parsed = tuple(_item(f"{where}, item {m}", it, catalogue) for m, it in enumerate(items, 1))
    purchase = None
    if method == "purchase":
        purchase = _purchase(where, op.get("purchase"))
    return Operation(user_id.strip(), comment, platform, parsed, purchase, digest(op))


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InventoryError(1102, f"{where} must be a text of at most {MAX_TEXT} characters.")
    return value


def parse_item(where: str, item: Any, catalogue: Catalogue) -> Item:
    """One ``{sku, quantity}`` (also the consume body, with ``instance_id``)."""
    return _item(where, item, catalogue)


def _item(where: str, item: Any, catalogue: Catalogue) -> Item:
    if not isinstance(item, dict):
        raise InventoryError(5002, f"{where}: must be an object {{sku, quantity}}.")
    sku = item.get("sku")
    quantity = item.get("quantity")
    if not isinstance(sku, str) or not sku:
        raise InventoryError(5002, f"{where}: sku is missing.")
    if item.get("instance_id") is not None:
        raise InventoryError(5002, f"{where}: instance_id must be null (our items have none).")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InventoryError(5002, f"{where}: quantity must be a whole number.")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InventoryError(5002, f"{where}: quantity must be from 1 to {MAX_QUANTITY:,}.")
    if sku == CURRENCY_SKU:
        return Item(sku, quantity, None)
    product = catalogue.get(sku)
    if product is None:
        raise InventoryError(
            4001,
            f"{where}: no item {sku[:64]!r}: use {CURRENCY_SKU}, or a plan or pack of GET "
            "/api/v1/plans.",
        )
    if product.kind == "plan" and quantity != 1:
        raise InventoryError(5002, f"{where}: a plan is one item: give quantity 1.")
    return Item(sku, quantity, product)


def _purchase(where: str, value: Any) -> Purchase:
    if value is None:
        raise InventoryError(
            5009,
            f"{where}: purchase is missing: give purchase{{amount, currency, "
            "external_purchase_id, external_purchase_date}.",
        )
    if not isinstance(value, dict):
        raise InventoryError(5009, f"{where}: purchase must be an object.")
    try:
        amount = Decimal(str(value.get("amount")))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not isinstance(value.get("amount"), str) or not amount.is_finite() or amount < 0:
        raise InventoryError(1102, f'{where}: purchase.amount must be a string such as "3.99".')
    currency = value.get("currency")
    if not isinstance(currency, str) or not re.match(r"^[A-Z]{3}$", currency):
        raise InventoryError(1102, f'{where}: purchase.currency must be a code such as "USD".')
    epid = value.get("external_purchase_id")
    if not isinstance(epid, str) or not epid.strip() or len(epid) > 100:
        raise InventoryError(
            1102, f"{where}: purchase.external_purchase_id must be a text of 1 to 100 characters."
        )
    date = value.get("external_purchase_date")
    try:
        ok = isinstance(date, str) and datetime.fromisoformat(date) is not None
    except ValueError:
        ok = False
    if not ok:
        raise InventoryError(
            1102,
            f"{where}: purchase.external_purchase_date must be an ISO 8601 date such as "
            '"2020-01-25T05:00:00+05:00".',
        )
    return Purchase(amount, currency, epid.strip(), str(date))
