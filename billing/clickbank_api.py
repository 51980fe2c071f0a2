"""ClickBank's REST API, the three calls we make: a refund ticket, a cancel ticket (no more
rebills) and a change of a subscription's product. ClickBank answers with a notification
(RFND, CANCEL-REBILL, SUBSCRIPTION-CHG) later: credits move only when it arrives.

Checked against ClickBank's documentation (2026-12-01):
- the tickets API, https://api.clickbank.com/rest/1.3/tickets and
  https://support.clickbank.com/hc/en-us/articles/229657228-Tickets-API:
  ``POST /1.3/tickets/{receipt}`` with ``type`` (``rfnd``, ``cncl`` or ``tech``, required),
  ``reason`` (required, one of the type's codes: ``ticket.type.refund.1``…``8``,
  ``ticket.type.cancel.1``…``7``; ``.8`` and ``.7`` are "Other" — ``ticket.type.refund.7`` is
  "Duplicate purchase", which is not why our users ask), ``refundType`` (required for
  ``rfnd``: ``FULL``, ``PARTIAL_PERCENT``, ``PARTIAL_AMOUNT``, case sensitive), ``comment``,
  ``sku`` (optional, a line of a cart). For a recurring product ``rfnd`` refunds AND cancels
  future billing, ``cncl`` only cancels; for a one-off product both refund. Answers the ticket
  (``TicketData``).
- the orders API, https://support.clickbank.com/hc/en-us/articles/227834567-Orders-API:
  ``POST /1.3/orders2/{receipt}/changeProduct`` with ``oldSku`` and ``newSku`` (required: the
  ClickBank item numbers), ``carryAffiliate``, ``applyProratedRefund`` (default TRUE),
  ``nextRebillDate``; answers 204 No Content.
- https://support.clickbank.com/hc/en-us/articles/360040167052-ClickBank-API-Specifications:
  the ``Authorization`` header holds the API key itself (``API-…``; no developer key any
  more), parameters go in the query string only ("requests using form-based (post)
  parameters are ignored"), the answer's format follows ``Accept``, and a call without the
  right credentials is answered 403.

The ticket's JSON field names are not spelled out on those pages (its XML schema is served by
``GET /1.3/tickets/schema``): the ticket id is read from ``ticketid`` at the top or under
``ticketData`` (the orders API wraps its answers in ``orderData`` that way) and is kept only as
a note; nothing depends on it. The local ClickBank (``ccbb.sandbox.clickbank``) checks the same
rules, so a call that breaks them fails in the tests.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=15)
REFUND_REASON = "ticket.type.refund.8"  # "Other" (the user asked, from the Billing page)
CANCEL_REASON = "ticket.type.cancel.7"  # "Other"


class ClickbankApiError(Exception):
    """ClickBank refused or could not be reached; the message is safe to show the user."""


@dataclass(frozen=True)
class ClickbankApi:
    base: str
    api_key: str

    async def _post(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if not self.api_key:
            raise ClickbankApiError("ClickBank's API key is not set (CCBB_CLICKBANK_API_KEY)")
        url = self.base.rstrip("/") + path
        headers = {"Authorization": self.api_key, "Accept": "application/json"}
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as http,
                http.post(url, params=params, headers=headers) as response,
            ):
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ClickBank API %s unreachable: %s", path.split("/")[3], type(exc).__name__)
            raise ClickbankApiError("ClickBank could not be reached; try again later") from None
        if status >= 300:
            log.warning("ClickBank API answered %s to %s", status, path.split("/")[3])
            raise ClickbankApiError(f"ClickBank refused the request ({status}): {text[:200]}")
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {"text": text[:200]}
        return data if isinstance(data, dict) else {"answer": data}

    async def refund(self, receipt: str, *, comment: str) -> dict[str, Any]:
        return await self._post(
            f"/rest/1.3/tickets/{receipt}",
            {"type": "rfnd", "reason": REFUND_REASON, "refundType": "FULL", "comment": comment},
        )

    async def cancel(self, receipt: str, *, comment: str) -> dict[str, Any]:
        return await self._post(
            f"/rest/1.3/tickets/{receipt}",
            {"type": "cncl", "reason": CANCEL_REASON, "comment": comment},
        )

    async def change_product(self, receipt: str, *, old_item: str, new_item: str) -> dict[str, Any]:
        return await self._post(
            f"/rest/1.3/orders2/{receipt}/changeProduct",
            {"oldSku": old_item, "newSku": new_item, "carryAffiliate": "true"},
        )


def ticket_id(answer: dict[str, Any]) -> str | None:
    """The id of the ticket ClickBank made, from its answer (None when it does not say)."""
    data = answer.get("ticketData", answer)
    if isinstance(data, list) and data:
        data = data[0]
    value = data.get("ticketid", data.get("ticketId")) if isinstance(data, dict) else None
    return str(value) if value not in (None, "") else None
