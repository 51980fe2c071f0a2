"""The low and info items of the outside review, each through the real app: security headers
and no inline script, sign-up throttled and saying nothing of who exists, a login lock that
locks the attacker's address and not the owner, X-Forwarded-For believed from configured
proxies only, nested JSON and huge page numbers, kept secrets bound to their user, e-mails
checked, old AKIA keys refused, masked secrets, tokens revoked with a password change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import tokens as store_tokens
from tests.test_web_scans import PASSWORD, SECRET, Env, web_env
from web.headers import CSP


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


NEW_SCAN = {"domain": "example.com", "credential_id": "CID-1", "version": "2.1",
            "country": "US", "partner_tag": "mine-20", "tps": "1"}  # fmt: skip


# ---- headers and pages ----------------------------------------------------------------------


def test_every_response_has_the_security_headers(env: Env) -> None:
    uid = env.signup("headers@example.com")
    scan = env.make_scan(uid)
    responses = [
        env.get("/login"), env.get("/"), env.get(f"/scans/{scan}"), env.get("/static/app.css"),
        env.get("/healthz"), env.get("/nowhere"), env.get("/api/v1/openapi.json"),
        env.client.get("/api/v1/scans"), env.post("/logout", {"csrftoken": "forged"}),
    ]  # fmt: skip
    for r in responses:
        h = r.headers
        assert h["content-security-policy"] == CSP, r.url
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "'unsafe-inline'" not in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in h  # not over plain HTTP


def test_hsts_when_cookies_are_https_only(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url, CCBB_SECURE_COOKIES=True) as env:
        r = env.get("/login")
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))


INLINE = [
    (r"<script(?![^>]*\bsrc=)[^>]*>", "inline script"),
    (r"\sstyle\s*=", "style attribute"),
    (r"<style", "style element"),
    (r"\son[a-z]+\s*=", "event handler attribute"),
    (r"javascript:", "javascript: URL"),
]


def test_no_page_has_inline_script_or_style(env: Env) -> None:
    """The CSP allows none: every page must work without them."""
    pages = [env.get("/login").text, env.get("/signup").text]
    uid = env.signup("inline@example.com")
    scan = env.make_scan(uid)
    for url in ("/", "/scans/new", "/settings", "/account", f"/scans/{scan}"):
        pages.append(env.get(url).text)
    pages.append(env.post("/scans/new", NEW_SCAN | {"domain": ""}).text)
    for html in pages:
        for pattern, what in INLINE:
            assert not re.search(pattern, html, re.I), (what, re.search(pattern, html, re.I))
    assert '<script src="/static/dashboard.js" defer>' in pages[2]
    assert env.get("/static/dashboard.js").status_code == 200


# ---- sign-up and login throttles -----------------------------------------------------------


def test_sign_up_does_not_say_an_address_exists(env: Env) -> None:
    env.signup("someone@example.com")
    env.client.cookies.clear()
    env.get("/signup")
    r = env.post("/signup", {"email": "someone@example.com", "password": PASSWORD})
    assert r.status_code == 400
    said = " ".join(re.findall(r'<p class="(?:field-error|notice error)"[^>]*>(.*?)</p>', r.text))
    assert said and not re.search(r"exist|taken|registered|in use", said, re.I), said


def test_sign_up_is_throttled_per_address(env: Env) -> None:
    env.get("/signup")
    codes = [env.post("/signup", {"email": "bad", "password": "x"}).status_code
             for _ in range(11)]  # fmt: skip
    assert codes[:10] == [400] * 10 and codes[10] == 429
    r = env.post("/signup", {"email": "late@example.com", "password": PASSWORD})
    assert r.status_code == 429 and "Wait an hour" in r.text


def _login_from(env: Env, ip: str, email: str, password: str) -> Any:
    env.get("/login", headers={"X-Forwarded-For": ip})
    return env.post("/login", {"email": email, "password": password},
                    headers={"X-Forwarded-For": ip})  # fmt: skip


@pytest.fixture
def proxied(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    """The app behind a trusted proxy (the test client's peer name), which says who the
    client is in X-Forwarded-For."""
    with web_env(tmp_path, test_redis_url, CCBB_TRUSTED_PROXIES="testclient") as e:
        yield e


def test_a_locked_account_still_lets_its_owner_in_from_elsewhere(proxied: Env) -> None:
    env = proxied
    env.signup("owner@example.com")
    env.client.cookies.clear()
    for _ in range(5):
        assert (
            _login_from(env, "203.0.113.7", "owner@example.com", "guess guess!").status_code == 400
        )
    assert _login_from(env, "203.0.113.7", "owner@example.com", PASSWORD).status_code == 429
    env.client.cookies.clear()
    assert _login_from(env, "198.51.100.2", "owner@example.com", PASSWORD).status_code == 303


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(env: Env) -> None:
    """An attacker cannot spread its failures over made-up addresses."""
    env.signup("spoof@example.com")
    env.client.cookies.clear()
    for n in range(5):
        r = _login_from(env, f"192.0.2.{n}", "spoof@example.com", "guess guess!")
        assert r.status_code == 400
    assert _login_from(env, "192.0.2.99", "spoof@example.com", PASSWORD).status_code == 429


# ---- malformed input -------------------------------------------------------------------------


def test_deeply_nested_json_is_400(env: Env) -> None:
    uid = env.signup("nested@example.com")

    async def make(session: Any) -> str:
        return (await store_tokens.create_token(session, user_id=uid, name="t"))[1]

    auth = {"Authorization": f"Bearer {env.run(env._with_session(make))}"}
    for body in (b"[" * 30000, b'{"site":' * 6000 + b"1" + b"}" * 6000):
        r = env.client.post("/api/v1/scans", content=body, headers=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_json", r.text[:200]


@pytest.mark.parametrize("page", ["9" * 30, "9" * 5000, "99999999999", "-1", "²", "1e9"])
def test_huge_or_odd_page_numbers_are_clamped(env: Env, page: str) -> None:
    uid = env.signup(f"page{len(page)}{page[:1]}@example.com".replace("²", "sq"))
    scan = env.make_scan(uid)
    for url in (
        f"/?page={page}",
        f"/scans/progress.json?page={page}",
        f"/scans/{scan}?page={page}",
    ):
        assert env.get(url).status_code == 200, url
    for url in (f"/api/v1/scans?offset={page}", f"/api/v1/scans?limit={page}"):
        assert env.client.get(url).status_code in (400, 401)


# ---- kept secrets ----------------------------------------------------------------------------


def _kept(html: str) -> str:
    m = re.search(r'name="secret_kept" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_a_kept_secret_works_for_its_user_only(env: Env) -> None:
    env.signup("keeper@example.com")
    env.get("/scans/new")
    first = env.post("/scans/new", NEW_SCAN | {"secret": SECRET, "partner_tag": "bad tag"})
    kept = _kept(first.text)
    assert SECRET not in first.text
    again = env.post("/scans/new", NEW_SCAN | {"secret_kept": kept})  # the user fixed the tag
    assert again.status_code == 303
    other = env.signup("thief@example.com")
    env.get("/scans/new")
    stolen = env.post("/scans/new", NEW_SCAN | {"secret_kept": kept})
    assert stolen.status_code == 400 and "Give the Credential Secret" in stolen.text
    assert env.scans_of(other) == []


def test_a_saved_credentials_ciphertext_is_no_kept_secret(env: Env) -> None:
    uid = env.signup("cipher@example.com")
    env.make_scan(uid)  # saves credentials (their secret encrypted by the server)
    credential = env.scans_of(uid)[0].credential_id

    async def ciphertext(session: Any) -> str:
        from store.models import AmazonCredential

        row = await session.get(AmazonCredential, credential)
        return str(row.secret_encrypted)

    blob = env.run(env._with_session(ciphertext))
    env.get("/scans/new")
    r = env.post("/scans/new", NEW_SCAN | {"secret_kept": blob})
    assert r.status_code == 400 and "Give the Credential Secret" in r.text


# ---- issue 9, item 12 --------------------------------------------------------------------


@pytest.mark.parametrize("email", ["a@b", "a@@b.com", "a b@c.com", "user@localhost", ".a@b.com"])
def test_sign_up_refuses_implausible_emails(env: Env, email: str) -> None:
    env.get("/signup")
    r = env.post("/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 400 and "Enter an e-mail address such as" in r.text


@pytest.mark.parametrize("credential_id", ["AKIAIOSFODNN7EXAMPLE", " akiaiosfodnn7example "])
def test_old_akia_keys_are_refused_at_save_time(env: Env, credential_id: str) -> None:
    uid = env.signup("akia@example.com")
    env.get("/settings")
    r = env.post("/settings", {"credential_id": credential_id, "secret": SECRET, "version": "2.1",
                               "country": "US", "partner_tag": "mine-20"})  # fmt: skip
    assert r.status_code == 400 and "AKIA" in r.text and "Creators API" in r.text
    r = env.post("/scans/new", NEW_SCAN | {"credential_id": credential_id, "secret": SECRET})
    assert r.status_code == 400 and "AKIA" in r.text
    assert env.scans_of(uid) == []


def test_the_masked_secret_shows_none_of_it(env: Env) -> None:
    env.signup("mask@example.com")
    env.get("/settings")
    env.post("/settings", {"credential_id": "CID-M", "secret": SECRET, "version": "2.1",
                           "country": "US", "partner_tag": "mine-20"})  # fmt: skip
    page = env.get("/settings").text
    masked = re.findall(r"<code>(•+[^<]*)</code>", page)
    assert masked and all(set(m) == {"•"} for m in masked), masked


# ---- info items ---------------------------------------------------------------------------


def test_a_password_change_can_revoke_the_api_tokens(env: Env) -> None:
    uid = env.signup("tokens@example.com")

    async def make(session: Any) -> str:
        return (await store_tokens.create_token(session, user_id=uid, name="t"))[1]

    keep, drop = env.run(env._with_session(make)), env.run(env._with_session(make))
    assert (
        env.client.get("/api/v1/scans", headers={"Authorization": f"Bearer {keep}"}).status_code
        == 200
    )
    page = env.get("/account").text
    assert 'name="revoke_tokens"' in page and "API tokens keep working" in page
    r = env.post("/account", {"current": PASSWORD, "new": "second long password"})
    assert "Password changed." in r.text
    assert (
        env.client.get("/api/v1/scans", headers={"Authorization": f"Bearer {keep}"}).status_code
        == 200
    )
    r = env.post("/account", {"current": "second long password", "new": "third long password",
                              "revoke_tokens": "1"})  # fmt: skip
    assert "API tokens revoked: 2." in r.text
    for token in (keep, drop):
        assert (
            env.client.get(
                "/api/v1/scans", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )
