"""The ClickBank sandbox as ClickBank behaves: the order form at the pay link, the encrypted
notification (read here by the test's own decryption, from the rule), retries on a short
schedule when the endpoint does not answer 2xx in time, the tickets API (RFND, CANCEL-REBILL),
the product change and the rebill control."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ccbb.sandbox.clickbank import config_from_catalogue, running_clickbank, thank_you_link
from tests.clickbank_fixtures import SECRET, VENDOR


def decrypt(body: bytes) -> dict[str, Any]:
    outer = json.loads(body)
    key = hashlib.sha1(SECRET.encode()).hexdigest()[:32].encode()
    dec = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(outer["iv"]))).decryptor()
    plain = dec.update(base64.b64decode(outer["notification"])) + dec.finalize()
    return dict(json.loads(plain[: -plain[-1]]))


class Receiver:
    """Our INS endpoint stand-in: answers ``statuses`` in turn (then 200), sleeping ``slow``."""

    def __init__(self, statuses: list[int] | None = None, slow: list[float] | None = None) -> None:
        self.statuses, self.slow = list(statuses or []), list(slow or [])
        self.got: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(decrypt(await request.read()))
        if self.slow:
            await asyncio.sleep(self.slow.pop(0))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@asynccontextmanager
async def stack(receiver: Receiver, **config: Any) -> AsyncIterator[tuple[Any, str]]:
    app = web.Application()
    app.router.add_post("/clickbank/ins", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    cfg = config_from_catalogue(app_url=f"http://{host}:{port}", vendor=VENDOR, secret=SECRET,
                                api_key="KEY", **config)  # fmt: skip
    try:
        async with running_clickbank(cfg) as sandbox:
            yield sandbox, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def until(check: Any, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def buy(
    http: aiohttp.ClientSession, sandbox: Any, query: dict[str, str]
) -> aiohttp.ClientResponse:
    form_url = f"{sandbox.url}/{VENDOR}/"
    async with http.get(form_url, params=query) as r:
        assert r.status == 200 and "Pay" in await r.text()
    fields = {**query, "email": "Buyer@Example.com", "name": "Ada"}
    return await http.post(f"{sandbox.url}/{VENDOR}/pay", data=fields, allow_redirects=False)


async def test_a_sale_is_notified_with_our_variables_and_retried_until_answered() -> None:
    receiver = Receiver(statuses=[500], slow=[0, 0.6])
    async with stack(receiver, retry_delays=(0.2, 0.2, 0.2), answer_timeout=0.3) as (sandbox, _), \
            aiohttp.ClientSession() as http:  # fmt: skip
        r = await buy(http, sandbox, {"cbitems": "4", "vtid": "billing", "ccref": "REF123"})
        assert r.status == 303 and "/confirmation/" in r.headers["Location"]
        # 500, then too slow (0.6 s > 0.3 s), then 200: three attempts, the last one answered
        await until(lambda: len(sandbox.state.deliveries) == 3)
        n = receiver.got[-1]
        assert [d["attempt"] for d in sandbox.state.deliveries] == [1, 2, 3]
        assert [g["attemptCount"] for g in receiver.got] == [1, 2, 3]
        assert sandbox.state.deliveries[-1]["status"] == 200
        assert n["transactionType"] == "SALE" and n["vendor"] == VENDOR
        assert n["vendorVariables"] == {"ccref": "REF123"} and n["trackingCodes"] == ["billing"]
        assert n["lineItems"][0]["itemNo"] == "4" and len(n["receipt"]) == 8
        await asyncio.sleep(0.5)
        assert len(sandbox.state.deliveries) == 3  # answered: no more attempts


async def test_an_unanswered_notification_is_dropped_after_the_last_retry() -> None:
    receiver = Receiver(statuses=[503] * 10)
    async with (
        stack(receiver, retry_delays=(0.1, 0.1)) as (sandbox, _),
        aiohttp.ClientSession() as http,
    ):
        await buy(http, sandbox, {"cbitems": "4"})
        await until(lambda: len(sandbox.state.deliveries) == 3)
        await asyncio.sleep(0.4)
        assert len(sandbox.state.deliveries) == 3


async def test_upsell_flow_refund_cancel_change_and_rebill() -> None:
    receiver = Receiver()
    async with stack(receiver) as (sandbox, app), aiohttp.ClientSession() as http:
        r = await buy(http, sandbox, {"cbitems": "1", "cbfid": "1", "ccref": "R"})
        first = r.headers["Location"]
        assert first.startswith(f"{app}/clickbank/upsell/after-plan/pack50?cbf=")
        cbf = first.split("cbf=")[1]
        # a wrong item, or no session: refused
        async with http.get(f"{sandbox.url}/{VENDOR}/", params={"cbitems": "5", "cbur": "a"},
                            allow_redirects=False) as bad:  # fmt: skip
            assert bad.status == 400
        # decline the 50-pack: the 10-pack is offered; accept it: the confirmation
        q = {"cbitems": "5", "cbur": "d", "cbf": cbf}
        async with http.get(f"{sandbox.url}/{VENDOR}/", params=q, allow_redirects=False) as d:
            assert d.headers["Location"].startswith(f"{app}/clickbank/upsell/after-plan/pack10")
        q = {"cbitems": "4", "cbur": "a", "cbf": cbf}
        async with http.get(f"{sandbox.url}/{VENDOR}/", params=q, allow_redirects=False) as a:
            assert a.headers["Location"] == f"/confirmation/{cbf}"
        await until(lambda: len(receiver.got) == 2)
        sale, upsell = receiver.got
        assert upsell["lineItems"][0]["lineItemType"] == "UPSELL"
        assert upsell["upsell"]["upsellOriginalReceipt"] == sale["receipt"]
        assert upsell["vendorVariables"] == {"ccref": "R"}
        async with http.get(f"{sandbox.url}/confirmation/{cbf}") as c:
            page = await c.text()
        order = sandbox.state.orders[sale["receipt"]]
        link = thank_you_link(sandbox.state.config, order)
        assert link.replace("&", "&amp;") in page and "cbpop=" in link
        receipt = sale["receipt"]
        # rebill now, change product, cancel, refund
        async with http.post(f"{sandbox.url}/_sandbox/bill/{receipt}",
                             headers={"Accept": "application/json"}) as b:  # fmt: skip
            assert (await b.json())["receipt"] == f"{receipt}-B002"
        api = {"Authorization": "KEY"}
        async with http.post(f"{sandbox.url}/rest/1.3/orders2/{receipt}/changeProduct",
                             params={"oldSku": "1", "newSku": "2"}, headers=api) as ch:  # fmt: skip
            assert ch.status == 204  # "No Content", as ClickBank answers
        cancel = {"type": "cncl", "reason": "ticket.type.cancel.7"}
        async with http.post(f"{sandbox.url}/rest/1.3/tickets/{receipt}",
                             params=cancel, headers={"Authorization": "nope"}) as no:  # fmt: skip
            assert no.status == 403
        refund = {"type": "rfnd", "reason": "ticket.type.refund.8", "refundType": "FULL"}
        async with http.post(f"{sandbox.url}/rest/1.3/tickets/{receipt}",
                             params=refund, headers=api) as rf:  # fmt: skip
            assert rf.status == 200 and (await rf.json())["ticketData"]["ticketid"] == 1
        async with http.post(f"{sandbox.url}/rest/1.3/tickets/{receipt}",
                             params=refund, headers=api) as again:  # fmt: skip
            assert again.status == 400
        await until(lambda: len(receiver.got) == 6)
        kinds = [g["transactionType"] for g in receiver.got[2:]]
        assert kinds == ["BILL", "SUBSCRIPTION-CHG", "RFND", "CANCEL-REBILL"]
        assert receiver.got[3]["lineItems"][0]["itemNo"] == "2"


@pytest.mark.parametrize("consent", [None, "true"])
async def test_a_subscription_upsell_needs_consent(consent: str | None) -> None:
    receiver = Receiver()
    async with stack(receiver) as (sandbox, _), aiohttp.ClientSession() as http:
        from ccbb.sandbox.clickbank import FlowStep, SandboxFlow

        sandbox.state.config.flows["9"] = SandboxFlow(
            "9", "sub", {"sub": FlowStep("2", "http://127.0.0.1:9/x", None, None)}
        )
        r = await buy(http, sandbox, {"cbitems": "4", "cbfid": "9"})
        cbf = r.headers["Location"].split("cbf=")[1]
        q = {
            "cbitems": "2",
            "cbur": "a",
            "cbf": cbf,
            **({"cbrblaccpt": consent} if consent else {}),
        }
        async with http.get(f"{sandbox.url}/{VENDOR}/", params=q, allow_redirects=False) as a:
            assert (a.status == 303) is (consent == "true")


@pytest.mark.parametrize(
    ("params", "form", "status"),
    [
        ({"type": "rfnd", "refundType": "FULL"}, None, 400),  # no reason
        ({"type": "rfnd", "reason": "ticket.type.cancel.7", "refundType": "FULL"}, None, 400),
        ({"type": "rfnd", "reason": "ticket.type.refund.9", "refundType": "FULL"}, None, 400),
        ({"type": "rfnd", "reason": "ticket.type.refund.8"}, None, 400),  # no refundType
        ({"type": "rfnd", "reason": "ticket.type.refund.8", "refundType": "full"}, None, 400),
        (
            {
                "type": "rfnd",
                "reason": "ticket.type.refund.8",
                "refundType": "PARTIAL_PERCENT",
                "refundAmount": "50.00",
            },
            None,
            403,
        ),
        ({"type": "refund", "reason": "ticket.type.refund.8", "refundType": "FULL"}, None, 400),
        # ClickBank takes query parameters only: the same in a form body is ignored
        ({}, {"type": "rfnd", "reason": "ticket.type.refund.8", "refundType": "FULL"}, 400),
    ],
)
async def test_the_tickets_api_refuses_what_clickbank_refuses(
    params: dict[str, str], form: dict[str, str] | None, status: int
) -> None:
    receiver = Receiver()
    async with stack(receiver) as (sandbox, _), aiohttp.ClientSession() as http:
        await buy(http, sandbox, {"cbitems": "4"})
        await until(lambda: len(receiver.got) == 1)
        receipt = receiver.got[0]["receipt"]
        async with http.post(f"{sandbox.url}/rest/1.3/tickets/{receipt}", params=params,
                             data=form, headers={"Authorization": "KEY"}) as r:  # fmt: skip
            assert r.status == status
        assert not sandbox.state.orders[receipt].refunded


async def test_a_cancel_ticket_for_a_one_off_product_refunds_it() -> None:
    """ClickBank: "If the receipt is for a non-recurring product, either 'rfnd' or 'cncl' will
    automatically refund that sale"."""
    receiver = Receiver()
    async with stack(receiver) as (sandbox, _), aiohttp.ClientSession() as http:
        await buy(http, sandbox, {"cbitems": "4"})
        await until(lambda: len(receiver.got) == 1)
        receipt = receiver.got[0]["receipt"]
        params = {"type": "cncl", "reason": "ticket.type.cancel.7"}
        async with http.post(f"{sandbox.url}/rest/1.3/tickets/{receipt}", params=params,
                             headers={"Authorization": "KEY"}) as r:  # fmt: skip
            assert r.status == 200
        await until(lambda: len(receiver.got) == 2)
        assert receiver.got[1]["transactionType"] == "RFND"


async def test_our_client_speaks_the_documented_api() -> None:
    """billing.clickbank_api against the local ClickBank, which checks the documented rules:
    refund (reason 'Other', FULL), cancel, change of product; and a wrong key is refused."""
    from billing.clickbank_api import ClickbankApi, ClickbankApiError, ticket_id

    receiver = Receiver()
    async with stack(receiver) as (sandbox, _), aiohttp.ClientSession() as http:
        await buy(http, sandbox, {"cbitems": "1"})  # a subscription
        await buy(http, sandbox, {"cbitems": "4"})  # a pack
        await until(lambda: len(receiver.got) == 2)
        plan, pack = (g["receipt"] for g in receiver.got)
        api = ClickbankApi(sandbox.url, "KEY")
        assert await api.change_product(plan, old_item="1", new_item="2") == {}
        assert ticket_id(await api.cancel(plan, comment="from Billing")) == "1"
        assert ticket_id(await api.refund(pack, comment="from Billing")) == "2"
        with pytest.raises(ClickbankApiError, match="403"):
            await ClickbankApi(sandbox.url, "WRONG").refund(plan, comment="x")
        await until(lambda: len(receiver.got) == 5)
        kinds = [g["transactionType"] for g in receiver.got[2:]]
        assert kinds == ["SUBSCRIPTION-CHG", "CANCEL-REBILL", "RFND"]
