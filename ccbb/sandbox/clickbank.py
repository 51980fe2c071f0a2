"""A local ClickBank, for the demo and the tests: a real server our real code talks to.

- ``GET /{vendor}/?cbitems=ITEM&…`` — the order form (a "Pay" button). Paying makes an order
  (an 8-character receipt) and sends its SALE notification to our INS endpoint, encrypted as
  ClickBank encrypts it; every pay-link parameter that is not ClickBank's comes back in
  ``vendorVariables``, ``vtid`` in ``trackingCodes``.
- With ``cbfid``, the buyer goes on to the flow's first upsell page with a ``cbf`` session;
  ``GET /{vendor}/?cbitems=…&cbur=a|d&cbf=…`` answers an offer (a recurring offer is refused
  without ``cbrblaccpt=true``), an accepted one is charged at once (an UPSELL line, the
  ``upsell`` block filled); then the next page of the flow, or
- ``GET /confirmation/{session}`` — the order confirmation, with a thank-you link for each item
  bought (``cbreceipt``, ``time``, ``item``, ``cbpop``, ``cname``, ``cemail``).
- ``POST /rest/1.3/tickets/{receipt}?type=rfnd|cncl&reason=…[&refundType=FULL]``
  (``Authorization: <api key>``, else 403) — ClickBank's tickets API, with its rules (see
  ``billing.clickbank_api`` for the pages): ``reason`` of the type's family, ``refundType``
  for a refund, query parameters only. A refund sends RFND (and CANCEL-REBILL for a
  subscription), a cancel of a subscription sends CANCEL-REBILL, a cancel of a one-off product
  refunds it. ``POST /rest/1.3/orders2/{receipt}/changeProduct?oldSku=&newSku=`` sends
  SUBSCRIPTION-CHG and answers 204.
- ``GET /_sandbox/`` — the orders, each subscription with a "Send a rebill now" button
  (``POST /_sandbox/bill/{receipt}`` sends a BILL); ``GET /_sandbox/deliveries`` lists every
  notification attempt.

Delivery is ClickBank's: a notification not answered 2xx within ``answer_timeout`` seconds is
tried again after each of ``retry_delays`` (ClickBank waits hours; here seconds), then dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import json
import logging
import os
import secrets
import string
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ccbb.sandbox.serving import serve_until_interrupted

log = logging.getLogger(__name__)

CLICKBANK_PARAMS = frozenset(
    {"cbitems", "cbskin", "cbfid", "cbur", "cbf", "cbrblaccpt", "vtid", "vendor", "item"}
)
RECEIPT_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Product:
    item_no: str
    title: str
    price: Decimal
    recurring: bool = False


@dataclass(frozen=True)
class FlowStep:
    item_no: str
    page_url: str
    on_accept: str | None
    on_decline: str | None


@dataclass(frozen=True)
class SandboxFlow:
    cbfid: str
    first: str
    steps: dict[str, FlowStep]


@dataclass
class SandboxConfig:
    vendor: str
    secret: str
    api_key: str
    ins_url: str  # our INS endpoint
    thank_you_url: str  # our thank-you page
    products: dict[str, Product]
    flows: dict[str, SandboxFlow] = field(default_factory=dict)
    retry_delays: tuple[float, ...] = (2.0, 5.0, 10.0)
    answer_timeout: float = 3.0


@dataclass
class Order:
    receipt: str
    item: Product
    time: datetime
    email: str
    name: str
    variables: dict[str, str]
    tracking: list[str]
    line_type: str = "ORIGINAL"
    upsell: dict[str, Any] | None = None
    rebills: int = 0
    refunded: bool = False
    cancelled: bool = False


@dataclass
class UpsellSession:
    cbf: str
    flow: SandboxFlow
    original: Order
    step: str | None
    orders: list[Order]
    path: list[str] = field(default_factory=list)


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.orders: dict[str, Order] = {}
        self.sessions: dict[str, UpsellSession] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.http: aiohttp.ClientSession | None = None
        self.tickets = 0


# ---- notifications, as ClickBank writes and encrypts them ----------------------------


def encrypt(payload: dict[str, Any], secret: str) -> bytes:
    key = hashlib.sha1(secret.encode(), usedforsecurity=False).hexdigest()[:32].encode()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(payload).encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = enc.update(plain) + enc.finalize()
    body = {"notification": base64.b64encode(data).decode(), "iv": base64.b64encode(iv).decode()}
    return json.dumps(body).encode()


def _when(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def notification(
    config: SandboxConfig,
    order: Order,
    kind: str,
    *,
    receipt: str | None = None,
    at: datetime | None = None,
    item: Product | None = None,
) -> dict[str, Any]:
    product = item or order.item
    now = at or datetime.now(UTC)
    amount = product.price if kind not in ("RFND", "CGBK", "INSF") else -product.price
    if kind in ("CANCEL-REBILL", "UNCANCEL-REBILL", "SUBSCRIPTION-CHG"):
        amount = Decimal("0")
    line: dict[str, Any] = {
        "itemNo": product.item_no,
        "productTitle": product.title,
        "shippable": False,
        "recurring": product.recurring,
        "accountAmount": float(amount),
        "quantity": 1,
        "lineItemType": order.line_type,
    }
    if product.recurring:
        line["paymentPlan"] = {
            "rebillStatus": "CANCELLED" if order.cancelled else "ACTIVE",
            "rebillFrequency": "MONTHLY",
            "rebillAmount": float(product.price),
            "paymentsProcessed": order.rebills + 1,
            "paymentsRemaining": 998 - order.rebills,
            "nextPaymentDate": _when(now + timedelta(days=30)),
        }
    return {
        "transactionTime": _when(now),
        "receipt": receipt or order.receipt,
        "transactionType": kind,
        "vendor": config.vendor,
        "affiliate": None,
        "role": "VENDOR",
        "totalAccountAmount": float(amount),
        "paymentMethod": "VISA",
        "totalOrderAmount": float(amount),
        "currency": "USD",
        "orderLanguage": "EN",
        "trackingCodes": order.tracking,
        "lineItems": [line],
        "customer": {"billing": {"fullName": order.name, "email": order.email}},
        "upsell": order.upsell,
        "version": 8.0,
        "attemptCount": 1,
        "vendorVariables": order.variables,
    }


async def _deliver(state: SandboxState, payload: dict[str, Any]) -> None:
    config = state.config
    assert state.http is not None
    delays = (*config.retry_delays, None)
    for attempt, delay in enumerate(delays, 1):
        payload["attemptCount"] = attempt
        started = time.monotonic()
        record: dict[str, Any] = {
            "type": payload["transactionType"],
            "receipt": payload["receipt"],
            "attempt": attempt,
        }
        try:
            async with state.http.post(
                config.ins_url,
                data=encrypt(payload, config.secret),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=config.answer_timeout),
            ) as response:
                record["status"] = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["status"] = None
            record["error"] = type(exc).__name__
        record["seconds"] = round(time.monotonic() - started, 3)
        state.deliveries.append(record)
        status = record.get("status")
        if status is not None and 200 <= status < 300:
            return
        if delay is None:
            log.warning("INS %s %s dropped after %d attempts", *list(record.values())[:2], attempt)
            return
        await asyncio.sleep(delay)


def send(state: SandboxState, payload: dict[str, Any]) -> None:
    """Deliver in the background (the buyer's page does not wait for our server)."""
    task = asyncio.get_running_loop().create_task(_deliver(state, payload))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


# ---- pages ---------------------------------------------------------------------------

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title}</title><style>body{{font:16px system-ui;max-width:40rem;margin:2rem auto}}
.box{{border:1px solid #ccc;border-radius:8px;padding:1rem 1.5rem}} button{{font-size:1rem;
padding:.5rem 1.5rem}} label{{display:block;margin:.5rem 0}}</style></head>
<body><p><b>ClickBank sandbox</b> — nothing here is real money.</p>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = PAGE.format(title=html.escape(title), body=body)
    return web.Response(text=text, status=status, content_type="text/html")


def _new_receipt(state: SandboxState) -> str:
    while True:
        receipt = "".join(secrets.choice(RECEIPT_CHARS) for _ in range(8))
        if receipt not in state.orders:
            return receipt


def _variables(query: Any) -> dict[str, str]:
    return {k: v for k, v in query.items() if k not in CLICKBANK_PARAMS and not k.startswith("cb")}


async def handle_pay_link(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    if request.match_info["vendor"].lower() != state.config.vendor.lower():
        return _page("Unknown vendor", "<p>No such vendor.</p>", 404)
    query = request.query
    if "cbur" in query:
        return await _answer_upsell(request, state)
    product = state.config.products.get(query.get("cbitems", ""))
    if product is None:
        return _page("Unknown product", "<p>This pay link names no product.</p>", 404)
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in query.items()
    )
    every = " every month" if product.recurring else ""
    body = (
        f'<div class="box"><h1>Order form</h1><p>{html.escape(product.title)}: '
        f"<b>${product.price}</b>{every}</p>"
        f'<form method="post" action="/{state.config.vendor}/pay">{hidden}'
        '<label>Full name <input name="name" value="Ada Buyer" required></label>'
        '<label>E-mail <input name="email" type="email" required></label>'
        '<label>Card number <input name="card" value="4111 1111 1111 1111"></label>'
        '<button type="submit">Pay</button></form></div>'
    )
    return _page("ClickBank order form", body)


async def handle_pay(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    form = await request.post()
    fields = {k: str(v) for k, v in form.items()}
    product = state.config.products.get(fields.get("cbitems", ""))
    if product is None:
        return _page("Unknown product", "<p>This order names no product.</p>", 404)
    email = fields.get("email", "").strip()
    if "@" not in email:
        return _page("Order form", "<p>Give an e-mail address.</p>", 400)
    order = Order(
        receipt=_new_receipt(state),
        item=product,
        time=datetime.now(UTC),
        email=email,
        name=fields.get("name", "").strip() or "Buyer",
        variables={
            k: v for k, v in _variables(fields).items() if k not in ("name", "email", "card")
        },
        tracking=[fields["vtid"]] if fields.get("vtid") else [],
    )
    state.orders[order.receipt] = order
    send(state, notification(state.config, order, "SALE", at=order.time))
    flow = state.config.flows.get(fields.get("cbfid", ""))
    cbf = secrets.token_hex(8).upper()
    session = UpsellSession(cbf, flow or SandboxFlow("", "", {}), order, None, [order])
    state.sessions[cbf] = session
    if flow is None:
        raise web.HTTPSeeOther(f"/confirmation/{cbf}")
    session.step = flow.first
    raise web.HTTPSeeOther(_step_url(flow, flow.first, cbf))


def _step_url(flow: SandboxFlow, step: str, cbf: str) -> str:
    page = flow.steps[step].page_url
    return page + ("&" if "?" in page else "?") + urlencode({"cbf": cbf})


async def _answer_upsell(request: web.Request, state: SandboxState) -> web.Response:
    query = request.query
    session = state.sessions.get(query.get("cbf", ""))
    if session is None or session.step is None:
        # ClickBank without its session (no cbf, no cookie): the plain confirmation
        return _page("Order complete", "<p>Your upsell session has ended.</p>", 400)
    step = session.flow.steps[session.step]
    if query.get("cbitems") != step.item_no:
        return _page("Wrong product", "<p>This link is not for the offer shown.</p>", 400)
    accepted = query.get("cbur") == "a"
    if query.get("cbur") not in ("a", "d"):
        return _page("Bad link", "<p>cbur must be a or d.</p>", 400)
    product = state.config.products[step.item_no]
    if accepted:
        if product.recurring and query.get("cbrblaccpt") != "true":
            return _page(
                "Consent needed",
                "<p>This is a subscription: the page must collect the buyer's consent "
                "(cbrblaccpt=true).</p>",
                400,
            )
        original = session.original
        order = Order(
            receipt=_new_receipt(state),
            item=product,
            time=datetime.now(UTC),
            email=original.email,
            name=original.name,
            variables=original.variables,
            tracking=original.tracking,
            line_type="UPSELL",
            upsell={
                "upsellOriginalReceipt": original.receipt,
                "upsellFlowId": int(session.flow.cbfid) if session.flow.cbfid.isdigit() else 0,
                "upsellSession": session.cbf,
                "upsellPath": "/".join([*session.path, session.step]),
            },
        )
        state.orders[order.receipt] = order
        session.orders.append(order)
        send(state, notification(state.config, order, "SALE", at=order.time))
    session.path.append(f"{session.step}:{'a' if accepted else 'd'}")
    session.step = step.on_accept if accepted else step.on_decline
    if session.step is None:
        raise web.HTTPSeeOther(f"/confirmation/{session.cbf}")
    raise web.HTTPSeeOther(_step_url(session.flow, session.step, session.cbf))


def thank_you_link(config: SandboxConfig, order: Order) -> str:
    when = str(int(order.time.timestamp()))
    pop = f"{config.secret}|{order.receipt}|{when}|{order.item.item_no}"
    cbpop = hashlib.sha1(pop.encode(), usedforsecurity=False).hexdigest().upper()[:8]
    params = {
        "item": order.item.item_no,
        "cbreceipt": order.receipt,
        "time": when,
        "cbpop": cbpop,
        "cname": order.name,
        "cemail": order.email,
    }
    return f"{config.thank_you_url}?{urlencode(params)}"


async def handle_confirmation(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    session = state.sessions.get(request.match_info["cbf"])
    if session is None:
        return _page("No such order", "<p>Unknown order.</p>", 404)
    rows = "".join(
        f"<li>{html.escape(o.item.title)} — ${o.item.price} — receipt {o.receipt} — "
        f'<a href="{html.escape(thank_you_link(state.config, o))}">Access your purchase</a></li>'
        for o in session.orders
    )
    return _page("Order confirmation", f"<h1>Thank you for your order</h1><ul>{rows}</ul>")


# ---- the API (tickets, product change) and the controls -------------------------------


def _api_allowed(request: web.Request, state: SandboxState) -> bool:
    return secrets.compare_digest(request.headers.get("Authorization", ""), state.config.api_key)


def _forbidden() -> web.Response:
    # ClickBank: "will return a 403 [Forbidden] status code if accessed without the right
    # credentials" (API specifications)
    return web.json_response({"error": "invalid API key"}, status=403)


REFUND_TYPES = ("FULL", "PARTIAL_PERCENT", "PARTIAL_AMOUNT")
# the reason codes the tickets API documents for each type
REASONS = {
    "rfnd": (*(f"ticket.type.refund.{i}" for i in range(1, 9)), "ticket.type.refund.returned",
             "ticket.type.refund.not.mobile"),
    "cncl": (*(f"ticket.type.cancel.{i}" for i in range(1, 8)), "ticket.type.cancel.not.mobile"),
    "tech": (*(f"ticket.type.tech_support.{i}" for i in (1, 2, 3, 4, 9, 10)),),
}  # fmt: skip


def _ticket_problem(query: Any) -> str | None:
    """What a ticket request breaks of ClickBank's rules (the tickets API page), if anything.
    Only the query string counts: ClickBank ignores form parameters."""
    kind = query.get("type", "")
    if kind not in ("rfnd", "cncl", "tech"):
        return "type must be 'rfnd', 'cncl' or 'tech'"
    if query.get("reason", "") not in REASONS[kind]:
        return f"reason is required and must be one of {', '.join(REASONS[kind])}"
    if kind == "rfnd":
        refund_type = query.get("refundType", "")
        if refund_type not in REFUND_TYPES:
            return "refundType is required for 'rfnd': FULL, PARTIAL_PERCENT or PARTIAL_AMOUNT"
        if refund_type != "FULL":
            return "this vendor is not enabled for partial refunds"
    return None


def _ticket(state: SandboxState, order: Order, kind: str) -> web.Response:
    state.tickets += 1
    return web.json_response({"ticketData": {
        "ticketid": state.tickets, "receipt": order.receipt, "type": kind.upper(),
        "status": "OPEN",
    }})  # fmt: skip


async def handle_ticket(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    if not _api_allowed(request, state):
        return _forbidden()
    order = state.orders.get(request.match_info["receipt"])
    if order is None:
        return web.json_response({"error": "receipt not found"}, status=404)
    problem = _ticket_problem(request.query)
    if problem is not None:
        status = 403 if "partial" in problem else 400
        return web.json_response({"error": problem}, status=status)
    kind = request.query["type"]
    if kind == "tech":
        return _ticket(state, order, kind)
    # a one-off product: 'cncl' refunds it too; a subscription: 'rfnd' refunds and cancels
    refund = kind == "rfnd" or not order.item.recurring
    if refund:
        if order.refunded:
            return web.json_response({"error": "already refunded"}, status=400)
        order.refunded = True
        send(state, notification(state.config, order, "RFND"))
        if order.item.recurring and not order.cancelled:
            order.cancelled = True
            send(state, notification(state.config, order, "CANCEL-REBILL"))
    else:
        if order.cancelled:
            return web.json_response({"error": "no active subscription"}, status=400)
        order.cancelled = True
        send(state, notification(state.config, order, "CANCEL-REBILL"))
    return _ticket(state, order, kind)


async def handle_change_product(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    if not _api_allowed(request, state):
        return _forbidden()
    old_sku, new_sku = request.query.get("oldSku"), request.query.get("newSku")
    if not old_sku or not new_sku:
        return web.json_response({"error": "oldSku and newSku are required"}, status=400)
    order = state.orders.get(request.match_info["receipt"])
    new = state.config.products.get(new_sku)
    if order is None or new is None or not new.recurring:
        return web.json_response({"error": "unknown receipt or product"}, status=404)
    if old_sku != order.item.item_no or order.cancelled:
        return web.json_response({"error": "oldSku is not this subscription's"}, status=400)
    order.item = new
    send(state, notification(state.config, order, "SUBSCRIPTION-CHG", item=new))
    return web.Response(status=204)  # ClickBank: "Return Type: No Content"


async def handle_bill(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    order = state.orders.get(request.match_info["receipt"])
    if order is None or not order.item.recurring or order.cancelled:
        return web.json_response({"error": "no active subscription"}, status=400)
    order.rebills += 1
    receipt = f"{order.receipt}-B{order.rebills + 1:03d}"
    send(state, notification(state.config, order, "BILL", receipt=receipt))
    if "json" in request.headers.get("Accept", ""):
        return web.json_response({"receipt": receipt})
    raise web.HTTPSeeOther("/_sandbox/")


async def handle_controls(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE_KEY]
    rows = []
    for o in state.orders.values():
        button = ""
        if o.item.recurring and not o.cancelled:
            button = (
                f'<form method="post" action="/_sandbox/bill/{o.receipt}" style="display:inline">'
                '<button type="submit">Send a rebill now</button></form>'
            )
        status = "refunded" if o.refunded else "cancelled" if o.cancelled else "active"
        rows.append(
            f"<li>{o.receipt} — {html.escape(o.item.title)} — {status}, "
            f"{o.rebills} rebill(s) {button}</li>"
        )
    return _page("ClickBank sandbox", f"<h1>Orders</h1><ul>{''.join(rows) or 'none yet'}</ul>")


async def handle_deliveries(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].deliveries)


STATE_KEY = web.AppKey("state", SandboxState)


async def _client(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    state.http = aiohttp.ClientSession()
    try:
        yield
    finally:
        for task in list(state.tasks):
            task.cancel()
        await state.http.close()


def create_app(config: SandboxConfig) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = SandboxState(config)
    app.cleanup_ctx.append(_client)
    app.router.add_get("/_sandbox/", handle_controls)
    app.router.add_get("/_sandbox/deliveries", handle_deliveries)
    app.router.add_post("/_sandbox/bill/{receipt}", handle_bill)
    app.router.add_post("/rest/1.3/tickets/{receipt}", handle_ticket)
    app.router.add_post("/rest/1.3/orders2/{receipt}/changeProduct", handle_change_product)
    app.router.add_get("/confirmation/{cbf}", handle_confirmation)
    app.router.add_get("/{vendor}/", handle_pay_link)
    app.router.add_post("/{vendor}/pay", handle_pay)
    return app


@dataclass
class RunningClickbank:
    url: str
    state: SandboxState

    @property
    def pay_base(self) -> str:
        return f"{self.url}/{{vendor}}/"

    def add_order(self, receipt: str, item_no: str, email: str = "buyer@example.com") -> Order:
        """An order made elsewhere (tests: a sale whose notification they sent themselves)."""
        product = self.state.config.products[item_no]
        order = Order(receipt, product, datetime.now(UTC), email, "Buyer", {}, [])
        self.state.orders[receipt] = order
        return order


@asynccontextmanager
async def running_clickbank(
    config: SandboxConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningClickbank]:
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningClickbank(f"http://{bound_host}:{bound_port}", app[STATE_KEY])
    finally:
        await runner.cleanup()


# ---- configured from our catalogue, and the command ----------------------------------------


def config_from_catalogue(
    *,
    app_url: str,
    vendor: str,
    secret: str,
    api_key: str,
    retry_delays: tuple[float, ...] = (2.0, 5.0, 10.0),
    answer_timeout: float = 3.0,
) -> SandboxConfig:
    """What the vendor would have set up in ClickBank's account: every catalogue item with a
    ClickBank item number as a product, every ``[[flow]]`` as an upsell flow whose pages are
    ours (``{app_url}/clickbank/upsell/{flow}/{step}``)."""
    from billing.catalogue import load_catalogue
    from billing.upsell_flow import parse_flows

    catalogue = load_catalogue()
    products = {
        i.clickbank_item: Product(i.clickbank_item, i.name, i.price, i.recurring)
        for i in catalogue.items
        if i.clickbank_item
    }
    flows: dict[str, SandboxFlow] = {}
    for flow in parse_flows(catalogue.section("flow"), catalogue.get).values():
        steps = {}
        for step, offer in flow.offers.items():
            item = catalogue.get(offer.sku)
            assert item is not None
            steps[step] = FlowStep(
                item_no=item.clickbank_item,
                page_url=f"{app_url.rstrip('/')}/clickbank/upsell/{flow.id}/{step}",
                on_accept=offer.accept,
                on_decline=offer.decline,
            )
        flows[flow.clickbank_flow_id] = SandboxFlow(flow.clickbank_flow_id, flow.first, steps)
    return SandboxConfig(
        vendor=vendor,
        secret=secret,
        api_key=api_key,
        ins_url=f"{app_url.rstrip('/')}/clickbank/ins",
        thank_you_url=f"{app_url.rstrip('/')}/clickbank/thank-you",
        products=products,
        flows=flows,
        retry_delays=retry_delays,
        answer_timeout=answer_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    """``ccbb sandbox-clickbank``: a local ClickBank for the app at ``--app-url``, configured
    from the same catalogue and the same CCBB_CLICKBANK_* settings as the app."""
    from billing.catalogue import CatalogueError
    from billing.upsell_flow import FlowError
    from ccbb.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="ccbb sandbox-clickbank",
        description="Serve a local ClickBank: order form, INS, upsell flows, tickets API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--app-url", default=settings.public_url,
                        help="where our app listens (INS, upsell and thank-you pages)")  # fmt: skip
    parser.add_argument("--retry", default="2,5,10",
                        help="seconds between INS attempts not answered 2xx in time")  # fmt: skip
    args = parser.parse_args(argv)
    if not settings.clickbank_vendor or not settings.clickbank_secret:
        print("ccbb sandbox-clickbank: set CCBB_CLICKBANK_VENDOR and CCBB_CLICKBANK_SECRET_KEY "
              "(the same values as the app's)", file=sys.stderr)  # fmt: skip
        return 2
    key = settings.clickbank_api_key
    try:
        delays = tuple(float(x) for x in args.retry.split(",") if x.strip())
        config = config_from_catalogue(
            app_url=args.app_url, vendor=settings.clickbank_vendor,
            secret=settings.clickbank_secret, api_key=key.get_secret_value() if key else "",
            retry_delays=delays,
        )  # fmt: skip
    except (CatalogueError, FlowError, ValueError) as exc:
        print(f"ccbb sandbox-clickbank: {exc}", file=sys.stderr)
        return 2
    return serve_until_interrupted(
        "sandbox-clickbank",
        running_clickbank(config, args.host, args.port),
        lambda sandbox: (
            f"ClickBank sandbox at {sandbox.url} (pay links {sandbox.url}/{config.vendor}/, "
            f"controls {sandbox.url}/_sandbox/), notifications to {config.ins_url}"
        ),
        args.host,
        args.port,
    )


if __name__ == "__main__":
    raise SystemExit(main())
