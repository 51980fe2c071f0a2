"""CSRF: every state-changing form, before and after login, with the token bound to the
browser's session (``web.csrf``), through the real app, a real database and Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_web_scans import PASSWORD, Env, web_env


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def page_token(html: str) -> str:
    m = re.search(r'name="csrftoken" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def test_login_without_cookies_is_refused(env: Env) -> None:
    """Login CSRF: a third-party page posts the attacker's e-mail and password."""
    env.signup("attacker@example.com")
    env.client.cookies.clear()
    r = env.client.post("/login", data={"email": "attacker@example.com", "password": PASSWORD},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert "ccbb_session" not in r.headers.get("set-cookie", "") or "Max-Age=0" in r.headers.get(
        "set-cookie", ""
    )
    assert env.client.get("/settings", follow_redirects=False).status_code == 303


def test_signup_without_cookies_is_refused(env: Env) -> None:
    env.client.cookies.clear()
    r = env.client.post("/signup", data={"email": "forced@example.com", "password": PASSWORD},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 403


def test_a_token_of_another_browser_is_refused(env: Env) -> None:
    """The token is bound to its session: the attacker's own (valid) token does not do."""
    env.client.cookies.clear()
    attacker = page_token(env.get("/login").text)
    env.client.cookies.clear()
    env.get("/login")  # the victim's pre-session
    r = env.client.post("/login", data={"email": "a@example.com", "password": PASSWORD,
                                        "csrftoken": attacker}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403


def test_login_form_works_with_its_token(env: Env) -> None:
    env.signup("ok@example.com")
    env.client.cookies.clear()
    token = page_token(env.get("/login").text)
    r = env.client.post("/login", data={"email": "ok@example.com", "password": PASSWORD,
                                        "csrftoken": token}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert env.client.get("/settings").status_code == 200


def test_a_bearer_header_does_not_skip_csrf_on_a_cookie_route(env: Env) -> None:
    uid = env.signup("bearer@example.com")
    scan = env.make_scan(uid)
    r = env.client.post(f"/scans/{scan}/cancel", headers={"Authorization": "Bearer whatever"},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert env.scan(scan).state == "queued"


def test_multipart_post_with_a_cookie_does_not_crash(env: Env) -> None:
    env.signup("multi@example.com")
    r = env.client.post("/account", files={"current": ("a.txt", b"x" * 10)},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 403, r.text[:300]


def test_multipart_post_with_its_token_is_accepted(env: Env) -> None:
    env.signup("multi2@example.com")
    token = page_token(env.get("/account").text)
    r = env.client.post("/account", data={"csrftoken": token, "current": "wrong", "new": "x"},
                        files={"f": ("a.txt", b"x")}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 400 and "This is not your current password." in r.text


def test_non_utf8_cookie_header_does_not_crash(env: Env) -> None:
    env.client.cookies.clear()
    r = env.client.post("/login", headers={"Cookie": b"csrftoken=\xe9\xff; ccbb_session=\xc3\x28\xff"},
                        content=b"email=a&password=b", follow_redirects=False)  # fmt: skip
    assert r.status_code == 403


def test_non_utf8_form_body_does_not_crash(env: Env) -> None:
    env.client.cookies.clear()
    token = page_token(env.get("/login").text)
    body = b"email=\xff\xfe%FF&password=\xe9&csrftoken=" + token.encode()
    r = env.client.post("/login", content=body, follow_redirects=False,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code in (400, 403) and "Traceback" not in r.text, r.text[:300]
    assert r.status_code == 400
