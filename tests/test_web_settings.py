"""Settings against a real database, a real Redis and the sandbox Creators API on loopback:
"Test connection" makes one real lookup and explains each failure the FAQ lists; personal API
tokens are shown once, stored hashed, listed, revoked; other users' ids answer 404."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbb.sandbox.amazon_api import RunningSandbox
from store import tokens as store_tokens
from tests.sandbox_thread import sandbox_in_thread
from tests.test_web_scans import Env, web_env
from web import settings_page

GOOD = {"credential_id": "CID-GOOD", "secret": "good-secret-0123456789", "tag": "good-20"}
CATALOGUE = {
    "credentials": [
        {
            "credential_id": GOOD["credential_id"],
            "credential_secret": GOOD["secret"],
            "version": "2.1",
            "partner_tags": [GOOD["tag"]],
            "tps": 50,
        },
        {
            "credential_id": "CID-NEW",
            "credential_secret": "new-secret-0123456789",
            "version": "2.1",
            "partner_tags": ["new-20"],
            "eligible": False,
            "tps": 50,
        },
    ],
    "items": {"www.amazon.com": {"B000000001": {"title": "A product", "availability": "In Stock"}}},
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with sandbox_in_thread(CATALOGUE) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str, sandbox: RunningSandbox) -> Iterator[Env]:
    with web_env(
        tmp_path,
        test_redis_url,
        CCBB_AMAZON_API_HOST=sandbox.url,
        CCBB_AMAZON_AUTH=sandbox.auth_endpoint,
    ) as e:
        yield e


def _save(env: Env, credential_id: str, secret: str, tag: str, tps: str = "") -> int:
    r = env.post(
        "/settings",
        {"label": credential_id, "credential_id": credential_id, "secret": secret,
         "version": "2.1", "country": "US", "partner_tag": tag, "tps": tps},
    )  # fmt: skip
    assert r.status_code == 303, r.text
    ids = re.findall(r'action="/settings/credentials/(\d+)/test"', env.get("/settings").text)
    return int(ids[-1])


def _result(html: str) -> str:
    m = re.search(r'id="connection-result">(.*?)</p>', html, re.S)  # ok, or the failure
    assert m, "no connection result on the page"
    return re.sub(r"<[^>]+>", "", m.group(1))


def test_connection_test_makes_one_real_lookup_and_explains_failures(
    env: Env, sandbox: RunningSandbox
) -> None:
    env.signup("owner@example.com")
    good = _save(env, GOOD["credential_id"], GOOD["secret"], GOOD["tag"])
    wrong_secret = _save(env, GOOD["credential_id"], "not-the-secret-000000", GOOD["tag"])
    wrong_tag = _save(env, GOOD["credential_id"], GOOD["secret"], "someone-21")
    not_eligible = _save(env, "CID-NEW", "new-secret-0123456789", "new-20")
    unknown = _save(env, "CID-NEVER-REGISTERED", "whatever-secret-000", "me-20")

    before = len(sandbox.requests())
    r = env.post(f"/settings/credentials/{good}/test")
    assert r.status_code == 200
    assert "Connected" in _result(r.text)
    assert len(sandbox.requests()) == before + 1  # one real lookup

    cases = {
        wrong_secret: "refused the credentials",
        unknown: "refused the credentials",
        wrong_tag: "not tied to these credentials",
        not_eligible: "not eligible",
    }
    for credential, expected in cases.items():
        r = env.post(f"/settings/credentials/{credential}/test")
        assert r.status_code == 200
        text = _result(r.text)
        assert "Connection failed" in text and expected in text, text
        assert "registered for the Amazon Creators API" in r.text  # the FAQ's causes
    for html in env.html:
        assert GOOD["secret"] not in html and "new-secret-0123456789" not in html


def test_connection_test_of_someone_elses_credentials_is_404(env: Env) -> None:
    env.signup("alice@example.com")
    alices = _save(env, GOOD["credential_id"], GOOD["secret"], GOOD["tag"])
    env.signup("mallory@example.com")
    assert env.post(f"/settings/credentials/{alices}/test").status_code == 404
    assert env.post(f"/settings/credentials/{alices}/delete").status_code == 404


def test_connection_tests_are_throttled_per_user(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_page, "TESTS_PER_WINDOW", 2)
    env.signup(f"busy-{uuid.uuid4().hex[:6]}@example.com")
    credential = _save(env, GOOD["credential_id"], GOOD["secret"], GOOD["tag"])
    codes = [env.post(f"/settings/credentials/{credential}/test").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "Too many tests" in env.html[-1]


def _token_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'action="/settings/tokens/(\d+)/revoke"', html)]


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(env: Env) -> None:
    env.signup("dev@example.com")
    r = env.post("/settings/tokens", {"name": "nightly script"})
    # redirect after POST: a reload of the page that shows it makes no second token
    assert r.status_code == 303 and r.headers["location"].startswith("/settings?token=")
    assert "ccbb_" not in r.headers["location"] and not r.text
    shown = env.get(r.headers["location"])
    assert shown.headers["cache-control"] == "no-store"
    token = re.search(r'<code id="new-token">([^<]+)</code>', shown.text)
    assert token and token.group(1).startswith(store_tokens.TOKEN_PREFIX)
    assert 'data-copy="new-token"' in shown.text and "/static/copy.js" in shown.text
    plain = token.group(1)
    again = env.get(r.headers["location"]).text  # the reload
    assert plain not in again and "shown once already" in again
    assert len(_stored_tokens(env)) == 1
    page = env.get("/settings").text
    assert plain not in page  # shown once
    assert "nightly script" in page and plain[:9] in page  # listed by name and prefix
    stored = _stored_tokens(env)
    assert stored == [(store_tokens.hash_token(plain), "nightly script")]
    assert plain not in repr(stored)

    r = env.post("/settings/tokens", {"name": ""})
    assert r.status_code == 400 and "Give the token a name" in r.text

    [token_id] = _token_ids(page)
    env.signup("other@example.com")
    assert env.post(f"/settings/tokens/{token_id}/revoke").status_code == 404
    assert len(_stored_tokens(env)) == 1

    env.client.cookies.clear()
    env.get("/login")
    r = env.post("/login", {"email": "dev@example.com", "password": "correct horse battery"})
    assert r.status_code == 303
    r = env.post(f"/settings/tokens/{token_id}/revoke")
    assert r.status_code == 303
    assert "Token revoked" in env.get("/settings?revoked=1").text
    assert _stored_tokens(env) == []


def test_token_forms_need_the_csrf_token(env: Env) -> None:
    env.signup("csrf@example.com")
    r = env.client.post("/settings/tokens", data={"name": "x"}, follow_redirects=False)
    assert r.status_code == 403
    assert _stored_tokens(env) == []


def _stored_tokens(env: Env) -> list[tuple[str, str]]:
    from sqlmodel import select

    from store.models import ApiToken

    async def go(session: Any) -> list[tuple[str, str]]:
        rows = (await session.exec(select(ApiToken))).all()
        return [(t.token_hash, t.name) for t in rows]

    return list(env.run(env._with_session(go)))


def test_credentials_say_how_fast_amazon_lets_them_go(env: Env) -> None:
    """The requests per second of saved credentials paces the scans made with them."""
    env.signup("fast@example.com")
    for bad in ("fast", "0", "11", "-2"):
        r = env.post(
            "/settings",
            {"credential_id": "CID-X", "secret": "s" * 20, "version": "2.1", "country": "US",
             "partner_tag": "me-20", "tps": bad},
        )  # fmt: skip
        assert r.status_code == 400 and "from 0.1 to 10" in r.text, bad
    credential = _save(env, GOOD["credential_id"], GOOD["secret"], GOOD["tag"], tps="2,5")
    assert re.search(r"<td>good-20</td>\s*<td>2.5</td>", env.get("/settings").text)
    r = env.post(
        "/scans/new",
        {"domain": "shop.example", "saved_credential": str(credential), "country": "US",
         "partner_tag": "good-20"},
    )  # fmt: skip
    assert r.status_code == 303, r.text
    user_id = env.run(env._user_id("fast@example.com"))
    [scan] = env.scans_of(user_id)
    assert scan.options["tps"] == 2.5
