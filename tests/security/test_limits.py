"""Length limits: bodies are capped before anything reads them (413), every stored field has a
length limit with a clear message that does not echo the value, host names are checked where
the scan is created (labels ≤ 63, whole ≤ 253, IDN to punycode), for the form and the API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import tokens as store_tokens
from tests.test_web_scans import PASSWORD, SECRET, Env, web_env
from web.body_limit import DEFAULT_LIMIT, BodyLimit
from web.new_scan import check_scan_form


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


# ---- the body cap, at the ASGI level (what a real server hands the app) ------------------


async def _through_limit(headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """(status, bytes the app was able to pull) for a body of ``chunks`` × 64 KiB."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= chunks * 65536:
            return {"type": "http.disconnect"}
        pulled += 65536
        return {"type": "http.request", "body": b"x" * 65536, "more_body": pulled < chunks * 65536}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):  # reads all it can, as a form parser does
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    scope = {"type": "http", "method": "POST", "path": "/login", "headers": headers}
    await BodyLimit(app)(scope, receive, send)
    return sent[0]["status"], pulled


def test_a_declared_large_body_is_refused_before_it_is_read() -> None:
    status, pulled = asyncio.run(_through_limit([(b"content-length", b"104857600")], 1600))
    assert status == 413 and pulled == 0


def test_a_streamed_large_body_is_cut_off_at_the_limit() -> None:
    status, pulled = asyncio.run(_through_limit([], 1600))  # 100 MB, chunked
    assert status == 413 and pulled <= DEFAULT_LIMIT + 65536


def test_a_body_under_the_limit_goes_through() -> None:
    assert asyncio.run(_through_limit([], 1))[0] == 200


def test_a_large_login_body_is_413_through_the_app(env: Env) -> None:
    env.get("/login")
    r = env.post("/login", {"email": "a@example.com", "password": "x" * (2 * DEFAULT_LIMIT)})
    assert r.status_code == 413 and "too large" in r.text


def test_a_large_api_body_is_413_json(env: Env) -> None:
    r = env.client.post("/api/v1/scans", content=b"{" + b" " * (2 * DEFAULT_LIMIT) + b"}",
                        headers={"Authorization": "Bearer ccbb_x"})  # fmt: skip
    assert r.status_code == 413 and r.json()["error"] == "too_large"


# ---- field lengths, New Scan ---------------------------------------------------------------


def _new_scan(env: Env, **changes: str) -> Any:
    env.get("/scans/new")
    form = {"domain": "example.com", "credential_id": "CID-1", "secret": SECRET,
            "version": "2.1", "country": "US", "partner_tag": "mine-20", "tps": "1"}  # fmt: skip
    return env.post("/scans/new", form | changes)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("domain", "a" * 5000 + ".com", "too long"),
        ("domain", "a" * 64 + ".example.com", "too long"),
        ("domain", ".".join(["a" * 60] * 5) + ".com", "too long"),
        ("domain", "exa_mple.com", "not a valid domain name"),
        ("domain", "http://[", "not a web address"),  # urlsplit's own ValueError (was a 500)
        ("domain", "[::1", "not a web address"),
        ("partner_tag", "x" * 5000 + "-20", "too long"),
        ("credential_id", "C" * 5000, "too long"),
        ("secret", "S" * 5000, "too long"),
        ("cloak_prefixes", "/go/" + "g" * 5000, "too long"),
        ("max_pages", "9" * 5000, "too long"),
        ("tps", "1" * 5000, "too long"),
    ],
)
def test_new_scan_refuses_over_long_values_without_echoing_them(
    env: Env, field: str, value: str, says: str
) -> None:
    uid = env.signup(f"long-{field}@example.com")
    r = _new_scan(env, **{field: value})
    assert r.status_code == 400 and says in r.text, r.text[:500]
    message = re.search(r'<p class="field-error"[^>]*>(.*?)</p>', r.text, re.S)
    assert message and len(message.group(1)) < 200  # the message quotes little of it
    if len(value) > 2000:  # nor does the form give an over-long one back in full
        assert value not in r.text
    assert env.scans_of(uid) == []


def test_an_international_domain_is_stored_in_punycode(env: Env) -> None:
    uid = env.signup("idn@example.com")
    assert _new_scan(env, domain="Bücher.example").status_code == 303
    assert [s.site for s in env.scans_of(uid)] == ["https://xn--bcher-kva.example/"]


def test_check_scan_form_is_what_the_worker_gets() -> None:
    """Pure: the longest valid host passes, one character more does not."""
    label = "a" * 63
    host = ".".join([label, label, label, "a" * 57]) + ".com"  # 253
    assert len(host) == 253
    form = {"domain": host, "credential_id": "C", "secret": "S", "version": "2.1",
            "country": "US", "partner_tag": "mine-20"}  # fmt: skip
    req, errors = check_scan_form(form, [])
    assert req is not None and req.site == f"https://{host}/", errors
    req, errors = check_scan_form(form | {"domain": "b" + host}, [])
    assert req is None and "too long" in errors["domain"]


# ---- the API -------------------------------------------------------------------------------


def _api_token(env: Env, email: str) -> dict[str, str]:
    uid = env.signup(email)

    async def make(session: Any) -> str:
        return (await store_tokens.create_token(session, user_id=uid, name="t"))[1]

    return {"Authorization": f"Bearer {env.run(env._with_session(make))}"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site", "a" * 5000 + ".com"),
        ("site", "a" * 64 + ".com"),
        ("partner_tag", "x" * 5000 + "-20"),
        ("cloak_prefixes", ["/go/" + "g" * 5000]),
        ("max_pages", True),
        ("max_pages", "5"),
        ("saved_credential", True),
        ("credential_tps", True),
    ],
)
def test_the_api_refuses_over_long_and_mistyped_values(env: Env, field: str, value: Any) -> None:
    headers = _api_token(env, f"api-{field}-{type(value).__name__}@example.com")
    body = {"site": "example.com", "partner_tag": "mine-20", "credential_id": "C",
            "credential_secret": SECRET} | {field: value}  # fmt: skip
    r = env.client.post("/api/v1/scans", json=body, headers=headers)
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"] == "invalid_scan"
    assert any(key.split(".")[0] == field for key in r.json()["fields"]), r.json()
    assert "x" * 300 not in r.text and "g" * 300 not in r.text and "a" * 300 not in r.text


# ---- accounts ------------------------------------------------------------------------------


def test_sign_up_and_login_refuse_over_long_values(env: Env) -> None:
    env.get("/signup")
    long_email = "a" * 300 + "@example.com"
    r = env.post("/signup", {"email": long_email, "password": PASSWORD})
    assert r.status_code == 400 and "too long" in r.text and long_email not in r.text
    env.get("/login")
    r = env.post("/login", {"email": long_email, "password": "p" * 5000})
    assert r.status_code == 400 and "Wrong e-mail or password." in r.text


def test_settings_refuse_over_long_values(env: Env) -> None:
    env.signup("settings-long@example.com")
    env.get("/settings")
    r = env.post("/settings", {"label": "L" * 5000, "credential_id": "CID", "secret": SECRET,
                               "version": "2.1", "country": "US", "partner_tag": "mine-20"})  # fmt: skip
    assert r.status_code == 400 and "too long" in r.text and "L" * 300 not in r.text
    r = env.post("/settings/tokens", {"name": "N" * 5000})
    assert r.status_code == 400 and "too long" in r.text and "N" * 300 not in r.text


def test_a_re_run_checks_a_stored_scan_again(env: Env) -> None:
    """A scan stored before these checks (its site too long) is not queued by a re-run."""
    uid = env.signup("legacy@example.com")
    scan = env.make_scan(uid, site="https://" + "a" * 5000 + ".com/")
    env.get("/")
    r = env.post(f"/scans/{scan}/rerun")
    assert r.status_code == 400 and "start a New Scan" in r.text
    assert len(env.scans_of(uid)) == 1
