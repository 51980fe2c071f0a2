"""The Amazon Creators API sandbox, driven by the real clients of python-amazon-paapi."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from amazon_creatorsapi import AmazonCreatorsApi
from amazon_creatorsapi.aio import AsyncAmazonCreatorsApi
from amazon_creatorsapi.errors import (
    AccessDeniedError,
    AssociateValidationError,
    AuthenticationError,
    InvalidArgumentError,
    ItemsNotFoundError,
    RequestError,
    TooManyRequestsError,
)

from ccbb.sandbox.amazon_api import (
    Catalogue,
    CatalogueItem,
    Credential,
    ItemError,
    RunningSandbox,
    load_demo_catalogue,
    main,
    running_sandbox,
)

US = "www.amazon.com"
SECRET = "s3cret-value-never-logged"

ITEMS: dict[str, Any] = {
    "B000000001": {
        "title": "Kettle",
        "availability": "IN_STOCK",
        "message": "In Stock",
        "price": 19.99,
    },
    "B000000002": {
        "title": "Toaster",
        "availability": "OUT_OF_STOCK",
        "message": "Currently unavailable.",
    },
    "B000000003": {"title": "Lamp", "availability": None},
    "B000000004": {
        "error": {
            "code": "ItemNotAccessible",
            "message": "The ItemId B000000004 is not accessible through the Creators API.",
        }
    },
    "B000000005": {"title": "Mug", "availability": "IN_STOCK_SCARCE", "price": 8},
    "B000000007": {"title": "Clock", "availability": "UNKNOWN"},
}


def make_catalogue(not_found_mode: str = "404") -> Catalogue:
    def cred(cid: str, **kw: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "credential_id": cid,
            "credential_secret": SECRET,
            "version": "2.1",
            "partner_tags": ["good-20"],
            "marketplaces": [US],
            "tps": 0,
        }
        return base | kw

    return Catalogue.from_dict(
        {
            "credentials": [
                cred("main"),
                cred("lwa", version="3.1"),
                cred("poor", eligible=False),
                cred("slow", tps=5),
            ],
            "not_found_mode": not_found_mode,
            "items": {US: ITEMS},
        }
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(make_catalogue()) as sb:
        yield sb


def client_args(sb: RunningSandbox, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "credential_id": "main",
        "credential_secret": SECRET,
        "version": "2.1",
        "tag": "good-20",
        "country": "US",
        "throttling": 0,
        "retries": 0,
        "host": sb.url,
        "auth_endpoint": sb.auth_endpoint,
    }
    return args | kw


async def lookup(sb: RunningSandbox, kind: str, ids: list[str], **kw: Any) -> Any:
    """get_items through the async client, or the sync one in a thread."""
    if kind == "async":
        async with AsyncAmazonCreatorsApi(**client_args(sb, **kw)) as api:
            return await api.get_items(ids)

    def run() -> Any:
        with AmazonCreatorsApi(**client_args(sb, **kw)) as api:
            return api.get_items(ids)

    return await asyncio.to_thread(run)


CLIENTS = pytest.mark.parametrize("kind", ["async", "sync"])


def statuses(sb: RunningSandbox) -> list[int]:
    return [r["status"] for r in sb.requests()]


# --------------------------------------------------------------------------
# Lookups through the library
# --------------------------------------------------------------------------


@CLIENTS
async def test_every_availability_case_and_partial_errors(
    sandbox: RunningSandbox, kind: str
) -> None:
    ids = ["B000000001", "B000000002", "B000000003", "B000000004", "B000000005"]
    ids += ["B000000007", "B0UNKNOWN1"]
    result = await lookup(sandbox, kind, ids)

    by_asin = {item.asin: item for item in result}
    assert list(by_asin) == ["B000000001", "B000000002", "B000000003", "B000000005", "B000000007"]

    kettle = by_asin["B000000001"]
    assert kettle.item_info.title.display_value == "Kettle"
    assert kettle.detail_page_url == (
        "https://www.amazon.com/dp/B000000001?tag=good-20&linkCode=ogi&th=1&psc=1"
    )
    listing = kettle.offers_v2.listings[0]
    assert listing.availability.type == "IN_STOCK"
    assert listing.availability.message == "In Stock"
    assert listing.is_buy_box_winner is True
    assert listing.price.money.amount == 19.99
    assert listing.price.money.currency == "USD"
    assert listing.price.money.display_amount == "$19.99"

    toaster = by_asin["B000000002"].offers_v2.listings[0]
    assert toaster.availability.type == "OUT_OF_STOCK"
    assert toaster.price is None
    assert by_asin["B000000003"].offers_v2 is None
    assert by_asin["B000000005"].offers_v2.listings[0].availability.type == "IN_STOCK_SCARCE"
    assert by_asin["B000000007"].offers_v2.listings[0].availability.type == "UNKNOWN"

    errors = {e.code: e.message for e in result.errors}
    assert errors == {
        "ItemNotAccessible": "The ItemId B000000004 is not accessible through the Creators API.",
        "InvalidParameterValue": "The ItemId B0UNKNOWN1 provided in the request is invalid.",
    }
    [record] = sandbox.requests()
    assert record["credential_id"] == "main"
    assert record["marketplace"] == US
    assert record["item_ids"] == ids
    assert record["status"] == 200


@CLIENTS
@pytest.mark.parametrize("mode", ["404", "200"])
async def test_nothing_found_raises_items_not_found(kind: str, mode: str) -> None:
    async with running_sandbox(make_catalogue(not_found_mode=mode)) as sb:
        with pytest.raises(ItemsNotFoundError):
            await lookup(sb, kind, ["B0UNKNOWN1", "B000000004"])
        assert statuses(sb) == [int(mode)]


@CLIENTS
async def test_wrong_secret_is_an_authentication_error(sandbox: RunningSandbox, kind: str) -> None:
    with pytest.raises(AuthenticationError):
        await lookup(sandbox, kind, ["B000000001"], credential_secret="wrong")
    assert sandbox.requests() == []
    assert [(r["credential_id"], r["status"]) for r in sandbox.token_requests()] == [("main", 401)]


@CLIENTS
async def test_wrong_partner_tag(sandbox: RunningSandbox, kind: str) -> None:
    with pytest.raises(InvalidArgumentError, match="InvalidPartnerTag"):
        await lookup(sandbox, kind, ["B000000001"], tag="other-20")


@CLIENTS
async def test_marketplace_of_another_associate(sandbox: RunningSandbox, kind: str) -> None:
    with pytest.raises(AssociateValidationError):
        await lookup(sandbox, kind, ["B000000001"], country="DE")
    assert sandbox.requests()[0]["marketplace"] == "www.amazon.de"


@CLIENTS
async def test_associate_not_eligible(sandbox: RunningSandbox, kind: str) -> None:
    with pytest.raises(AccessDeniedError, match="AssociateNotEligible"):
        await lookup(sandbox, kind, ["B000000001"], credential_id="poor")


@CLIENTS
async def test_version_3_uses_the_json_token_flow(sandbox: RunningSandbox, kind: str) -> None:
    result = await lookup(sandbox, kind, ["B000000001"], credential_id="lwa", version="3.1")
    assert [item.asin for item in result] == ["B000000001"]
    assert [(r["credential_id"], r["status"]) for r in sandbox.token_requests()] == [("lwa", 200)]


@CLIENTS
async def test_a_2x_client_cannot_use_3x_credentials(sandbox: RunningSandbox, kind: str) -> None:
    with pytest.raises(AuthenticationError):
        await lookup(sandbox, kind, ["B000000001"], credential_id="lwa", version="2.1")


# --------------------------------------------------------------------------
# Rate limit and faults
# --------------------------------------------------------------------------


async def test_requests_above_the_rate_are_throttled(sandbox: RunningSandbox) -> None:
    args = client_args(sandbox, credential_id="slow")  # 5 TPS
    async with AsyncAmazonCreatorsApi(**args) as api:
        await api.get_items(["B000000001"])
        with pytest.raises(TooManyRequestsError):
            await api.get_items(["B000000001"])
        await asyncio.sleep(0.2)
        await api.get_items(["B000000001"])
    assert statuses(sandbox) == [200, 429, 200]


async def test_requests_paced_at_the_rate_pass(sandbox: RunningSandbox) -> None:
    async with AsyncAmazonCreatorsApi(
        **client_args(sandbox, credential_id="slow", throttling=0.2)
    ) as api:
        # The library starts its throttling interval before it fetches the
        # token, so the request after a token fetch comes early: warm it up.
        await api.get_items(["B000000001"])
        await asyncio.sleep(0.2)
        sandbox.reset()
        for _ in range(4):
            await api.get_items(["B000000001"])
    records = sandbox.requests()
    assert [r["status"] for r in records] == [200] * 4
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(records)]
    assert all(gap >= 0.18 for gap in gaps), gaps


async def test_rate_limit_is_per_credential(sandbox: RunningSandbox) -> None:
    async with AsyncAmazonCreatorsApi(**client_args(sandbox, credential_id="slow")) as slow:
        await slow.get_items(["B000000001"])
        async with AsyncAmazonCreatorsApi(**client_args(sandbox)) as fast:
            for _ in range(3):
                await fast.get_items(["B000000001"])
    assert statuses(sandbox) == [200] * 4


@CLIENTS
async def test_injected_503_are_retried_and_recorded(sandbox: RunningSandbox, kind: str) -> None:
    sandbox.inject_fault(503, count=2, retry_after=0)
    result = await lookup(sandbox, kind, ["B000000001"], retries=2)
    assert [item.asin for item in result] == ["B000000001"]
    assert statuses(sandbox) == [503, 503, 200]


@CLIENTS
async def test_injected_faults_without_retries(sandbox: RunningSandbox, kind: str) -> None:
    sandbox.inject_fault(500)
    with pytest.raises(RequestError, match="500"):
        await lookup(sandbox, kind, ["B000000001"])
    sandbox.inject_fault(429, retry_after=1)
    with pytest.raises(TooManyRequestsError):
        await lookup(sandbox, kind, ["B000000001"])
    await lookup(sandbox, kind, ["B000000001"])
    assert statuses(sandbox) == [500, 429, 200]


async def test_expired_token_is_refreshed_by_the_client(sandbox: RunningSandbox) -> None:
    async with AsyncAmazonCreatorsApi(**client_args(sandbox)) as api:
        await api.get_items(["B000000001"])
        sandbox.expire_tokens()
        await api.get_items(["B000000001"])
    assert statuses(sandbox) == [200, 401, 200]
    assert len(sandbox.token_requests()) == 2


# --------------------------------------------------------------------------
# Raw HTTP: what the library never sends, and the admin endpoints
# --------------------------------------------------------------------------


async def get_token(
    http: httpx.AsyncClient, sb: RunningSandbox, cid: str = "main", lwa: bool = False
) -> str:
    data = {
        "grant_type": "client_credentials",
        "client_id": cid,
        "client_secret": SECRET,
        "scope": "creatorsapi::default" if lwa else "creatorsapi/default",
    }
    if lwa:
        response = await http.post(sb.auth_endpoint, json=data)
    else:
        response = await http.post(sb.auth_endpoint, data=data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    return str(body["access_token"])


async def raw_get_items(
    http: httpx.AsyncClient,
    sb: RunningSandbox,
    authorization: str,
    body: dict[str, Any],
    marketplace: str = US,
) -> httpx.Response:
    return await http.post(
        f"{sb.url}/catalog/v1/getItems",
        headers={"Authorization": authorization, "x-marketplace": marketplace},
        json=body,
    )


async def test_more_than_ten_ids_are_rejected(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient() as http:
        token = await get_token(http, sandbox)
        ids = [f"B0000000{n:02d}" for n in range(11)]
        response = await raw_get_items(
            http,
            sandbox,
            f"Bearer {token}, Version 2.1",
            {"partnerTag": "good-20", "itemIds": ids, "resources": ["itemInfo.title"]},
        )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "ValidationException"
    assert body["reason"] == "FieldValidationFailed"
    assert body["fieldList"][0]["name"] == "itemIds"
    assert sandbox.requests()[0]["item_ids"] == ids


async def test_authorization_header_must_match_the_version(sandbox: RunningSandbox) -> None:
    body = {"partnerTag": "good-20", "itemIds": ["B000000001"]}
    async with httpx.AsyncClient() as http:
        token = await get_token(http, sandbox)
        lwa_token = await get_token(http, sandbox, "lwa", lwa=True)
        answers = [
            await raw_get_items(http, sandbox, "", body),
            await raw_get_items(http, sandbox, "Bearer nope, Version 2.1", body),
            await raw_get_items(http, sandbox, f"Bearer {token}", body),
            await raw_get_items(http, sandbox, f"Bearer {token}, Version 2.2", body),
            await raw_get_items(http, sandbox, f"Bearer {lwa_token}, Version 3.1", body),
            await raw_get_items(http, sandbox, f"Bearer {token}, Version 2.1", body),
            await raw_get_items(http, sandbox, f"Bearer {lwa_token}", body),
        ]
    assert [a.status_code for a in answers] == [401] * 5 + [200] * 2
    assert answers[0].json()["message"] == "Unauthorized"


async def test_token_request_encoding_and_scope_are_checked(sandbox: RunningSandbox) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "main",
        "client_secret": SECRET,
        "scope": "creatorsapi/default",
    }
    async with httpx.AsyncClient() as http:
        json_with_cognito_scope = await http.post(sandbox.auth_endpoint, json=form)
        form_with_lwa_scope = await http.post(
            sandbox.auth_endpoint, data=form | {"scope": "creatorsapi::default"}
        )
        lwa_credentials_by_form = await http.post(
            sandbox.auth_endpoint, data=form | {"client_id": "lwa"}
        )
        unknown_client = await http.post(sandbox.auth_endpoint, data=form | {"client_id": "x"})
        wrong_grant = await http.post(sandbox.auth_endpoint, data=form | {"grant_type": "code"})
    assert json_with_cognito_scope.status_code == 400
    assert json_with_cognito_scope.json()["error"] == "invalid_scope"
    assert form_with_lwa_scope.status_code == 400
    assert lwa_credentials_by_form.status_code == 401
    assert lwa_credentials_by_form.json()["error"] == "invalid_client"
    assert unknown_client.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


async def test_only_the_requested_resources_are_returned(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient() as http:
        auth = f"Bearer {await get_token(http, sandbox)}, Version 2.1"
        title_only = await raw_get_items(
            http,
            sandbox,
            auth,
            {"partnerTag": "good-20", "itemIds": ["B000000001"], "resources": ["itemInfo.title"]},
        )
        bad_resource = await raw_get_items(
            http,
            sandbox,
            auth,
            {"partnerTag": "good-20", "itemIds": ["B000000001"], "resources": ["Offers.Listings"]},
        )
    [item] = title_only.json()["itemsResult"]["items"]
    assert set(item) == {"asin", "detailPageURL", "itemInfo"}
    assert bad_resource.status_code == 400
    assert bad_resource.json()["reason"] == "FieldValidationFailed"


async def test_admin_endpoints(sandbox: RunningSandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        injected = await http.post(
            "/_sandbox/faults", json={"status": 503, "count": 1, "retry_after": 2}
        )
        assert injected.status_code == 200
        assert (await http.post("/_sandbox/faults", json={"status": 99})).status_code == 400
        token = await get_token(http, sandbox)
        body = {"partnerTag": "good-20", "itemIds": ["B000000001"]}
        faulted = await raw_get_items(http, sandbox, f"Bearer {token}, Version 2.1", body)
        assert faulted.status_code == 503
        assert faulted.headers["Retry-After"] == "2"
        recorded = (await http.get("/_sandbox/requests")).json()
        assert [(r["credential_id"], r["item_ids"], r["status"]) for r in recorded] == [
            ("main", ["B000000001"], 503)
        ]
        assert isinstance(recorded[0]["t"], float)
        sandbox.inject_fault(429, count=3)
        assert (await http.post("/_sandbox/reset")).status_code == 200
        assert (await http.get("/_sandbox/requests")).json() == []
        ok = await raw_get_items(http, sandbox, f"Bearer {token}, Version 2.1", body)
        assert ok.status_code == 200


# --------------------------------------------------------------------------
# The catalogue, the demo and the command line
# --------------------------------------------------------------------------


def test_catalogue_round_trip(tmp_path: Path) -> None:
    catalogue = Catalogue(
        credentials=[Credential("c", "secret", "3.2", ["t-21"], ["www.amazon.co.uk"], 2.0)],
        items={
            "www.amazon.co.uk": {
                "B000000001": CatalogueItem(title="T", availability="IN_STOCK", price=3.0),
                "B000000002": CatalogueItem(error=ItemError("ItemNotFound", "B000000002 gone")),
                "B000000003": CatalogueItem(title="None"),
            }
        },
        not_found_mode="200",
    )
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(catalogue.to_dict()))
    assert Catalogue.from_file(path) == catalogue
    assert Catalogue.from_dict(catalogue.to_dict()) == catalogue
    assert "secret" not in repr(catalogue)


@pytest.mark.parametrize(
    "broken",
    [
        {"not_found_mode": "500"},
        {"credentials": [{"credential_id": "a", "credential_secret": "b", "version": "4.1"}]},
        {"credentials": [{"credential_id": "a"}]},
        {"items": {US: {"B000000001": {"availability": "IN_STOCK", "colour": "red"}}}},
        {"items": {US: {"B000000001": {"price": "cheap"}}}},
        {"extra": 1},
    ],
)
def test_broken_catalogues_are_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Catalogue.from_dict(broken)


async def test_demo_catalogue_covers_every_case() -> None:
    demo = load_demo_catalogue()
    [credential] = demo.credentials
    assert credential.credential_id == "demo-credential"
    assert credential.credential_secret == "demo-secret"
    assert credential.version == "2.1"
    assert credential.partner_tags == ["demo-20"]
    assert credential.tps == 10
    items = demo.items[US]
    kinds = {item.availability for item in items.values() if item.error is None}
    assert {"IN_STOCK", "OUT_OF_STOCK", "UNKNOWN", None} <= kinds
    assert {item.error.code for item in items.values() if item.error} >= {"ItemNotAccessible"}

    async with running_sandbox(demo) as sb:
        result = await lookup(
            sb,
            "async",
            [*list(items)[:9], "B0UNKNOWN1"],
            credential_id="demo-credential",
            credential_secret="demo-secret",
            tag="demo-20",
        )
        assert len(result) + len(result.errors) == 10


async def test_secrets_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_sandbox(make_catalogue()) as sb:
        await lookup(sb, "async", ["B000000001"])
        with pytest.raises(AuthenticationError):
            await lookup(sb, "async", ["B000000001"], credential_secret="other-secret-value")
        recorded = json.dumps([sb.requests(), sb.token_requests()])
    aiohttp_logs = "\n".join(r.getMessage() for r in caplog.records if "aiohttp" in r.name)
    for secret in (SECRET, "other-secret-value"):
        assert secret not in aiohttp_logs
        assert secret not in recorded


def test_command_line_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from ccbb.sandbox.amazon_api import main; main(['--port', '0'])"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line
        assert "/auth/o2/token" in line
        assert "demo-credential" in line
        assert "demo-secret" not in line
        url = line.split(" at ", 1)[1].split()[0]
        token = httpx.post(
            f"{url}/auth/o2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-credential",
                "client_secret": "demo-secret",
                "scope": "creatorsapi/default",
            },
        )
        assert token.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def test_command_line_refuses_a_missing_catalogue(tmp_path: Path) -> None:
    assert main(["--catalogue", str(tmp_path / "missing.json")]) == 2
