"""Our small client of PayPal's Payouts API (v1), the four calls a payout run makes:

- ``POST /v1/oauth2/token`` (HTTP Basic ``client_id:secret``, ``grant_type=client_credentials``):
  a bearer token, kept until shortly before it expires;
- ``POST /v1/payments/payouts``: one batch; a ``sender_batch_id`` PayPal has seen is refused
  (``USER_BUSINESS_ERROR`` on ``SENDER_BATCH_ID``, with a link to the original batch): raised as
  :class:`DuplicateBatch` carrying the original's ``payout_batch_id``, which is how a retried run
  finds the batch an earlier, interrupted run made;
- ``GET /v1/payments/payouts/{payout_batch_id}``: the batch and its items' statuses;
- ``POST /v1/payments/payouts-item/{payout_item_id}/cancel``: take back an UNCLAIMED item.

Errors: :class:`PaypalRefused` (a 4xx: nothing was made; the message says why; for the create
call, :class:`BatchRefused` when the batch itself was refused, not our credentials) and
:class:`PaypalUnavailable` (a 5xx, a timeout, the network: PayPal may or may not have made the
batch; PayPal's documentation says a retry with the same ``sender_batch_id`` is safe). The client
secret and the tokens never reach a log, an exception message or a ``repr``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from ccbb.settings import Settings

log = logging.getLogger(__name__)

BATCH_LINK_RE = re.compile(r"/v1/payments/payouts/([A-Za-z0-9]+)")


class PaypalError(Exception):
    """PayPal refused a call or could not be reached; the message is safe to log and show."""


class PaypalRefused(PaypalError):
    def __init__(self, message: str, *, status: int, name: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name


class BatchRefused(PaypalRefused):
    """PayPal refused the batch itself (a 4xx to the create call other than our credentials):
    nothing of it was paid."""


class DuplicateBatch(PaypalRefused):
    """The ``sender_batch_id`` was used before: the batch exists (``payout_batch_id``)."""

    def __init__(self, message: str, *, payout_batch_id: str | None) -> None:
        super().__init__(message, status=400, name="USER_BUSINESS_ERROR")
        self.payout_batch_id = payout_batch_id


class PaypalUnavailable(PaypalError):
    """No answer that says what happened (5xx, timeout, network)."""


@dataclass(frozen=True)
class PayoutItem:
    receiver: str  # a PayPal e-mail address
    amount: Decimal
    sender_item_id: str
    note: str = ""


@dataclass(frozen=True)
class ItemStatus:
    payout_item_id: str
    sender_item_id: str
    receiver: str
    amount: Decimal
    status: str  # PayPal's transaction_status: SUCCESS, FAILED, UNCLAIMED, PENDING…
    error: str  # errors.name (and message), '' when none
    transaction_id: str


@dataclass(frozen=True)
class BatchStatus:
    payout_batch_id: str
    sender_batch_id: str
    batch_status: str  # DENIED, PENDING, PROCESSING, SUCCESS, CANCELED
    items: list[ItemStatus]


def _item_status(raw: dict[str, Any]) -> ItemStatus:
    item = raw.get("payout_item") or {}
    errors = raw.get("errors") or {}
    error = ""
    if isinstance(errors, dict) and errors.get("name"):
        error = f"{errors['name']}: {errors.get('message', '')}".strip().rstrip(":")
    return ItemStatus(
        payout_item_id=str(raw.get("payout_item_id", "")),
        sender_item_id=str(item.get("sender_item_id", "")),
        receiver=str(item.get("receiver", "")),
        amount=Decimal(str((item.get("amount") or {}).get("value", "0"))),
        status=str(raw.get("transaction_status", "PENDING")).upper(),
        error=error[:500],
        transaction_id=str(raw.get("transaction_id", "")),
    )


def _duplicate_batch_id(body: dict[str, Any]) -> str | None:
    """The original batch a duplicate ``sender_batch_id`` refusal links to."""
    links: list[Any] = list(body.get("links") or [])
    for detail in body.get("details") or []:
        if isinstance(detail, dict):
            links.extend(detail.get("link") or detail.get("links") or [])
    for link in links:
        match = BATCH_LINK_RE.search(str(link.get("href", "")) if isinstance(link, dict) else "")
        if match:
            return match.group(1)
    return None


def _is_duplicate(body: dict[str, Any]) -> bool:
    if body.get("name") != "USER_BUSINESS_ERROR":
        return False
    for detail in body.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("field", "")).upper() == "SENDER_BATCH_ID":
            return True
    return False


class PaypalPayouts:
    def __init__(
        self, *, base: str, client_id: str, client_secret: str, timeout: float = 30.0
    ) -> None:
        self.base = base.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PaypalPayouts:
        secret = settings.paypal_client_secret
        return cls(
            base=settings.paypal_api_base, client_id=settings.paypal_client_id,
            client_secret=secret.get_secret_value() if secret is not None else "",
            timeout=settings.paypal_timeout,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"PaypalPayouts(base={self.base!r}, client_id={self.client_id!r})"

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self._secret)

    async def __aenter__(self) -> PaypalPayouts:
        self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _send(
        self, method: str, path: str, what: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        if self._http is None:
            raise RuntimeError("use `async with PaypalPayouts(...)`")
        try:
            async with self._http.request(method, self.base + path, **kwargs) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("PayPal %s: no answer (%s)", what, type(exc).__name__)
            raise PaypalUnavailable(
                f"PayPal did not answer the {what} ({type(exc).__name__})"
            ) from None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"message": text[:200]}
        if not isinstance(body, dict):
            body = {"answer": body}
        if status >= 500:
            log.warning("PayPal %s: %s %s", what, status, body.get("name", ""))
            raise PaypalUnavailable(f"PayPal answered {status} to the {what}")
        return status, body

    async def token(self, *, fresh: bool = False) -> str:
        if self._token is not None and not fresh and self._token[1] > time.monotonic():
            return self._token[0]
        if not self.configured:
            raise PaypalRefused(
                "PayPal is not set up: set CCBB_PAYPAL_CLIENT_ID and CCBB_PAYPAL_CLIENT_SECRET",
                status=0, name="NOT_CONFIGURED",
            )  # fmt: skip
        status, body = await self._send(
            "POST", "/v1/oauth2/token", "token request",
            data={"grant_type": "client_credentials"},
            headers={
                "Accept": "application/json",
                "Authorization": aiohttp.encode_basic_auth(self.client_id, self._secret),
            },
        )  # fmt: skip
        access = body.get("access_token")
        if status != 200 or not isinstance(access, str):
            name = str(body.get("error") or body.get("name") or status)
            log.warning("PayPal token request refused: %s %s", status, name)
            raise PaypalRefused(
                f"PayPal refused the credentials ({status} {name}): check "
                "CCBB_PAYPAL_CLIENT_ID and CCBB_PAYPAL_CLIENT_SECRET", status=status, name=name,
            )  # fmt: skip
        lifetime = float(body.get("expires_in", 300))
        self._token = (access, time.monotonic() + max(lifetime - 60, lifetime / 2))
        return access

    async def _api(
        self, method: str, path: str, what: str, payload: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {await self.token(fresh=attempt == 2)}",
                "Accept": "application/json",
            }
            status, body = await self._send(method, path, what, json=payload, headers=headers)
            if status != 401:
                return status, body
        return status, body

    async def create_batch(
        self, *, sender_batch_id: str, items: list[PayoutItem], email_subject: str,
        email_message: str = "",
    ) -> str:  # fmt: skip
        """Send one batch; its ``payout_batch_id``. Raises :class:`DuplicateBatch` when PayPal
        has that ``sender_batch_id`` already."""
        header = {"sender_batch_id": sender_batch_id, "recipient_type": "EMAIL",
                  "email_subject": email_subject}  # fmt: skip
        if email_message:
            header["email_message"] = email_message
        payload = {
            "sender_batch_header": header,
            "items": [
                {
                    "recipient_type": "EMAIL",
                    "receiver": i.receiver,
                    "amount": {"value": f"{i.amount:.2f}", "currency": "USD"},
                    "sender_item_id": i.sender_item_id,
                    "note": i.note,
                }
                for i in items
            ],
        }
        status, body = await self._api("POST", "/v1/payments/payouts", "batch payout", payload)
        if status in (200, 201):
            batch_id = (body.get("batch_header") or {}).get("payout_batch_id")
            if isinstance(batch_id, str) and batch_id:
                return batch_id
            raise PaypalUnavailable("PayPal's answer to the batch payout has no payout_batch_id")
        if _is_duplicate(body):
            found = _duplicate_batch_id(body)
            log.info("PayPal has the batch %s already (%s)", sender_batch_id, found)
            raise DuplicateBatch(f"PayPal has the batch {sender_batch_id} already",
                                 payout_batch_id=found)  # fmt: skip
        name = str(body.get("name", status))
        issues = "; ".join(
            f"{d.get('field', '')}: {d.get('issue', '')}"
            for d in body.get("details") or [] if isinstance(d, dict)
        )  # fmt: skip
        log.warning("PayPal refused the batch %s: %s %s", sender_batch_id, status, name)
        refused = PaypalRefused if status in (401, 403) else BatchRefused
        raise refused(
            f"PayPal refused the batch {sender_batch_id} ({status} {name}"
            + (f": {issues}" if issues else "") + ")", status=status, name=name,
        )  # fmt: skip

    async def batch(self, payout_batch_id: str) -> BatchStatus:
        status, body = await self._api(
            "GET", f"/v1/payments/payouts/{payout_batch_id}", "batch status"
        )
        if status != 200:
            name = str(body.get("name", status))
            raise PaypalRefused(f"PayPal has no batch {payout_batch_id} ({status} {name})",
                                status=status, name=name)  # fmt: skip
        header = body.get("batch_header") or {}
        return BatchStatus(
            payout_batch_id=str(header.get("payout_batch_id", payout_batch_id)),
            sender_batch_id=str((header.get("sender_batch_header") or {}).get("sender_batch_id",
                                                                               "")),
            batch_status=str(header.get("batch_status", "PENDING")).upper(),
            items=[_item_status(i) for i in body.get("items") or [] if isinstance(i, dict)],
        )  # fmt: skip

    async def cancel_item(self, payout_item_id: str) -> ItemStatus | None:
        """Cancel an unclaimed item (its money comes back); None when PayPal refuses (it was
        claimed meanwhile, say: the next status read tells)."""
        status, body = await self._api(
            "POST", f"/v1/payments/payouts-item/{payout_item_id}/cancel", "item cancel"
        )
        if status != 200:
            log.info("PayPal did not cancel the item %s: %s %s", payout_item_id, status,
                     body.get("name", ""))  # fmt: skip
            return None
        return _item_status(body)
