"""The JSON API under /api/v1 against a real SQLite database and a real Redis: bearer tokens
(made in Settings), create / list / progress / cancel / report, JSON errors with stable codes,
ownership (404 on every route), and an OpenAPI document that validates and lists every route."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from ccbb import jobs
from ccbb.demo import run_demo
from ccbb.settings import Settings
from scanner.report import to_json
from scanner.scan import ScanReport
from store import scans as store_scans
from tests.test_web_scans import SECRET, Env, web_env
from web import affiliate_api, api, credits_api, monitoring_api, openapi

API = "/api/v1"


@pytest.fixture(scope="module")
def demo_report() -> ScanReport:
    return asyncio.run(run_demo(pages=40, show_progress=False))


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def _token(env: Env, email: str) -> tuple[int, dict[str, str]]:
    """Sign up ``email``, make a token in Settings; (user id, the Authorization header)."""
    user_id = env.signup(email)
    r = env.post("/settings/tokens", {"name": "test script"})
    assert r.status_code == 303
    m = re.search(r'<code id="new-token">([^<]+)</code>', env.get(r.headers["location"]).text)
    assert m
    env.client.cookies.clear()  # the API must work without any session
    return user_id, {"Authorization": f"Bearer {m.group(1)}"}


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code and body["message"], body
    return dict(body)


GOOD_SCAN = {
    "site": "shop.example",
    "partner_tag": "me-20",
    "country": "US",
    "credential_id": "CID-API",
    "credential_secret": SECRET,
    "cloak_prefixes": ["/go/"],
    "max_pages": 500,
    "credential_tps": 2.5,
}


def test_the_api_needs_a_valid_bearer_token(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer ccbb_forged"}, {"Authorization": "Basic x"}):
        r = env.client.get(f"{API}/scans", headers=headers)
        _error(r, 401, "unauthenticated")
        assert r.headers["www-authenticate"] == "Bearer"
    # a logged-in browser session is not an API credential (no CSRF on the API because of it)
    env.signup("cookie@example.com")
    _error(env.client.get(f"{API}/scans"), 401, "unauthenticated")
    _error(env.client.post(f"{API}/scans", json=GOOD_SCAN), 401, "unauthenticated")


def test_create_list_progress_cancel(env: Env) -> None:
    user_id, auth = _token(env, "dev@example.com")
    assert env.client.get(f"{API}/scans", headers=auth).json() == {
        "scans": [],
        "next_offset": None,
    }

    r = env.client.post(f"{API}/scans", json=GOOD_SCAN, headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert SECRET not in r.text
    assert created["site"] == "https://shop.example/"
    assert created["state"] == "queued" and created["partner_tag"] == "me-20"
    assert created["progress"]["pages_crawled"] == 0
    scan = env.scan(created["id"])
    assert scan.user_id == user_id
    assert scan.options == {
        "cloak_prefixes": ["https://shop.example/go/"],
        "tps": 2.5,
        "max_pages": 500,
        "http_fallback": True,  # a bare domain: http:// is tried when https:// cannot connect
    }
    queue = env.settings.queue_name
    assert any(
        job.decode().startswith(f"scan:{created['id']}:") for job in env.redis.zrange(queue, 0, -1)
    ), "the scan was not queued"

    # a second one with the credentials saved by the first
    r = env.client.get(f"{API}/credentials", headers=auth)
    assert r.json()["credentials"] == [
        {"id": scan.credential_id, "label": "shop.example", "credential_id": "CID-API",
         "version": "2.1", "country": "US", "partner_tag": "me-20", "tps": 2.5}
    ]  # fmt: skip
    assert SECRET not in r.text
    r = env.client.post(
        f"{API}/scans",
        json={"site": "https://shop.example/", "partner_tag": "me-20",
              "saved_credential": scan.credential_id},
        headers=auth,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    assert env.scan(second).options["tps"] == 2.5  # the saved credentials' rate

    listed = env.client.get(f"{API}/scans?limit=1", headers=auth).json()
    assert [s["id"] for s in listed["scans"]] == [second] and listed["next_offset"] == 1
    listed = env.client.get(f"{API}/scans?limit=1&offset=1", headers=auth).json()
    assert [s["id"] for s in listed["scans"]] == [created["id"]]
    assert listed["next_offset"] is None
    _error(env.client.get(f"{API}/scans?limit=0", headers=auth), 400, "invalid_query")
    _error(env.client.get(f"{API}/scans?offset=x", headers=auth), 400, "invalid_query")

    # live progress comes from the worker's Redis hash while the scan runs
    env.run(_mark_running(env, second))
    env.redis.hset(
        jobs.PROGRESS_KEY.format(second),
        mapping={"phase": "crawling", "pages_crawled": "17", "pages_discovered": "40",
                 "products_found": "9", "products_checked": "3"},
    )  # fmt: skip
    progress = env.client.get(f"{API}/scans/{second}/progress", headers=auth).json()
    assert progress["state"] == "running" and progress["phase"] == "crawling"
    assert (progress["pages_crawled"], progress["pages_discovered"]) == (17, 40)
    assert (progress["products_found"], progress["products_checked"]) == (9, 3)
    assert progress["elapsed_seconds"] >= 0
    one = env.client.get(f"{API}/scans/{second}", headers=auth).json()
    assert one["progress"] == progress | {"elapsed_seconds": one["progress"]["elapsed_seconds"]}
    _error(env.client.get(f"{API}/scans/{second}/report", headers=auth), 409, "scan_not_finished")

    r = env.client.post(f"{API}/scans/{second}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert env.redis.get(jobs.CANCEL_KEY.format(second)) == b"1"


async def _mark_running(env: Env, scan_id: int) -> None:
    await env._with_session(lambda s: store_scans.mark_running(s, scan_id=scan_id))


def test_invalid_scans_say_what_to_fix_per_field(env: Env) -> None:
    _, auth = _token(env, "typo@example.com")
    r = env.client.post(
        f"{API}/scans",
        json={"site": "not a site", "partner_tag": "bad tag", "credential_id": "CID",
              "cloak_prefixes": ["https://elsewhere.example/go/"], "max_pages": 0},
        headers=auth,
    )  # fmt: skip
    fields = _error(r, 422, "invalid_scan")["fields"]
    assert set(fields) == {"site", "partner_tag", "credential_secret", "max_pages"}
    assert "yourname-20" in fields["partner_tag"]
    r = env.client.post(f"{API}/scans", json={**GOOD_SCAN, "site": "https://shop.example/",
                        "cloak_prefixes": ["https://elsewhere.example/go/"]}, headers=auth)  # fmt: skip
    assert set(_error(r, 422, "invalid_scan")["fields"]) == {"cloak_prefixes"}
    r = env.client.post(f"{API}/scans", json={**GOOD_SCAN, "credential_tps": 50}, headers=auth)
    assert "from 0.1 to 10" in _error(r, 422, "invalid_scan")["fields"]["credential_tps"]
    r = env.client.post(f"{API}/scans", json={**GOOD_SCAN, "colour": "red"}, headers=auth)
    assert "colour" in _error(r, 422, "invalid_scan")["fields"]
    r = env.client.post(f"{API}/scans", json={"site": 3}, headers=auth)
    assert {"site", "partner_tag"} <= set(_error(r, 422, "invalid_scan")["fields"])
    r = env.client.post(f"{API}/scans", content=b"{not json", headers=auth)
    _error(r, 400, "invalid_json")
    r = env.client.post(f"{API}/scans", json={**GOOD_SCAN, "saved_credential": 999}, headers=auth)
    assert "saved_credential" in _error(r, 422, "invalid_scan")["fields"]
    assert env.scans_of(env.run(env._user_id("typo@example.com"))) == []  # nothing stored
    assert SECRET not in r.text


def test_report_is_the_cli_json(env: Env, demo_report: ScanReport) -> None:
    user_id, auth = _token(env, "owner@example.com")
    scan_id = env.make_scan(user_id, demo_report)
    r = env.client.get(f"{API}/scans/{scan_id}/report", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    expected = json.loads(json.dumps(to_json(demo_report)))
    # the stored report is the scanner's, apart from the timings the worker measures
    assert {k: v for k, v in body.items() if k != "stats"} == {
        k: v for k, v in expected.items() if k != "stats"
    }
    stored = env.run(env._with_session(lambda s: store_scans.report_json(s, scan_id=scan_id)))
    assert body == json.loads(json.dumps(stored))
    openapi.ReportOut.model_validate(body)  # the document describes it exactly
    listed = env.client.get(f"{API}/scans", headers=auth).json()["scans"]
    assert listed[0]["summary"] == body["summary"]


def test_other_users_scans_are_404_on_every_route(env: Env, demo_report: ScanReport) -> None:
    alice = env.signup("alice@example.com")
    scan_id = env.make_scan(alice, demo_report)
    _, auth = _token(env, "mallory@example.com")
    for method, path in [
        ("GET", f"/scans/{scan_id}"),
        ("GET", f"/scans/{scan_id}/progress"),
        ("GET", f"/scans/{scan_id}/report"),
        ("POST", f"/scans/{scan_id}/cancel"),
        ("GET", f"/scans/{scan_id}/export.csv"),
        ("DELETE", f"/scans/{scan_id}"),
    ]:
        _error(env.client.request(method, API + path, headers=auth), 404, "not_found")
    assert env.client.get(f"{API}/scans", headers=auth).json()["scans"] == []
    _error(env.client.get(f"{API}/nothing-here", headers=auth), 404, "not_found")
    _error(env.client.delete(f"{API}/scans", headers=auth), 405, "method_not_allowed")
    assert env.scan(scan_id).state == "done"


def test_csv_is_the_cli_csv_and_a_scan_can_be_deleted(env: Env, demo_report: ScanReport) -> None:
    from scanner.report import to_csv

    user_id, auth = _token(env, "owner@example.com")
    scan_id = env.make_scan(user_id, demo_report)
    r = env.client.get(f"{API}/scans/{scan_id}/export.csv", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text == to_csv(demo_report)
    removed = env.client.get(f"{API}/scans/{scan_id}/export.csv?status=removed", headers=auth)
    assert {row["status"] for row in csv.DictReader(io.StringIO(removed.text))} == {"removed"}
    # an unfinished scan has no CSV yet
    queued = env.make_scan(user_id)
    _error(
        env.client.get(f"{API}/scans/{queued}/export.csv", headers=auth), 409, "scan_not_finished"
    )
    # delete: the scan and what it holds go
    assert env.run(env._with_session(lambda s: _rows_left(s, scan_id))) > 0
    r = env.client.delete(f"{API}/scans/{scan_id}", headers=auth)
    assert r.status_code == 204 and r.content == b""
    assert env.scan(scan_id) is None
    _error(env.client.get(f"{API}/scans/{scan_id}", headers=auth), 404, "not_found")
    assert env.run(env._with_session(lambda s: _rows_left(s, scan_id))) == 0
    # a queued scan is cancelled, then deleted
    assert env.client.delete(f"{API}/scans/{queued}", headers=auth).status_code == 204
    assert env.scan(queued) is None


async def _rows_left(session: Any, scan_id: int) -> int:
    from sqlalchemy import func, select

    from store.models import FINDINGS_TABLES, REPORT_TABLES

    conn = await session.connection()
    total = 0
    for table in (*FINDINGS_TABLES, *REPORT_TABLES):
        stmt = select(func.count()).select_from(table).where(table.c.scan_id == scan_id)
        total += int((await conn.execute(stmt)).scalar_one())
    return total


def test_a_revoked_token_stops_working(env: Env) -> None:
    _, auth = _token(env, "leaver@example.com")
    assert env.client.get(f"{API}/scans", headers=auth).status_code == 200
    env.client.cookies.clear()
    env.get("/login")
    r = env.post("/login", {"email": "leaver@example.com", "password": "correct horse battery"})
    assert r.status_code == 303
    [token_id] = re.findall(r"/settings/tokens/(\d+)/revoke", env.get("/settings").text)
    assert "never" not in env.get("/settings").text.split("test script")[1][:200]  # last used
    assert env.post(f"/settings/tokens/{token_id}/revoke").status_code == 303
    _error(env.client.get(f"{API}/scans", headers=auth), 401, "unauthenticated")


def test_openapi_document_is_valid_public_and_complete(env: Env) -> None:
    r = env.client.get(f"{API}/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    validate(doc)
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    served = {
        (
            method,
            route.path.replace("{scan_id:int}", "{scan_id}").replace(
                "{channel_id:int}", "{channel_id}"
            ),
        )
        for route in [
            *api.routes,
            *credits_api.routes,
            *monitoring_api.routes,
            *affiliate_api.routes,
        ]
        if isinstance(route, Route) and not route.path.endswith("openapi.json")
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == served
    assert doc["paths"][f"{API}/scans"]["post"]["responses"]["422"]
    schema = doc["components"]["schemas"]["ScanIn"]
    assert schema["properties"]["credential_secret"]["writeOnly"] is True


def test_one_user_cannot_fill_the_queue(env: Env) -> None:
    """At most CCBB_ACTIVE_SCANS_PER_USER scans queued or running, through the API and the form."""
    user_id, auth = _token(env, "eager@example.com")
    limit = env.settings.active_scans_per_user
    ids = []
    for _ in range(limit):
        r = env.client.post(f"{API}/scans", json=GOOD_SCAN, headers=auth)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = env.client.post(f"{API}/scans", json=GOOD_SCAN, headers=auth)
    assert "wait for one to finish" in _error(r, 409, "too_many_active_scans")["message"]

    env.client.cookies.clear()
    env.get("/login")
    assert env.post("/login", {"email": "eager@example.com",
                               "password": "correct horse battery"}).status_code == 303  # fmt: skip
    form = {"domain": "shop.example", "credential_id": "CID", "secret": SECRET,
            "version": "2.1", "country": "US", "partner_tag": "me-20", "tps": 2.5}  # fmt: skip
    r = env.post("/scans/new", form)
    assert r.status_code == 409 and "wait for one to finish" in r.text
    assert 'value="shop.example"' in r.text and SECRET not in r.text  # the input is kept
    assert len(env.scans_of(user_id)) == limit
    r = env.post(f"/scans/{ids[0]}/rerun")  # a re-run is a new scan too
    assert r.status_code == 409 and "wait for one to finish" in r.text
    assert len(env.scans_of(user_id)) == limit

    # once one ends, a new one is accepted
    assert env.client.post(f"{API}/scans/{ids[0]}/cancel", headers=auth).status_code == 200
    assert env.post("/scans/new", form).status_code == 303
    assert len(env.scans_of(user_id)) == limit + 1


def test_api_calls_are_rate_limited_per_user(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url, CCBB_API_RATE="3/minute") as env:
        _, auth = _token(env, "busy@example.com")
        codes = [env.client.get(f"{API}/scans", headers=auth).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        r = env.client.get(f"{API}/scans", headers=auth)
        assert "wait" in _error(r, 429, "rate_limited")["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        _, other = _token(env, "calm@example.com")  # counted per user
        assert env.client.get(f"{API}/scans", headers=other).status_code == 200


def test_a_bad_api_rate_setting_says_how_to_write_it() -> None:
    with pytest.raises(ValueError, match="write it as 120/minute"):
        Settings(CCBB_API_RATE="lots")  # type: ignore[call-arg]


def test_deleting_the_account_removes_everything_and_stops_its_scans(
    env: Env, demo_report: ScanReport
) -> None:
    """Account page: with the password, the account, its scans, credentials and tokens go,
    its running scan is told to stop, and nothing of it works any more."""
    user_id, auth = _token(env, "leaving@example.com")
    done = env.make_scan(user_id, demo_report)
    r = env.client.post(f"{API}/scans", json=GOOD_SCAN, headers=auth)
    queued = r.json()["id"]
    bystander = env.signup("staying@example.com")
    theirs = env.make_scan(bystander, demo_report)

    env.client.cookies.clear()
    env.get("/login")
    assert env.post("/login", {"email": "leaving@example.com",
                               "password": "correct horse battery"}).status_code == 303  # fmt: skip
    env.get("/account")
    r = env.post("/account/delete", {"password": "not my password"})
    assert r.status_code == 400 and "was not deleted" in r.text
    assert env.scan(done) is not None

    r = env.post("/account/delete", {"password": "correct horse battery"})
    assert r.status_code == 303 and r.headers["location"] == "/login?deleted=1"
    assert "Your account was deleted." in env.get("/login?deleted=1").text
    assert env.get("/settings", follow_redirects=False).status_code == 303  # logged out
    assert env.scan(done) is None and env.scan(queued) is None
    assert env.redis.get(jobs.CANCEL_KEY.format(queued)) == b"1"  # its worker stops
    _error(env.client.get(f"{API}/scans", headers=auth), 401, "unauthenticated")
    assert _stored_rows(env) == {"user": 1, "amazon_credential": 1, "api_token": 0, "scan": 1}
    assert env.scan(theirs).state == "done"  # another user's data is untouched
    env.signup("leaving@example.com")  # the address is free again


def _stored_rows(env: Env) -> dict[str, int]:
    from sqlalchemy import text

    async def go(session: Any) -> dict[str, int]:
        conn = await session.connection()
        return {
            table: int((await conn.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one())
            for table in ("user", "amazon_credential", "api_token", "scan")
        }

    return dict(env.run(env._with_session(go)))
