"""ClickBank's REST API, the three calls we make: a refund ticket, a cancel ticket (no more
rebills) and a change of a subscription's product. ClickBank answers with a notification
(RFND, CANCEL-REBILL, SUBSCRIPTION-CHG) later: credits move only when it arrives.

``POST {base}/rest/1.3/tickets/{receipt}?type=rfnd|cncl&reason=…&comment=…`` and
``POST {base}/rest/1.3/orders2/{receipt}/changeProduct?oldSku=…&newSku=…``, authenticated by the
``Authorization`` header holding the API key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=15)


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
            {"type": "rfnd", "reason": "ticket.type.refund.7", "refundType": "FULL",
             "comment": comment},
        )  # fmt: skip

    async def cancel(self, receipt: str, *, comment: str) -> dict[str, Any]:
        return await self._post(
            f"/rest/1.3/tickets/{receipt}",
            {"type": "cncl", "reason": "ticket.type.cancel.7", "comment": comment},
        )

    async def change_product(self, receipt: str, *, old_item: str, new_item: str) -> dict[str, Any]:
        return await self._post(
            f"/rest/1.3/orders2/{receipt}/changeProduct",
            {"oldSku": old_item, "newSku": new_item, "carryAffiliate": "true"},
        )
