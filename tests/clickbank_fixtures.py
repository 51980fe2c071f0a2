"""ClickBank's side, written in the tests from the published rule (DESIGN.md §5), not by
calling our code: an INS body encrypted as ClickBank encrypts it, and notifications as
ClickBank writes them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SECRET = "SECRETKEY123"
VENDOR = "ccbbvendor"


def encrypt_ins(
    payload: dict[str, Any] | str | bytes, secret: str = SECRET, *, pad: str = "pkcs7"
) -> bytes:
    """The HTTP body ClickBank POSTs: {"notification": b64(AES-256-CBC), "iv": b64(iv)}."""
    if isinstance(payload, dict):
        plain = json.dumps(payload).encode()
    elif isinstance(payload, str):
        plain = payload.encode()
    else:
        plain = payload
    key = hashlib.sha1(secret.encode()).hexdigest()[:32].encode("ascii")
    assert len(key) == 32
    if pad == "pkcs7":
        n = 16 - len(plain) % 16
        plain += bytes([n]) * n
    else:  # zero padding, as old mcrypt-based senders did
        plain += b"\0" * (-len(plain) % 16)
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = enc.update(plain) + enc.finalize()
    return json.dumps(
        {"notification": base64.b64encode(data).decode(), "iv": base64.b64encode(iv).decode()}
    ).encode()


def notification(
    kind: str = "SALE",
    *,
    receipt: str = "ABCD1234",
    item: str = "1",
    amount: str = "29.00",
    time: str = "2026-12-01T10:00:00-07:00",
    email: str = "buyer@example.com",
    variables: dict[str, str] | None = None,
    line_type: str = "ORIGINAL",
    recurring: bool = False,
    next_payment: str | None = None,
    upsell: dict[str, Any] | None = None,
    role: str = "VENDOR",
    vendor: str = VENDOR,
    attempt: int = 1,
    extra_items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "itemNo": item,
        "productTitle": f"Product {item}",
        "shippable": False,
        "recurring": recurring,
        "accountAmount": float(amount),
        "quantity": 1,
        "downloadUrl": "",
        "lineItemType": line_type,
    }
    if recurring:
        line["paymentPlan"] = {
            "rebillStatus": "ACTIVE",
            "rebillFrequency": "MONTHLY",
            "rebillAmount": float(amount),
            "paymentsProcessed": 1,
            "paymentsRemaining": 998,
            "nextPaymentDate": next_payment or "2026-12-31T10:00:00-07:00",
        }
    return {
        "transactionTime": time,
        "receipt": receipt,
        "transactionType": kind,
        "vendor": vendor,
        "affiliate": None,
        "role": role,
        "totalAccountAmount": float(amount),
        "paymentMethod": "VISA",
        "totalOrderAmount": float(amount),
        "totalTaxAmount": 0.00,
        "totalShippingAmount": 0.00,
        "currency": "USD",
        "orderLanguage": "EN",
        "trackingCodes": ["billing"],
        "lineItems": [line, *(extra_items or [])],
        "customer": {
            "billing": {
                "firstName": "Ada",
                "lastName": "Buyer",
                "fullName": "Ada Buyer",
                "phoneNumber": "",
                "email": email,
                "address": {"state": "CA", "postalCode": "90210", "country": "US"},
            }
        },
        "upsell": upsell,
        "hopfeed": None,
        "version": 7.0,
        "attemptCount": attempt,
        "vendorVariables": variables or {},
    }
