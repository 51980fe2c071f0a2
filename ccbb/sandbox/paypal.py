"""A local PayPal Payouts API, for the demo and the tests: a real server our real client talks to.

What it speaks (PayPal's REST API, v1):

- ``POST /v1/oauth2/token`` — the OAuth2 client-credentials grant: HTTP Basic
  ``client_id:secret``, form body ``grant_type=client_credentials``; answers ``access_token``,
  ``token_type``, ``expires_in``. Wrong credentials: 401 ``invalid_client``.
- ``POST /v1/payments/payouts`` (``Authorization: Bearer …``) — create a batch payout from
  ``sender_batch_header`` and ``items`` (``recipient_type``, ``amount{value, currency}``,
  ``receiver``, ``sender_item_id``, ``note``); answers 201 with the ``batch_header``
  (``payout_batch_id``, ``batch_status: PENDING``). A ``sender_batch_id`` used before is refused as
  PayPal refuses it (within 30 days there; here for the server's life): 400
  ``USER_BUSINESS_ERROR``, the detail naming ``SENDER_BATCH_ID`` with a link to the original
  batch. Invalid bodies: 400 ``VALIDATION_ERROR`` with the fields in ``details``.
- ``GET /v1/payments/payouts/{payout_batch_id}`` — the batch and every item with its
  ``transaction_status`` (SUCCESS, FAILED, UNCLAIMED, PENDING, BLOCKED, RETURNED…) and, for a
  failed one, ``errors{name, message}``.
- ``POST /v1/payments/payouts-item/{payout_item_id}/cancel`` — cancel an UNCLAIMED item (the money
  comes back: RETURNED).

What the tests and the demo use to break and watch it (``/_sandbox/``, or :class:`Faults` in code):
the final status of every item paid to a given receiver; the next create calls failing with a
500 before anything is made, or after the batch is made (the answer lost); create calls and
token requests held for a while (a client timeout, or a process killed at that moment); batches
shown PENDING for their first reads. ``GET /_sandbox/batches`` is the record of every batch
received; ``GET /_sandbox/`` shows them as a page.

The client secret is never logged, recorded nor shown.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import html
import json
import logging
import re
import secrets
import string
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from ccbb.sandbox.serving import serve_until_interrupted

log = logging.getLogger(__name__)

TOKEN_PATH = "/v1/oauth2/token"  # noqa: S105 - a path, not a password
PAYOUTS_PATH = "/v1/payments/payouts"
TOKEN_LIFETIME = 32400
MAX_ITEMS = 15000
SCOPE = "https://uri.paypal.com/services/payments/payouts"
ID_CHARS = string.ascii_uppercase + string.digits
AMOUNT_RE = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
INFO = "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors"

# the item statuses a receiver's payouts can be given, and the error PayPal reports with them
ITEM_ERRORS: dict[str, tuple[str, str]] = {
    "FAILED": ("RECEIVER_ACCOUNT_LOCKED", "The receiver's account is locked or inactive."),
    "UNCLAIMED": (
        "RECEIVER_UNREGISTERED",
        "The recipient for this payout does not have an account. A link to sign up for an "
        "account was sent to the recipient.",
    ),
    "BLOCKED": ("RISK_DECLINE", "The payout was blocked by PayPal's risk checks."),
    "RETURNED": ("RECEIVER_UNREGISTERED", "The payout was not claimed and came back."),
    "PENDING": ("", ""),
    "SUCCESS": ("", ""),
}


@dataclass
class Faults:
    """What goes wrong, set by the tests or ``POST /_sandbox/faults``."""

    receivers: dict[str, str] = field(default_factory=dict)  # e-mail → final item status
    fail_posts: int = 0  # the next create calls answer 500 before making anything
    lose_answers: int = 0  # the next create calls make the batch, then answer 500
    hold_posts: float = 0.0  # seconds a create call waits, batch made, before answering
    hold_tokens: float = 0.0  # seconds a token request waits before answering
    # (a held call goes on as soon as its hold is set back to 0)
    pending_reads: int = 0  # reads of a new batch that still show every item PENDING


@dataclass
class Item:
    payout_item_id: str
    receiver: str
    value: str
    currency: str
    sender_item_id: str
    note: str
    status: str  # the final status, once the batch is processed
    transaction_id: str


@dataclass
class Batch:
    payout_batch_id: str
    sender_batch_header: dict[str, Any]
    items: list[Item]
    time_created: str
    reads: int = 0

    @property
    def sender_batch_id(self) -> str:
        return str(self.sender_batch_header.get("sender_batch_id", ""))


class PaypalState:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.tokens: set[str] = set()
        self.batches: dict[str, Batch] = {}
        self.by_sender_id: dict[str, str] = {}
        self.faults = Faults()
        self.create_calls = 0  # every POST /v1/payments/payouts, refused ones included
        self.token_calls = 0
        self.held = 0  # create calls or token requests now being held (tests wait for it)

    def credentials_match(self, client_id: str, secret: str) -> bool:
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(
            secret, self._secret
        )

    def reset(self) -> None:
        self.tokens.clear()
        self.batches.clear()
        self.by_sender_id.clear()
        self.faults = Faults()
        self.create_calls = self.token_calls = 0

    def record(self) -> list[dict[str, Any]]:
        """Every batch received, in order, with its items and their statuses."""
        return [
            {
                "payout_batch_id": b.payout_batch_id,
                "sender_batch_id": b.sender_batch_id,
                "time_created": b.time_created,
                "items": [asdict(i) for i in b.items],
            }
            for b in self.batches.values()
        ]

    def item(self, payout_item_id: str) -> tuple[Batch, Item] | None:
        for batch in self.batches.values():
            for item in batch.items:
                if item.payout_item_id == payout_item_id:
                    return batch, item
        return None


STATE_KEY = web.AppKey("paypal_state", PaypalState)


def _new_id(n: int = 13) -> str:
    return "".join(secrets.choice(ID_CHARS) for _ in range(n))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, name: str, message: str, **extra: Any) -> web.Response:
    body = {"name": name, "message": message, "debug_id": _new_id(13).lower(),
            "information_link": INFO, **extra}  # fmt: skip
    return web.json_response(body, status=status)


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _batch_link(request: web.Request, payout_batch_id: str) -> dict[str, str]:
    return {"href": f"{_base(request)}{PAYOUTS_PATH}/{payout_batch_id}", "rel": "self",
            "method": "GET", "encType": "application/json"}  # fmt: skip


async def _hold(state: PaypalState, which: str) -> None:
    """Wait as long as the fault says, or until it is cleared (a test lets the call go)."""
    seconds = float(getattr(state.faults, which))
    if seconds <= 0:
        return
    state.held += 1
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        # polled: the faults are set from other threads (tests) as well as from requests
        while getattr(state.faults, which) > 0 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    finally:
        state.held -= 1


# ---- OAuth2 ------------------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.token_calls += 1
    await _hold(state, "hold_tokens")
    auth = request.headers.get("Authorization", "")
    client_id = secret = ""
    if auth.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = ""
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        return web.json_response(
            {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"},
            status=400,
        )
    if not state.credentials_match(client_id, secret):
        log.info("sandbox PayPal: token refused for client %r", client_id[:8])
        return web.json_response(
            {"error": "invalid_client", "error_description": "Client Authentication failed"},
            status=401,
        )
    access = "A21AA" + secrets.token_urlsafe(32)
    state.tokens.add(access)
    return web.json_response({
        "scope": SCOPE, "access_token": access, "token_type": "Bearer",
        "app_id": "APP-SANDBOX", "expires_in": TOKEN_LIFETIME, "nonce": _new_id(20),
    })  # fmt: skip


def _authorised(request: web.Request) -> bool:
    auth = request.headers.get("Authorization", "")
    return auth.startswith("Bearer ") and auth[7:] in request.app[STATE_KEY].tokens


def _unauthorised() -> web.Response:
    return _error(401, "AUTHENTICATION_FAILURE", "Authentication failed due to invalid "
                  "authentication credentials or a missing Authorization header.")  # fmt: skip


# ---- payouts -----------------------------------------------------------------------------


def _problems(body: Any) -> tuple[list[dict[str, str]], dict[str, Any], list[dict[str, Any]]]:
    details: list[dict[str, str]] = []

    def bad(where: str, issue: str) -> None:
        details.append({"field": where, "location": "body", "issue": issue})

    if not isinstance(body, dict):
        bad("body", "MALFORMED_REQUEST_JSON")
        return details, {}, []
    header = body.get("sender_batch_header")
    items = body.get("items")
    if not isinstance(header, dict):
        bad("sender_batch_header", "Required field is missing")
        header = {}
    elif not isinstance(header.get("sender_batch_id"), str) or not header["sender_batch_id"]:
        bad("sender_batch_header.sender_batch_id", "Required field is missing")
    if not isinstance(items, list) or not items:
        bad("items", "Required field is missing")
        return details, header, []
    if len(items) > MAX_ITEMS:
        bad("items", f"Items count exceeds {MAX_ITEMS}")
    for n, it in enumerate(items):
        if not isinstance(it, dict):
            bad(f"items[{n}]", "Invalid item")
            continue
        kind = it.get("recipient_type") or header.get("recipient_type")
        if kind != "EMAIL":
            bad(f"items[{n}].recipient_type", "Only EMAIL receivers are known to this sandbox")
        receiver = it.get("receiver")
        if not isinstance(receiver, str) or "@" not in receiver:
            bad(f"items[{n}].receiver", "Receiver is invalid or does not match with type")
        amount = it.get("amount")
        value = amount.get("value") if isinstance(amount, dict) else None
        if not isinstance(value, str) or not AMOUNT_RE.match(value):
            bad(f"items[{n}].amount.value", "Amount should be a string with 2 decimals at most")
        else:
            try:
                if Decimal(value) <= 0:
                    bad(f"items[{n}].amount.value", "Amount should be greater than zero")
            except InvalidOperation:
                bad(f"items[{n}].amount.value", "Invalid amount")
        if not isinstance(amount, dict) or amount.get("currency") != "USD":
            bad(f"items[{n}].amount.currency", "Currency is not supported by this sandbox")
    return details, header, items


async def create_payout(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.create_calls += 1
    if not _authorised(request):
        return _unauthorised()
    faults = state.faults
    if faults.fail_posts > 0:
        faults.fail_posts -= 1
        return _error(500, "INTERNAL_ERROR", "An internal service error has occurred.")
    try:
        body = json.loads(await request.text())
    except ValueError:
        body = None
    details, header, items = _problems(body)
    if details:
        return _error(400, "VALIDATION_ERROR", "Invalid request - see details", details=details)
    sender_batch_id = str(header["sender_batch_id"])
    original = state.by_sender_id.get(sender_batch_id)
    if original is not None:
        return _error(400, "USER_BUSINESS_ERROR", "User business error.", details=[{
            "field": "SENDER_BATCH_ID", "location": "body",
            "issue": "Batch with given sender_batch_id already exists",
            "link": [_batch_link(request, original)],
        }], links=[_batch_link(request, original)])  # fmt: skip
    batch = Batch(
        payout_batch_id=_new_id(),
        sender_batch_header=dict(header),
        items=[
            Item(
                payout_item_id=_new_id(),
                receiver=str(it["receiver"]),
                value=str(it["amount"]["value"]),
                currency=str(it["amount"]["currency"]),
                sender_item_id=str(it.get("sender_item_id", "")),
                note=str(it.get("note", "")),
                status=faults.receivers.get(str(it["receiver"]).lower(), "SUCCESS"),
                transaction_id=_new_id(17),
            )
            for it in items
        ],
        time_created=_now(),
    )
    state.batches[batch.payout_batch_id] = batch
    state.by_sender_id[sender_batch_id] = batch.payout_batch_id
    log.info("sandbox PayPal: batch %s (%s), %d item(s)", batch.payout_batch_id,
             sender_batch_id, len(batch.items))  # fmt: skip
    await _hold(state, "hold_posts")
    if faults.lose_answers > 0:
        faults.lose_answers -= 1
        return _error(500, "INTERNAL_ERROR", "An internal service error has occurred.")
    answer = {
        "batch_header": {
            "payout_batch_id": batch.payout_batch_id,
            "batch_status": "PENDING",
            "sender_batch_header": batch.sender_batch_header,
        },
        "links": [_batch_link(request, batch.payout_batch_id)],
    }
    return web.json_response(answer, status=201)


def _item_view(request: web.Request, batch: Batch, item: Item, processed: bool) -> dict[str, Any]:
    status = item.status if processed else "PENDING"
    view: dict[str, Any] = {
        "payout_item_id": item.payout_item_id,
        "transaction_status": status,
        "payout_batch_id": batch.payout_batch_id,
        "payout_item_fee": {"currency": item.currency, "value": "0.00"},
        "payout_item": {
            "recipient_type": "EMAIL",
            "amount": {"currency": item.currency, "value": item.value},
            "note": item.note,
            "receiver": item.receiver,
            "sender_item_id": item.sender_item_id,
            "recipient_wallet": "PAYPAL",
        },
        "links": [
            {
                "href": f"{_base(request)}/v1/payments/payouts-item/{item.payout_item_id}",
                "rel": "item",
                "method": "GET",
            }
        ],
    }
    if processed:
        view["transaction_id"] = item.transaction_id
        view["time_processed"] = batch.time_created
        name, message = ITEM_ERRORS.get(status, ("", ""))
        if name:
            view["errors"] = {"name": name, "message": message, "information_link": INFO}
    return view


async def get_payout(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if not _authorised(request):
        return _unauthorised()
    batch = state.batches.get(request.match_info["batch_id"])
    if batch is None:
        return _error(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")
    batch.reads += 1
    processed = batch.reads > state.faults.pending_reads
    total = sum((Decimal(i.value) for i in batch.items), Decimal("0"))
    header: dict[str, Any] = {
        "payout_batch_id": batch.payout_batch_id,
        "batch_status": "SUCCESS" if processed else "PROCESSING",
        "time_created": batch.time_created,
        "sender_batch_header": batch.sender_batch_header,
        "funding_source": "BALANCE",
        "amount": {"currency": "USD", "value": f"{total:.2f}"},
        "fees": {"currency": "USD", "value": "0.00"},
    }
    if processed:
        header["time_completed"] = batch.time_created
    return web.json_response({
        "batch_header": header,
        "items": [_item_view(request, batch, i, processed) for i in batch.items],
        "links": [_batch_link(request, batch.payout_batch_id)],
    })  # fmt: skip


async def cancel_item(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if not _authorised(request):
        return _unauthorised()
    found = state.item(request.match_info["item_id"])
    if found is None:
        return _error(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")
    batch, item = found
    if item.status != "UNCLAIMED" or batch.reads <= state.faults.pending_reads:
        return _error(400, "ITEM_CANCELLATION_FAILED",
                      "Only an UNCLAIMED payout item can be cancelled.")  # fmt: skip
    item.status = "RETURNED"
    return web.json_response(_item_view(request, batch, item, True))


# ---- the controls ------------------------------------------------------------------------


async def control_batches(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].record())


async def control_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    data = await request.json()
    faults = Faults(**{**asdict(state.faults), **data})
    faults.receivers = {k.lower(): v.upper() for k, v in faults.receivers.items()}
    bad = sorted(set(faults.receivers.values()) - set(ITEM_ERRORS))
    if bad:
        return web.json_response({"error": f"unknown item status {bad}"}, status=400)
    state.faults = faults
    return web.json_response(asdict(faults))


async def control_set_status(request: web.Request) -> web.Response:
    """Change an item's status later (an unclaimed payout returned, a payout reversed)."""
    state = request.app[STATE_KEY]
    found = state.item(request.match_info["item_id"])
    status = str((await request.json()).get("status", "")).upper()
    if found is None or status not in ITEM_ERRORS:
        return web.json_response({"error": "unknown item or status"}, status=400)
    found[1].status = status
    return web.json_response(asdict(found[1]))


async def control_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


async def control_page(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    rows = []
    for b in reversed(list(state.batches.values())):
        for i in b.items:
            shown = i.status if b.reads > state.faults.pending_reads else "PENDING"
            rows.append(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in (
                    b.time_created, b.sender_batch_id, b.payout_batch_id, i.receiver,
                    f"{i.value} {i.currency}", shown,
                )) + "</tr>"
            )  # fmt: skip
    table = (
        "<table border=1 cellpadding=4><tr><th>Received</th><th>sender_batch_id</th>"
        "<th>payout_batch_id</th><th>Receiver</th><th>Amount</th><th>Status</th></tr>"
        + "".join(rows) + "</table>"
        if rows else "<p>No payout received yet.</p>"
    )  # fmt: skip
    page = (
        "<!doctype html><meta charset=utf-8><title>PayPal Payouts sandbox</title>"
        "<h1>PayPal Payouts sandbox</h1><p>Every batch payout received, newest first "
        f"({state.create_calls} create call(s) in all).</p>{table}"
    )
    return web.Response(text=page, content_type="text/html")


def create_app(client_id: str, client_secret: str) -> web.Application:
    app = web.Application()
    app[STATE_KEY] = PaypalState(client_id, client_secret)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(PAYOUTS_PATH, create_payout)
    app.router.add_get(PAYOUTS_PATH + "/{batch_id}", get_payout)
    app.router.add_post("/v1/payments/payouts-item/{item_id}/cancel", cancel_item)
    app.router.add_get("/_sandbox/", control_page)
    app.router.add_get("/_sandbox/batches", control_batches)
    app.router.add_post("/_sandbox/faults", control_faults)
    app.router.add_post("/_sandbox/items/{item_id}/status", control_set_status)
    app.router.add_post("/_sandbox/reset", control_reset)
    return app


@dataclass(frozen=True)
class RunningPaypal:
    url: str
    state: PaypalState


@asynccontextmanager
async def running_paypal(
    client_id: str, client_secret: str, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningPaypal]:
    app = create_app(client_id, client_secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningPaypal(f"http://{bound_host}:{bound_port}", app[STATE_KEY])
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """``ccbb sandbox-paypal``: a local PayPal Payouts API accepting the app's
    CCBB_PAYPAL_CLIENT_ID / CCBB_PAYPAL_CLIENT_SECRET."""
    from ccbb.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="ccbb sandbox-paypal",
        description="Serve a local PayPal Payouts API: token, create batch, batch status.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    secret = settings.paypal_client_secret
    if not settings.paypal_client_id or secret is None:
        print("ccbb sandbox-paypal: set CCBB_PAYPAL_CLIENT_ID and CCBB_PAYPAL_CLIENT_SECRET "
              "(the same values as the app's)", file=sys.stderr)  # fmt: skip
        return 2
    return serve_until_interrupted(
        "sandbox-paypal",
        running_paypal(settings.paypal_client_id, secret.get_secret_value(), args.host, args.port),
        lambda sandbox: (
            f"PayPal Payouts sandbox at {sandbox.url} (batches {sandbox.url}/_sandbox/)"
        ),
        args.host,
        args.port,
    )


if __name__ == "__main__":
    raise SystemExit(main())
