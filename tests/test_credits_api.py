"""The credits API (Xsolla Player Inventory's shape) and /api/v1/me, /plans from a real HTTP
client (httpx over a loopback socket) against the app served by uvicorn, on a real SQLite
database and Redis: every method, every error code, batches applied all or nothing, replays."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccbb.settings import Settings
from store import credentials as store_credentials
from store import credits as store_credits
from store.migrate import upgrade
from tests.credits_server import in_db, make_user, serving
from tests.test_store import pg_url  # noqa: F401 (fixture)

PROJECT = "44056"
MERCHANT, API_KEY = "44056", "merchant-api-key-0123456789"
V2 = f"/api/v2/project/{PROJECT}"


def _settings(tmp: Path, redis_url: str, database_url: str = "", **extra: Any) -> Settings:
    settings = Settings(  # type: ignore[call-arg]
        CCBB_DATA_DIR=tmp, DATABASE_URL=database_url or f"sqlite:///{tmp / 'ccbb.sqlite3'}",
        REDIS_URL=redis_url, CCBB_QUEUE=f"ccbb:test:{uuid.uuid4().hex}",
        CCBB_PROJECT_ID=PROJECT, **extra,
    )  # fmt: skip
    upgrade(settings.sqlalchemy_url)
    return settings


class Api:
    def __init__(self, base: str, settings: Settings) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.settings = settings

    def user(self) -> tuple[int, str, dict[str, str]]:
        """A new user: (database id, public id, bearer header)."""
        user_id, token = make_user(self.settings, f"{uuid.uuid4().hex[:10]}@example.com")
        bearer = {"Authorization": f"Bearer {token}"}
        me = self.http.get("/api/v1/me", headers=bearer)
        assert me.status_code == 200, me.text
        return user_id, me.json()["id"], bearer

    def server(
        self, method: str, body: Any, key: str | None = None, auth: str | None = None
    ) -> httpx.Response:
        basic = base64.b64encode(f"{MERCHANT}:{API_KEY}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}" if auth is None else auth}
        if not headers["Authorization"]:
            del headers["Authorization"]  # no credentials at all
        if key:
            headers["Idempotency-Key"] = key
        return self.http.post(f"{V2}/inventory/{method}", json=body, headers=headers)

    def balance(self, user_id: int) -> int:
        async def go(session: Any) -> int:
            value = await store_credits.balance(session, user_id=user_id)
            assert value == await store_credits.ledger_sum(session, user_id=user_id)
            return value

        return int(in_db(self.settings, go))

    def rows(self, user_id: int) -> int:
        async def go(session: Any) -> int:
            return len(await store_credits.history(session, user_id=user_id, limit=1000))

        return int(in_db(self.settings, go))


def _serve(tmp: Path, redis_url: str, database_url: str = "") -> Iterator[Api]:
    settings = _settings(
        tmp, redis_url, database_url, CCBB_MERCHANT_ID=MERCHANT, CCBB_MERCHANT_API_KEY=API_KEY
    )
    with serving(settings) as base:
        client = Api(base, settings)
        yield client
        client.http.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, test_redis_url: str) -> Iterator[Api]:
    yield from _serve(tmp_path_factory.mktemp("credits-api"), test_redis_url)


@pytest.fixture(scope="module")
def pg_api(
    tmp_path_factory: pytest.TempPathFactory, test_redis_url: str, request: pytest.FixtureRequest
) -> Iterator[Api]:
    """The same app on PostgreSQL (CCBB_TEST_POSTGRES_URL), where a consume is the
    one-statement spend on the app's store.credits.Writes pool."""
    tmp = tmp_path_factory.mktemp("credits-api-pg")
    yield from _serve(tmp, test_redis_url, request.getfixturevalue("pg_url"))


def op(
    user: str, *items: tuple[str, int], comment: str = "Quest completed", **extra: Any
) -> dict[str, Any]:
    return {"user": {"id": user}, "comment": comment, "platform": "xsolla",
            "items": [{"sku": s, "quantity": q} for s, q in items], **extra}  # fmt: skip


def xerror(r: httpx.Response, status: int, code: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"statusCode", "errorCode", "errorMessage", "transactionId"}, body
    assert body["statusCode"] == status and body["errorCode"] == code
    assert body["errorMessage"].startswith(f"[0401-{code}]: ") and len(body["errorMessage"]) > 15
    assert len(body["transactionId"]) == 32
    return str(body["errorMessage"])


# ---- /api/v1 ----------------------------------------------------------------------------------


def test_plans_are_public(api: Api) -> None:
    r = api.http.get("/api/v1/plans")
    assert r.status_code == 200
    plans = {p["sku"]: p for p in r.json()}
    assert set(plans) >= {"plan_starter", "plan_pro", "plan_agency", "credits_10", "credits_50"}
    pro = plans["plan_pro"]
    assert pro["kind"] == "plan" and pro["recurring"] is True and pro["currency"] == "USD"
    assert pro["price"] == "49.00" and isinstance(pro["max_pages"], int)
    assert plans["credits_10"]["kind"] == "pack" and plans["credits_10"]["max_pages"] is None
    assert all(float(p["price"]) <= 150 for p in plans.values() if p["kind"] == "pack")


def test_me(api: Api) -> None:
    user_id, public_id, bearer = api.user()
    me = api.http.get("/api/v1/me", headers=bearer).json()
    assert me == {"id": public_id, "email": me["email"], "plan": None, "credits": 0,
                  "email_confirmed": True}  # fmt: skip
    assert uuid.UUID(public_id) and public_id != str(user_id)
    assert api.http.get("/api/v1/me").status_code == 401


# ---- server methods ---------------------------------------------------------------------------


def test_reward_credits_packs_and_a_plan(api: Api) -> None:
    a_id, a, a_bearer = api.user()
    b_id, b, b_bearer = api.user()
    r = api.server("reward", [op(a, ("scan_credit", 5), ("credits_10", 2)),
                              op(b, ("plan_pro", 1), comment="Daily reward")])  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {
        "count": 2,
        "operations": [
            {"user_id": a, "platform": "xsolla", "comment": "Quest completed",
             "items": [{"sku": "scan_credit", "quantity": 5, "balance": 5},
                       {"sku": "credits_10", "quantity": 2, "balance": 25}]},
            {"user_id": b, "platform": "xsolla", "comment": "Daily reward",
             "items": [{"sku": "plan_pro", "quantity": 1, "balance": 1}]},
        ],
    }  # fmt: skip
    assert api.balance(a_id) == 25 and api.balance(b_id) == 50  # the plan brings its credits
    balance = api.http.get(f"{V2}/user/virtual_currency_balance", headers=a_bearer).json()
    assert balance["items"] == [{"sku": "scan_credit", "type": "virtual_currency",
                                 "name": "Scan credit", "description": balance["items"][0]
                                 ["description"], "amount": 25}]  # fmt: skip
    inventory = api.http.get(f"{V2}/user/inventory/items", headers=b_bearer).json()["items"]
    assert [(i["sku"], i["type"], i["quantity"], i["virtual_item_type"]) for i in inventory] == [
        ("scan_credit", "virtual_currency", 50, "consumable"),
        ("plan_pro", "virtual_good", 1, "non_consumable"),
    ]
    assert api.http.get("/api/v1/me", headers=b_bearer).json()["plan"] == "plan_pro"
    # revoke the plan: ended, credits stay; revoking it again: not in the inventory
    r = api.server("revoke", [op(b, ("plan_pro", 1))])
    assert r.status_code == 200 and r.json()["operations"][0]["items"][0]["balance"] == 0
    assert api.http.get("/api/v1/me", headers=b_bearer).json() == {
        "id": b, "email": api.http.get("/api/v1/me", headers=b_bearer).json()["email"],
        "plan": None, "credits": 50, "email_confirmed": True,
    }  # fmt: skip
    xerror(api.server("revoke", [op(b, ("plan_pro", 1))]), 422, 5004)


def test_a_batch_is_applied_whole_or_not_at_all(api: Api) -> None:
    ids, publics = [], []
    for _ in range(3):
        user_id, public, _ = api.user()
        ids.append(user_id)
        publics.append(public)
    assert api.server("reward", [op(p, ("scan_credit", 4)) for p in publics]).status_code == 200
    rows = [api.rows(i) for i in ids]
    # the 3rd operation revokes more than the user has: nothing of the batch is applied
    batch = [op(publics[0], ("scan_credit", 1)), op(publics[1], ("scan_credit", 4)),
             op(publics[2], ("scan_credit", 5))]  # fmt: skip
    message = xerror(api.server("revoke", batch), 422, 5004)
    assert "operation 3" in message and "nothing" in message
    assert [api.balance(i) for i in ids] == [4, 4, 4]
    assert [api.rows(i) for i in ids] == rows
    # 51 operations: refused whole (Xsolla ignores the excess silently; we do not)
    message = xerror(api.server("reward", [op(publics[0], ("scan_credit", 1))] * 51), 422, 1102)
    assert "at most 50" in message
    assert api.balance(ids[0]) == 4
    # 50 is fine
    assert api.server("reward", [op(publics[0], ("scan_credit", 1))] * 50).status_code == 200
    assert api.balance(ids[0]) == 54


def test_idempotency_key_replays(api: Api) -> None:
    user_id, public, _ = api.user()
    key = uuid.uuid4().hex
    first = api.server("reward", [op(public, ("scan_credit", 7))], key=key)
    again = api.server("reward", [op(public, ("scan_credit", 7))], key=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert api.balance(user_id) == 7 and api.rows(user_id) == 1
    message = xerror(api.server("reward", [op(public, ("scan_credit", 8))], key=key), 409, 1102)
    assert "Idempotency-Key" in message
    # the same key on the other method is another request
    revoked = api.server("revoke", [op(public, ("scan_credit", 2))], key=key)
    assert revoked.status_code == 200 and api.balance(user_id) == 5
    assert api.server("revoke", [op(public, ("scan_credit", 2))], key=key).json() == revoked.json()
    assert api.balance(user_id) == 5 and api.rows(user_id) == 2


def test_purchase_is_idempotent_on_external_purchase_id(api: Api) -> None:
    user_id, public, _ = api.user()
    purchase = {"amount": "3.99", "currency": "USD", "external_purchase_id": uuid.uuid4().hex,
                "external_purchase_date": "2020-01-25T05:00:00+05:00"}  # fmt: skip
    first = api.server("purchase", [op(public, ("credits_10", 1), purchase=purchase,
                                       comment="Purchase in App Store")])  # fmt: skip
    assert first.status_code == 200, first.text
    answer = first.json()["operations"][0]
    assert answer["items"] == [{"sku": "credits_10", "quantity": 1, "balance": 10}]
    assert {k: answer[k] for k in ("external_purchase_id", "amount", "currency")} == {
        "external_purchase_id": purchase["external_purchase_id"], "amount": "3.99",
        "currency": "USD",
    }  # fmt: skip
    assert isinstance(answer["order_id"], int)
    again = api.server("purchase", [op(public, ("credits_10", 1), purchase=purchase,
                                       comment="sent again")])  # fmt: skip
    assert again.json()["operations"][0] == answer  # the first operation, again
    assert api.balance(user_id) == 10 and api.rows(user_id) == 1
    message = xerror(api.server("purchase", [op(public, ("credits_10", 1))]), 422, 5009)
    assert "purchase" in message
    bad = dict(purchase, amount=3.99, external_purchase_id="other")
    xerror(api.server("purchase", [op(public, ("credits_10", 1), purchase=bad)]), 422, 1102)


def test_server_method_errors(api: Api) -> None:
    user_id, public, bearer = api.user()
    xerror(api.server("reward", [{"comment": "x", "items": [{"sku": "scan_credit",
                                                              "quantity": 1}]}]), 422, 5003)  # fmt: skip
    xerror(api.server("reward", [op(str(uuid.uuid4()), ("scan_credit", 1))]), 404, 5008)
    xerror(api.server("reward", [op(str(user_id), ("scan_credit", 1))]), 404, 5008)  # not the db id
    xerror(api.server("reward", [op(public, ("boots_1", 1))]), 404, 4001)
    xerror(api.server("reward", [op(public, ("scan_credit", 0))]), 422, 5002)
    xerror(api.server("reward", [op(public, ("plan_pro", 2))]), 422, 5002)
    xerror(api.server("reward", [dict(op(public, ("scan_credit", 1)), items=[])]), 422, 5002)
    xerror(api.server("reward", {"user": {"id": public}}), 422, 1102)
    bad_json = api.http.post(
        f"{V2}/inventory/reward",
        content=b"[{",
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{MERCHANT}:{API_KEY}".encode()).decode()
        },
    )
    xerror(bad_json, 422, 1102)
    # a wrong key, a user's bearer token, nothing: 1020; a wrong project: 404
    wrong = "Basic " + base64.b64encode(f"{MERCHANT}:not-the-key".encode()).decode()
    for auth in (wrong, bearer["Authorization"], "Basic !!!", ""):
        r = api.server("reward", [op(public, ("scan_credit", 100))], auth=auth)
        xerror(r, 401, 1020)
    r = api.http.post("/api/v2/project/1/inventory/reward", json=[op(public, ("scan_credit", 1))],
                      headers={"Authorization": "Basic " + base64.b64encode(
                          f"{MERCHANT}:{API_KEY}".encode()).decode()})  # fmt: skip
    xerror(r, 404, 1102)
    big = [op(public, ("scan_credit", 1), comment="x" * 200)] * 5000  # over 1 MB
    # refused by the app-wide body limit (web.body_limit, 64 KB) before the API reads it
    r = api.server("reward", big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert api.balance(user_id) == 0 and api.rows(user_id) == 0


# ---- client methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_consume_and_another_users_token(request: pytest.FixtureRequest, backend: str) -> None:
    api: Api = request.getfixturevalue("api" if backend == "sqlite" else "pg_api")
    a_id, a, a_bearer = api.user()
    b_id, _, b_bearer = api.user()
    api.server("reward", [op(a, ("scan_credit", 3))])
    body = {"sku": "scan_credit", "quantity": 2, "instance_id": None}
    r = api.http.post(f"{V2}/user/inventory/item/consume", json=body, headers=a_bearer)
    assert r.status_code == 204 and r.content == b""
    assert api.balance(a_id) == 1
    # B's token is B's inventory: it cannot see or spend A's credits
    assert api.http.get(f"{V2}/user/virtual_currency_balance", headers=b_bearer).json()[
        "items"][0]["amount"] == 0  # fmt: skip
    consume = f"{V2}/user/inventory/item/consume"
    xerror(api.http.post(consume, json=dict(body, quantity=1), headers=b_bearer), 422, 5006)
    assert api.balance(a_id) == 1 and api.balance(b_id) == 0
    xerror(api.http.post(consume, json=dict(body, quantity=2), headers=a_bearer), 422, 5006)
    xerror(
        api.http.post(consume, json=dict(body, sku="plan_pro", quantity=1), headers=a_bearer),
        422,
        5007,
    )
    xerror(
        api.http.post(consume, json=dict(body, sku="credits_10", quantity=1), headers=a_bearer),
        422,
        5004,
    )
    xerror(api.http.post(consume, json=dict(body, sku="nope"), headers=a_bearer), 404, 4001)
    xerror(api.http.post(consume, json=dict(body, quantity="1"), headers=a_bearer), 422, 5002)
    xerror(api.http.post(consume, json=dict(body, instance_id="x"), headers=a_bearer), 422, 5002)
    # an Idempotency-Key makes a repeat change nothing
    headers = {**a_bearer, "Idempotency-Key": uuid.uuid4().hex}
    one = dict(body, quantity=1)
    assert api.http.post(consume, json=one, headers=headers).status_code == 204
    assert api.http.post(consume, json=one, headers=headers).status_code == 204
    assert api.balance(a_id) == 0
    for path in ("/user/inventory/items", "/user/virtual_currency_balance"):
        xerror(api.http.get(V2 + path), 401, 1020)
        xerror(api.http.get(V2 + path, headers={"Authorization": "Bearer ccbb_forged"}), 401, 1020)
        xerror(api.http.get("/api/v2/project/other" + path, headers=a_bearer), 404, 1102)
    xerror(api.http.post(consume, json=body), 401, 1020)


def test_server_methods_do_not_exist_without_a_merchant_key(
    tmp_path: Path, test_redis_url: str
) -> None:
    settings = _settings(tmp_path, test_redis_url)
    with serving(settings) as base, httpx.Client(base_url=base) as http:
        for method in ("reward", "revoke", "purchase"):
            r = http.post(
                f"{V2}/inventory/{method}", json=[], headers={"Authorization": "Basic eDp5"}
            )
            assert r.status_code == 404 and r.json()["error"] == "not_found"


# ---- a scan without credits -------------------------------------------------------------------


def test_a_scan_with_no_credits_is_402_and_saves_nothing(api: Api) -> None:
    user_id, _, bearer = api.user()
    scan = {"site": "shop.example", "partner_tag": "me-20", "country": "US",
            "credential_id": "CID-API", "credential_secret": "s" * 40}  # fmt: skip
    r = api.http.post("/api/v1/scans", json=scan, headers=bearer)
    assert r.status_code == 402, r.text
    body = r.json()
    assert body["error"] == "no_credits" and "Billing" in body["message"]
    listed = api.http.get("/api/v1/scans", headers=bearer).json()["scans"]
    assert listed == []
    saved = in_db(api.settings, lambda s: store_credentials.list_credentials(s, user_id=user_id))
    assert saved == []  # the typed-in credentials were not kept for a refused scan
    api.server("reward", [op(api.http.get("/api/v1/me", headers=bearer).json()["id"],
                             ("scan_credit", 1))])  # fmt: skip
    r = api.http.post("/api/v1/scans", json=scan, headers=bearer)
    assert r.status_code == 201, r.text
    assert api.balance(user_id) == 0
    assert api.http.get("/api/v1/me", headers=bearer).json()["credits"] == 0
