"""The account and plans under ``/api/v1`` (``me``, ``plans``), and the credits API under
``/api/v2/project/{project_id}``, modelled on Xsolla Player Inventory (see
:mod:`billing.inventory` for the items and rules).

- Server methods (``inventory/reward``, ``inventory/revoke``, ``inventory/purchase``): HTTP
  Basic ``CCBB_MERCHANT_ID:CCBB_MERCHANT_API_KEY``, compared in constant time; without those
  settings the routes do not exist (404). A body of at most 50 operations is checked whole,
  then applied in one transaction: all or nothing. Reward and revoke take an
  ``Idempotency-Key`` header, purchase is idempotent on ``external_purchase_id``: a repeat
  answers the first answer and changes nothing.
- Client methods (``user/inventory/items``, ``user/virtual_currency_balance``,
  ``user/inventory/item/consume``): the user's personal API token, as on ``/api/v1``.

Errors: ``{statusCode, errorCode, errorMessage: "[0401-NNNN]: …", transactionId}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, RootModel
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing import messages
from billing.catalogue import Catalogue
from billing.inventory import (
    CURRENCY_DESCRIPTION,
    CURRENCY_NAME,
    CURRENCY_SKU,
    InventoryError,
    Item,
    Method,
    Operation,
    digest,
    parse_item,
    parse_operations,
)
from store import credits as store_credits
from store import mail as store_mail
from store.models import utcnow
from web import openapi
from web.auth import forget_user

V1 = "/api/v1"
V2 = "/api/v2/project/{project_id}"
MAX_BODY = 1_000_000  # bytes
PLAN_PERIOD = timedelta(days=30)  # a plan granted through the API lasts this long
PUBLIC_PATHS = (V1 + "/plans", "/api/v2/")  # the v2 methods authenticate themselves


# ---- models (also the OpenAPI schemas) ------------------------------------------------------


class MeOut(BaseModel):
    id: str = Field(description="your public id (a UUID; the credits API's user.id)")
    email: str
    plan: str | None = Field(description="the SKU of your plan, null without one")
    credits: int = Field(description="scan credits left")
    email_confirmed: bool = Field(
        default=True, description="false until the address is confirmed (no scans before)"
    )


class PlanOut(BaseModel):
    sku: str
    name: str
    kind: str = Field(description="plan | pack")
    price: str = Field(description='a decimal string, e.g. "19.00"')
    currency: str
    credits: int = Field(description="scan credits per month (plan) or once (pack)")
    max_pages: int | None = Field(description="a plan's page budget per scan")
    clickbank_item: str
    recurring: bool


class PlanListOut(RootModel[list[PlanOut]]):
    pass


class UserIn(BaseModel):
    id: str = Field(description="the user's public id")


class ItemIn(BaseModel):
    sku: str = Field(description="scan_credit, a pack (credits_10…) or a plan (plan_pro…)")
    quantity: int = Field(ge=1)


class PurchaseIn(BaseModel):
    amount: str = Field(description='e.g. "3.99"')
    currency: str
    external_purchase_id: str = Field(description="the same id twice grants once")
    external_purchase_date: str = Field(description="ISO 8601")


class OperationIn(BaseModel):
    user: UserIn
    comment: str | None = None
    platform: str | None = None
    items: list[ItemIn]
    purchase: PurchaseIn | None = Field(default=None, description="purchase only: required")


class OperationsIn(RootModel[list[OperationIn]]):
    """At most 50 operations; more are refused whole."""


class ItemOut(BaseModel):
    sku: str
    quantity: int
    balance: int = Field(description="scan credits after it (a plan: 1 held, 0 not)")


class OperationOut(BaseModel):
    user_id: str
    platform: str
    comment: str
    items: list[ItemOut]
    order_id: int | None = Field(default=None, description="purchase: our order id")
    external_purchase_id: str | None = None
    external_purchase_date: str | None = None
    amount: str | None = None
    currency: str | None = None


class OperationsOut(BaseModel):
    count: int
    operations: list[OperationOut]


class InventoryItemOut(BaseModel):
    sku: str
    type: str = Field(description="virtual_currency | virtual_good")
    name: str
    description: str
    quantity: int
    virtual_item_type: str = Field(description="consumable | non_consumable")
    instance_id: None = None


class InventoryOut(BaseModel):
    items: list[InventoryItemOut]


class BalanceItemOut(BaseModel):
    sku: str
    type: str
    name: str
    description: str
    amount: int


class BalanceOut(BaseModel):
    items: list[BalanceItemOut]


class ConsumeIn(BaseModel):
    sku: str
    quantity: int
    instance_id: None = None


class InventoryErrorOut(BaseModel):
    statusCode: int
    errorCode: int
    errorMessage: str = Field(description='"[0401-NNNN]: what went wrong and what to do"')
    transactionId: str


# ---- /api/v1: me, plans ---------------------------------------------------------------------


def _json(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status)


async def me(request: Request) -> Response:
    user = request.scope["user"]
    async with request.app.state.sessions() as session:
        account = await store_credits.get_account(session, user_id=user.id)
        confirmed = await store_mail.is_confirmed(session, user_id=user.id)
    out = MeOut(
        id=user.public_id,
        email=user.email,
        plan=account.live_plan if account else None,
        credits=account.balance if account else 0,
        email_confirmed=confirmed,
    )
    return _json(out.model_dump())


async def plans(request: Request) -> Response:
    catalogue: Catalogue = request.app.state.catalogue
    return _json([item.public() for item in catalogue.items])


# ---- /api/v2: errors, authentication --------------------------------------------------------


def _error(exc: InventoryError, tid: str) -> Response:
    headers = {"WWW-Authenticate": "Basic"} if exc.code == 1020 else None
    return JSONResponse(exc.body(tid), status_code=exc.status, headers=headers)


def _project(request: Request) -> None:
    project = request.path_params["project_id"]
    if project != request.app.state.settings.project_id:
        raise InventoryError(1102, f"No project {project[:64]!r}: check the URL.", status=404)


def _merchant(request: Request) -> None:
    """HTTP Basic merchant_id:api_key, compared in constant time; 404 when not configured."""
    settings = request.app.state.settings
    if not settings.merchant_id or settings.merchant_api_key is None:
        raise HTTPException(404)
    expected = f"{settings.merchant_id}:{settings.merchant_api_key.get_secret_value()}".encode()
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    ok = hmac.compare_digest(given, expected)
    if scheme.lower() != "basic" or not ok:
        raise InventoryError(
            1020,
            "Authorization failed: send 'Authorization: Basic base64(merchant_id:api_key)' with "
            "this server's merchant id and API key.",
        )


def _client(request: Request) -> Any:
    user = request.scope.get("user")
    if user is None:
        raise InventoryError(
            1020,
            "Authorization failed: send the user's personal API token as 'Authorization: "
            "Bearer <token>' (Settings → API tokens).",
        )
    return user


async def _body(request: Request) -> Any:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise InventoryError(1102, f"The body is over {MAX_BODY:,} bytes.", status=413)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InventoryError(1102, f"The body is over {MAX_BODY:,} bytes.", status=413)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InventoryError(1102, "The body is not JSON.") from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200:
        raise InventoryError(1102, "Idempotency-Key must be 1 to 200 characters.")
    return key


# ---- /api/v2: server methods ----------------------------------------------------------------


async def reward(request: Request) -> Response:
    return await _server_method(request, "reward")


async def revoke(request: Request) -> Response:
    return await _server_method(request, "revoke")


async def purchase(request: Request) -> Response:
    return await _server_method(request, "purchase")


async def _server_method(request: Request, method: Method) -> Response:
    tid = uuid.uuid4().hex
    state = request.app.state
    try:
        _merchant(request)
        _project(request)
        body = await _body(request)
        ops = parse_operations(body, state.catalogue, method)
        key = _idempotency_key(request) if method != "purchase" else None
        for attempt in (1, 2):  # a same-key request racing us: the second try answers its result
            async with state.sessions() as session:
                try:
                    answer, users = await _apply(session, method, ops, key, digest(body))
                    await session.commit()
                    break
                except IntegrityError:
                    await session.rollback()
                    if attempt == 2:
                        raise
                except BaseException:
                    await session.rollback()
                    raise
    except InventoryError as exc:
        return _error(exc, tid)
    for user_id in users:
        forget_user(state, user_id)
    return _json(answer)


async def _apply(
    session: Any, method: Method, ops: list[Operation], key: str | None, body_digest: str
) -> tuple[dict[str, Any], set[int]]:
    """Every operation in the session's transaction (the caller commits, or rolls back on an
    error: nothing of the request is applied then)."""
    answer_key = f"{method}:{key}" if key else None
    if answer_key:
        kept = await store_credits.get_answer(session, key=answer_key)
        if kept is not None:
            if kept.body_sha256 != body_digest:
                raise InventoryError(
                    1102,
                    "This Idempotency-Key was used for another request: use a new key for a new "
                    "request (a repeat must send the same body).",
                    status=409,
                )
            return kept.answer, set()
    ids = await store_credits.user_ids_by_public_id(session, public_ids=[o.user_id for o in ops])
    for n, op in enumerate(ops, 1):
        if op.user_id not in ids:
            raise InventoryError(
                5008,
                f"operation {n}: no user {op.user_id[:64]!r}: give the public id shown on the "
                "user's Account page (GET /api/v1/me answers it as id).",
            )
    for user_id in sorted(set(ids.values())):  # always in the same order: no deadlock
        await store_credits.lock_account(session, user_id=user_id)
    out: list[dict[str, Any]] = []
    for n, op in enumerate(ops, 1):
        user_id = ids[op.user_id]
        purchase_key = f"purchase:{op.purchase.external_purchase_id}" if op.purchase else None
        if purchase_key:
            kept = await store_credits.get_answer(session, key=purchase_key)
            if kept is not None:  # this purchase was granted before: its first answer
                out.append(kept.answer)
                continue
        items: list[dict[str, Any]] = []
        first_entry: int | None = None
        for m, item in enumerate(op.items, 1):
            if purchase_key:
                ledger_key = f"{purchase_key}:{m}"
            elif key:
                ledger_key = f"api:{method}:{key}:{n}:{m}"
            else:
                ledger_key = f"api:{method}:{uuid.uuid4().hex}"
            balance, entry_id = await _apply_item(
                session, method, op, n, m, item, user_id, ledger_key
            )
            first_entry = first_entry or entry_id
            items.append({"sku": item.sku, "quantity": item.quantity, "balance": balance})
        answer_op: dict[str, Any] = {
            "user_id": op.user_id,
            "platform": op.platform,
            "comment": op.comment,
            "items": items,
        }
        if op.purchase and purchase_key:
            answer_op |= {
                "order_id": first_entry,
                "external_purchase_id": op.purchase.external_purchase_id,
                "external_purchase_date": op.purchase.external_purchase_date,
                "amount": str(op.purchase.amount),
                "currency": op.purchase.currency,
            }
            await store_credits.save_answer(
                session, key=purchase_key, body_sha256=op.digest, answer=answer_op
            )
        out.append(answer_op)
    answer = {"count": len(out), "operations": out}
    if answer_key:
        await store_credits.save_answer(
            session, key=answer_key, body_sha256=body_digest, answer=answer
        )
    return answer, set(ids.values())


async def _apply_item(
    session: Any, method: Method, op: Operation, n: int, m: int, item: Item, user_id: int,
    key: str,
) -> tuple[int, int | None]:  # fmt: skip
    """(the balance the answer shows, the ledger entry's id if one was written)."""
    where = f"operation {n}, item {m}"
    comment = op.comment or {"reward": messages.ADMIN_GRANT, "revoke": messages.ADMIN_REVOKE,
                             "purchase": "Purchase"}[method]  # fmt: skip
    external_id = op.purchase.external_purchase_id if op.purchase else None
    if item.is_plan:
        assert item.product is not None
        account = await store_credits.get_account(session, user_id=user_id)
        if method == "revoke":
            if account is None or account.live_plan != item.sku:
                raise InventoryError(
                    5004, f"{where}: the user does not have the plan {item.sku} (nothing applied)."
                )
            await store_credits.set_plan(
                session, user_id=user_id, sku=item.sku, status="ended", period_end=utcnow(),
                renews=False, commit=False,
            )  # fmt: skip
            return 0, None
        await store_credits.set_plan(
            session, user_id=user_id, sku=item.sku, status="active",
            period_end=utcnow() + PLAN_PERIOD, renews=False, commit=False,
        )  # fmt: skip
        entry = await store_credits.grant(
            session, user_id=user_id, amount=item.product.credits, kind="plan", source="api",
            comment=comment, external_id=external_id, idempotency_key=key, commit=False,
        )  # fmt: skip
        return 1, entry.id
    if method == "revoke":
        try:
            entry = await store_credits.revoke(
                session, user_id=user_id, amount=item.credits, kind="revoke", source="api",
                comment=comment, idempotency_key=key, commit=False,
            )  # fmt: skip
        except store_credits.InsufficientCredits as exc:
            raise InventoryError(
                5004,
                f"{where}: cannot remove {exc.needed} scan credits from user {op.user_id}: they "
                f"have {exc.balance} (nothing of this request was applied).",
            ) from None
        return entry.balance_after, entry.id
    entry = await store_credits.grant(
        session, user_id=user_id, amount=item.credits,
        kind="purchase" if method == "purchase" else "grant", source="api", comment=comment,
        external_id=external_id, idempotency_key=key, commit=False,
    )  # fmt: skip
    return entry.balance_after, entry.id


# ---- /api/v2: client methods ----------------------------------------------------------------


async def inventory_items(request: Request) -> Response:
    tid = uuid.uuid4().hex
    try:
        _project(request)
        user = _client(request)
    except InventoryError as exc:
        return _error(exc, tid)
    async with request.app.state.sessions() as session:
        account = await store_credits.get_account(session, user_id=user.id)
    items = [
        InventoryItemOut(
            sku=CURRENCY_SKU, type="virtual_currency", name=CURRENCY_NAME,
            description=CURRENCY_DESCRIPTION, quantity=account.balance if account else 0,
            virtual_item_type="consumable",
        )
    ]  # fmt: skip
    plan = (
        request.app.state.catalogue.get(account.live_plan)
        if account and account.live_plan
        else None
    )
    if plan is not None:
        items.append(
            InventoryItemOut(
                sku=plan.sku, type="virtual_good", name=f"{plan.name} plan",
                description=f"{plan.credits} scan credits a month, scans of up to "
                f"{plan.max_pages:,} pages", quantity=1, virtual_item_type="non_consumable",
            )
        )  # fmt: skip
    return _json(InventoryOut(items=items).model_dump())


async def virtual_currency_balance(request: Request) -> Response:
    tid = uuid.uuid4().hex
    try:
        _project(request)
        user = _client(request)
    except InventoryError as exc:
        return _error(exc, tid)
    async with request.app.state.sessions() as session:
        balance = await store_credits.balance(session, user_id=user.id)
    out = BalanceOut(
        items=[BalanceItemOut(sku=CURRENCY_SKU, type="virtual_currency", name=CURRENCY_NAME,
                              description=CURRENCY_DESCRIPTION, amount=balance)]
    )  # fmt: skip
    return _json(out.model_dump())


async def consume(request: Request) -> Response:
    """Spend the user's own credits (``{sku: "scan_credit", quantity, instance_id: null}``);
    204 No Content, as Xsolla answers. An ``Idempotency-Key`` makes a repeat change nothing."""
    tid = uuid.uuid4().hex
    state = request.app.state
    try:
        _project(request)
        user = _client(request)
        body = await _body(request)
        item = parse_item("the item", body, state.catalogue)
        if item.is_plan:
            raise InventoryError(5007, f"{item.sku} is a plan: it cannot be consumed.")
        if item.product is not None:
            raise InventoryError(
                5004,
                f"{item.sku} is not in the inventory: a pack turns into {CURRENCY_SKU} when it "
                f"is granted; consume {CURRENCY_SKU}.",
            )
        key = _idempotency_key(request)
        async with state.sessions() as session:
            try:
                await store_credits.revoke(
                    session, user_id=user.id, amount=item.quantity, kind="consume",
                    source="api", comment=messages.CONSUMED,
                    idempotency_key=f"consume:{user.public_id}:{key or uuid.uuid4().hex}",
                    writes=state.credit_writes,
                )  # fmt: skip
            except store_credits.InsufficientCredits as exc:
                raise InventoryError(
                    5006,
                    f"Not enough scan credits: {exc.balance} left, {exc.needed} to consume.",
                ) from None
    except InventoryError as exc:
        return _error(exc, tid)
    forget_user(state, user.id)
    return Response(status_code=204)


# ---- routes and their OpenAPI description ---------------------------------------------------

_V2_ERRORS = {
    401: "errorCode 1020: wrong merchant key or API token",
    404: "errorCode 5008 (unknown user), 4001 (unknown SKU) or a wrong project id",
    409: "errorCode 1102: an Idempotency-Key reused for another request",
    413: "errorCode 1102: the body is too large",
    422: "errorCode 1102 (bad request data; more than 50 operations), 5002 (bad item data), "
    "5003 (no user id), 5004 (not in the inventory / cannot remove that many), 5006 (not "
    "enough credits), 5007 (a non-consumable item), 5009 (purchase missing)",
    429: "Too many calls: wait the Retry-After seconds",
}


def _v2(method: str, path: str, endpoint: Any, summary: str, **kw: Any) -> openapi.Operation:
    return openapi.Operation(
        method, path, endpoint, summary, prefix=V2, error_model=InventoryErrorOut,
        error_text=_V2_ERRORS, **kw,
    )  # fmt: skip


OPERATIONS = [
    openapi.Operation("GET", "/me", me, "You: public id, e-mail, plan, credits left",
                      response=MeOut),
    openapi.Operation("GET", "/plans", plans, "The plans and credit packs on sale (public)",
                      response=PlanListOut, auth="none"),
    _v2("POST", "/inventory/reward", reward, "Grant credits, packs or plans to users (server)",
        body=OperationsIn, response=OperationsOut, auth="basic", errors=(404, 409, 413, 422),
        headers=("Idempotency-Key",)),
    _v2("POST", "/inventory/revoke", revoke, "Take credits or plans back from users (server)",
        body=OperationsIn, response=OperationsOut, auth="basic", errors=(404, 409, 413, 422),
        headers=("Idempotency-Key",)),
    _v2("POST", "/inventory/purchase", purchase,
        "Grant what users bought elsewhere; idempotent on external_purchase_id (server)",
        body=OperationsIn, response=OperationsOut, auth="basic", errors=(404, 413, 422)),
    _v2("GET", "/user/inventory/items", inventory_items,
        "Your inventory: scan credits and your plan", response=InventoryOut, errors=(404,)),
    _v2("GET", "/user/virtual_currency_balance", virtual_currency_balance,
        "Your scan_credit balance", response=BalanceOut, errors=(404,)),
    _v2("POST", "/user/inventory/item/consume", consume, "Consume your own scan credits",
        body=ConsumeIn, response=BalanceOut, status=204, errors=(404, 413, 422),
        headers=("Idempotency-Key",)),
]  # fmt: skip

routes = [
    Route((op.prefix if op.prefix is not None else V1) + op.path, op.endpoint, methods=[op.method])
    for op in OPERATIONS
]
