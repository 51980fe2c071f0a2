"""ClickBank's Instant Notification Service (v6+), read: decrypt, parse and validate one
notification into a typed :class:`Notification` (money as ``Decimal``). Pure: no I/O.

The wire format (DESIGN.md §5): a JSON body ``{"notification": base64, "iv": base64}``; the
notification is AES-256-CBC with the key made of the first 32 characters of the lower-case hex
SHA-1 of the vendor's secret key, used as 32 ASCII bytes; the IV is the 16 base64-decoded bytes;
PKCS#7 padding, UTF-8 JSON inside (ClickBank's own sample also trims trailing bytes 0x00–0x1A).
There is no signature: a body that does not decrypt into a notification of our vendor is not from
ClickBank, and :class:`InsRefused` says why — in words that carry no personal data.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SECRET_KEY_RE = re.compile(r"^[A-Z0-9]{1,16}$")

# what ClickBank sends, and what each means for us (billing.clickbank_effects decides)
SALE, BILL, RFND, CGBK, INSF = "SALE", "BILL", "RFND", "CGBK", "INSF"
CANCEL_REBILL, UNCANCEL_REBILL, SUBSCRIPTION_CHG = (
    "CANCEL-REBILL",
    "UNCANCEL-REBILL",
    "SUBSCRIPTION-CHG",
)
TEST = "TEST"
KNOWN_TYPES = frozenset(
    {SALE, BILL, RFND, CGBK, INSF, CANCEL_REBILL, UNCANCEL_REBILL, SUBSCRIPTION_CHG, TEST}
)
ROLES = frozenset({"VENDOR", "AFFILIATE", "JV_UPSELL"})
MAX_BODY = 256 * 1024  # a notification is a few kilobytes


class InsRefused(ValueError):
    """Not a notification we accept. The message is safe to log: no personal data in it."""


def secret_key_problem(secret: str) -> str | None:
    """Why a ClickBank secret key cannot be right (None when it looks right)."""
    if not SECRET_KEY_RE.match(secret):
        return (
            "CCBB_CLICKBANK_SECRET_KEY must be 1 to 16 capital letters and digits, as set in "
            "ClickBank (Vendor Settings › My Site › Advanced Tools › Secret Key)"
        )
    return None


def aes_key(secret: str) -> bytes:
    """The AES-256 key: the first 32 hex digits of SHA-1(secret), as 32 ASCII bytes."""
    return hashlib.sha1(secret.encode("utf-8"), usedforsecurity=False).hexdigest()[:32].encode()


def decrypt(body: bytes, secret: str) -> tuple[dict[str, Any], str]:
    """The notification inside an INS body: its JSON (numbers with a point as ``Decimal``) and
    its text."""
    if len(body) > MAX_BODY:
        raise InsRefused("body too large")
    try:
        outer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InsRefused("body is not JSON") from None
    if not isinstance(outer, dict):
        raise InsRefused("body is not a JSON object")
    text, iv_text = outer.get("notification"), outer.get("iv")
    if not isinstance(text, str) or not isinstance(iv_text, str):
        raise InsRefused("body lacks 'notification' or 'iv'")
    try:
        data = base64.b64decode(text, validate=True)
        iv = base64.b64decode(iv_text, validate=True)
    except (binascii.Error, ValueError):
        raise InsRefused("'notification' or 'iv' is not base64") from None
    if len(iv) != 16:
        raise InsRefused("'iv' is not 16 bytes")
    if not data or len(data) % 16:
        raise InsRefused("'notification' is not whole AES blocks (truncated?)")
    decryptor = Cipher(algorithms.AES(aes_key(secret)), modes.CBC(iv)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    with contextlib.suppress(ValueError):  # not PKCS#7 (zero padding?): the trim, the JSON decide
        plain = unpadder.update(plain) + unpadder.finalize()
    plain = plain.rstrip(bytes(range(0x1B)))
    try:
        text = plain.decode("utf-8")
        inner = loads(text)
    except (ValueError, UnicodeDecodeError):
        raise InsRefused("does not decrypt to JSON (wrong secret key?)") from None
    if not isinstance(inner, dict):
        raise InsRefused("does not decrypt to a JSON object")
    return inner, text


def loads(text: str) -> Any:
    """JSON as notifications are read: amounts with a point as ``Decimal``, never float."""
    return json.loads(text, parse_float=Decimal)


# ---- the typed notification -----------------------------------------------------------


@dataclass(frozen=True)
class PaymentPlan:
    rebill_status: str | None
    rebill_frequency: str | None
    rebill_amount: Decimal | None
    payments_processed: int | None
    payments_remaining: int | None
    next_payment_date: datetime | None


@dataclass(frozen=True)
class LineItem:
    item_no: str
    product_title: str
    recurring: bool
    account_amount: Decimal
    quantity: int
    line_item_type: str  # ORIGINAL | UPSELL | BUMP | CART
    payment_plan: PaymentPlan | None = None


@dataclass(frozen=True)
class Upsell:
    original_receipt: str | None
    flow_id: str | None
    session: str | None
    path: str | None


@dataclass(frozen=True)
class Notification:
    transaction_type: str
    receipt: str
    transaction_time: datetime
    vendor: str
    role: str
    total_account_amount: Decimal
    currency: str
    line_items: tuple[LineItem, ...]
    customer_email: str | None
    customer_name: str | None
    affiliate: str | None = None
    order_language: str | None = None
    tracking_codes: tuple[str, ...] = ()
    upsell: Upsell | None = None
    vendor_variables: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    attempt_count: int = 1

    @property
    def key(self) -> str:
        """The idempotency key: role + receipt + type + time (a retry carries the same)."""
        when = self.transaction_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.role}|{self.receipt}|{self.transaction_type}|{when}"

    @property
    def is_test(self) -> bool:
        return self.transaction_type == TEST or self.transaction_type.startswith("TEST_")

    @property
    def base_receipt(self) -> str:
        """The order's receipt without a rebill's suffix (``P3RGBKGB-B002`` → ``P3RGBKGB``)."""
        return self.receipt.split("-", 1)[0]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, Decimal)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    raise InsRefused("a text field holds something else")


def _money(value: Any, name: str) -> Decimal:
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise InsRefused(f"{name} is not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InsRefused(f"{name} is not an amount") from None
    if not amount.is_finite():
        raise InsRefused(f"{name} is not an amount")
    return amount


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise InsRefused("a count is not a whole number") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


def _time(value: Any, name: str) -> datetime:
    text = _text(value)
    if text is None:
        raise InsRefused(f"{name} is missing")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InsRefused(f"{name} is not a date and time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _plan(raw: Any) -> PaymentPlan | None:
    if not isinstance(raw, dict):
        return None
    amount = raw.get("rebillAmount")
    nxt = raw.get("nextPaymentDate")
    return PaymentPlan(
        rebill_status=_text(raw.get("rebillStatus")),
        rebill_frequency=_text(raw.get("rebillFrequency")),
        rebill_amount=None if amount in (None, "") else _money(amount, "rebillAmount"),
        payments_processed=_int(raw.get("paymentsProcessed")),
        payments_remaining=_int(raw.get("paymentsRemaining")),
        next_payment_date=None if nxt in (None, "") else _time(nxt, "nextPaymentDate"),
    )


def _line_item(raw: Any) -> LineItem:
    if not isinstance(raw, dict):
        raise InsRefused("a line item is not an object")
    item_no = _text(raw.get("itemNo"))
    if item_no is None:
        raise InsRefused("a line item has no itemNo")
    return LineItem(
        item_no=item_no,
        product_title=_text(raw.get("productTitle")) or "",
        recurring=_bool(raw.get("recurring", False)),
        account_amount=_money(raw.get("accountAmount"), "accountAmount"),
        quantity=_int(raw.get("quantity"), 1) or 1,
        line_item_type=(_text(raw.get("lineItemType")) or "ORIGINAL").upper(),
        payment_plan=_plan(raw.get("paymentPlan")),
    )


def parse(data: dict[str, Any], *, vendor: str) -> Notification:
    """The notification ``data`` (decrypted JSON) as a :class:`Notification`, if it is one of
    ``vendor``'s (ClickBank nicknames compare case-insensitively)."""
    kind = (_text(data.get("transactionType")) or "").upper()
    if kind not in KNOWN_TYPES and not kind.startswith("TEST_"):
        raise InsRefused(f"unknown transactionType {kind[:24]!r}")
    their_vendor = _text(data.get("vendor")) or ""
    if their_vendor.lower() != vendor.lower():
        raise InsRefused("notification for another vendor")
    receipt = _text(data.get("receipt"))
    if receipt is None or len(receipt) > 40:
        raise InsRefused("receipt missing or too long")
    role = (_text(data.get("role")) or "VENDOR").upper()
    if role not in ROLES:
        raise InsRefused(f"unknown role {role[:16]!r}")
    items_raw = data.get("lineItems") or []
    if not isinstance(items_raw, list):
        raise InsRefused("lineItems is not a list")
    customer = data.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    billing = customer.get("billing")
    billing = billing if isinstance(billing, dict) else {}
    upsell_raw = data.get("upsell")
    upsell = None
    if isinstance(upsell_raw, dict) and any(upsell_raw.values()):
        upsell = Upsell(
            original_receipt=_text(upsell_raw.get("upsellOriginalReceipt")),
            flow_id=_text(upsell_raw.get("upsellFlowId")),
            session=_text(upsell_raw.get("upsellSession")),
            path=_text(upsell_raw.get("upsellPath")),
        )
    variables_raw = data.get("vendorVariables") or {}
    if not isinstance(variables_raw, dict):
        raise InsRefused("vendorVariables is not an object")
    codes_raw = data.get("trackingCodes") or []
    codes = codes_raw if isinstance(codes_raw, list) else [codes_raw]
    email = _text(billing.get("email"))
    return Notification(
        transaction_type=kind,
        receipt=receipt,
        transaction_time=_time(data.get("transactionTime"), "transactionTime"),
        vendor=their_vendor,
        role=role,
        total_account_amount=_money(data.get("totalAccountAmount"), "totalAccountAmount"),
        currency=(_text(data.get("currency")) or "USD").upper(),
        line_items=tuple(_line_item(item) for item in items_raw),
        customer_email=email.lower() if email else None,
        customer_name=_text(billing.get("fullName")),
        affiliate=_text(data.get("affiliate")),
        order_language=_text(data.get("orderLanguage")),
        tracking_codes=tuple(t for t in (_text(c) for c in codes) if t),
        upsell=upsell,
        vendor_variables={str(k): _text(v) or "" for k, v in variables_raw.items()},
        version=_text(data.get("version")),
        attempt_count=_int(data.get("attemptCount"), 1) or 1,
    )


def read_notification(body: bytes, *, secret: str, vendor: str) -> tuple[Notification, str]:
    """Decrypt and parse an INS body: the notification and its decrypted JSON text (the raw
    event to keep). Raises :class:`InsRefused`."""
    data, text = decrypt(body, secret)
    return parse(data, vendor=vendor), text
