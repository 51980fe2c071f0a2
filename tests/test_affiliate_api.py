"""The affiliate program in the JSON API: joining with clear errors, the membership and
balance (amounts as strings), the statistics' period errors, bearer tokens only; the OpenAPI
document lists the three operations. Real app, SQLite and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from store import affiliates as store_aff
from tests.test_api import _error, _token
from tests.test_web_scans import Env, web_env

API = "/api/v1/affiliate"
GOOD = {"paypal_email": "me@paypal.example", "website": "https://my.example/", "adult": True,
        "accept_terms": True}  # fmt: skip


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url, CCBB_PUBLIC_URL="https://ccbb.example") as e:
        yield e


def _post(env: Env, body: Any, auth: dict[str, str]) -> Any:
    return env.client.post(API, json=body, headers=auth)


def test_join_answers_clear_errors_then_the_membership(env: Env) -> None:
    user_id, auth = _token(env, "api-aff@example.com")
    _error(env.client.get(API, headers=auth), 404, "not_member")
    _error(env.client.get(f"{API}/stats", headers=auth), 404, "not_member")
    r = env.client.post(
        API, content=b"{not json", headers={**auth, "content-type": "application/json"}
    )
    _error(r, 400, "invalid_json")
    # JSON types as written: "true" is not true; the four answers are all needed
    body = _error(_post(env, {**GOOD, "adult": "true"}, auth), 422, "invalid_fields")
    assert "adult" in body["fields"]
    body = _error(_post(env, {"paypal_email": "me@paypal.example"}, auth), 422, "invalid_fields")
    assert {"adult", "accept_terms"} <= set(body["fields"])
    body = _error(_post(env, {**GOOD, "surprise": 1}, auth), 422, "invalid_fields")
    assert "surprise" in body["fields"]
    # the program's own rules, with the words of the page
    body = _error(_post(env, {**GOOD, "adult": False, "accept_terms": False,
                              "paypal_email": "nope", "website": "my site"}, auth),
                  422, "invalid_fields")  # fmt: skip
    assert set(body["fields"]) == {"adult", "accept_terms", "paypal_email", "website"}
    assert "18 or older" in body["fields"]["adult"]
    assert env.run(env._with_session(lambda s: store_aff.get_by_user(s, user_id=user_id))) is None

    r = _post(env, GOOD, auth)
    assert r.status_code == 201, r.text
    me = r.json()
    aff = env.run(env._with_session(lambda s: store_aff.get_by_user(s, user_id=user_id)))
    assert aff is not None and me["ref_id"] == aff.ref_id and str(user_id) not in me["ref_id"]
    assert me["referral_url"] == f"https://ccbb.example/?ref={aff.ref_id}"
    assert me["balance"] == {"pending": "0.00", "payable": "0.00", "paid": "0.00"}
    assert me["payout_minimum"] == "50.00" and me["payouts"] == [] and me["status"] == "active"
    assert (me["paypal_email"], me["website"]) == (GOOD["paypal_email"], GOOD["website"])
    _error(_post(env, GOOD, auth), 409, "already_member")
    assert env.client.get(API, headers=auth).json() == me
    stats = env.client.get(f"{API}/stats", headers=auth).json()
    assert len(stats["days"]) == 30 and stats["totals"]["profit"] == "0.00"
    assert all(isinstance(d["sales_amount"], str) for d in stats["days"])


def test_the_api_takes_bearer_tokens_only(env: Env) -> None:
    _error(env.client.get(API), 401, "unauthenticated")
    _error(env.client.post(API, json=GOOD), 401, "unauthenticated")
    # a logged-in browser's cookie is not an API credential
    env.signup("cookie@example.com")
    _error(env.client.get(API), 401, "unauthenticated")
    _error(env.client.get(API, headers={"Authorization": "Bearer ccbb_nottoken"}), 401,
           "unauthenticated")  # fmt: skip


def test_each_caller_sees_only_their_own_membership(env: Env) -> None:
    _, first = _token(env, "first@example.com")
    _, second = _token(env, "second@example.com")
    one = _post(env, GOOD, first).json()
    _error(env.client.get(API, headers=second), 404, "not_member")
    two = _post(env, {**GOOD, "paypal_email": "two@paypal.example"}, second).json()
    assert one["ref_id"] != two["ref_id"]
    assert env.client.get(API, headers=first).json()["ref_id"] == one["ref_id"]
    # nothing in the query picks someone else's statistics
    r = env.client.get(f"{API}/stats?ref_id={one['ref_id']}", headers=second)
    assert r.status_code == 200 and one["ref_id"] not in r.text


def test_the_openapi_document_lists_the_affiliate_operations(env: Env) -> None:
    doc = env.client.get("/api/v1/openapi.json").json()
    validate(doc)
    paths = doc["paths"]
    assert set(paths[API]) == {"get", "post"} and set(paths[f"{API}/stats"]) == {"get"}
    assert paths[API]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert {"201", "400", "401", "409", "422", "429"} <= set(paths[API]["post"]["responses"])
    params = {p["name"] for p in paths[f"{API}/stats"]["get"]["parameters"]}
    assert params == {"from", "to"}
    schemas = doc["components"]["schemas"]
    assert schemas["AffiliateJoinIn"]["required"] == ["paypal_email", "adult", "accept_terms"]
    assert schemas["AffiliateBalanceOut"]["properties"]["payable"]["type"] == "string"
    assert "from" in schemas["AffiliateStatsOut"]["properties"]
