"""Accounts through the real app (Starlette TestClient), a real SQLite database and Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ccbb.settings import Settings
from store.migrate import upgrade
from web.app import create_app

PASSWORD = "a long enough password"


@pytest.fixture
def app_settings(tmp_path: Path, test_redis_url: str) -> Settings:
    url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    settings = Settings(CCBB_DATA_DIR=tmp_path, DATABASE_URL=url, REDIS_URL=test_redis_url)  # type: ignore[call-arg]
    upgrade(settings.sqlalchemy_url)
    return settings


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), base_url="http://testserver") as c:
        c.app_state = None  # type: ignore[attr-defined]
        yield c


def csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    return client.cookies["csrftoken"]


def signup(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf(client, "/signup")
    return client.post("/signup", data={"email": email, "password": password, "csrftoken": token},
                       follow_redirects=False)  # fmt: skip


def login(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    token = csrf(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrftoken": token},
                       follow_redirects=False)  # fmt: skip


def unique(name: str) -> str:
    import uuid

    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def test_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/settings", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    home = client.get("/", follow_redirects=False)  # a visitor gets the public home page
    assert home.status_code == 200 and "Your scans" not in home.text
    assert client.get("/healthz").json() == {"ok": True}


def test_sign_up_log_out_log_in(client: TestClient) -> None:
    email = unique("ann")
    assert signup(client, email).status_code == 303
    assert client.get("/").status_code == 200
    cookie = client.cookies.get("ccbb_session")
    assert cookie
    token = client.cookies["csrftoken"]
    assert (
        client.post("/logout", data={"csrftoken": token}, follow_redirects=False).status_code == 303
    )
    assert client.get("/settings", follow_redirects=False).status_code == 303
    assert login(client, email).status_code == 303
    assert client.get("/").status_code == 200


def test_session_cookie_is_http_only_and_same_site(client: TestClient) -> None:
    response = signup(client, unique("cookie"))
    cookies = response.headers.get_list("set-cookie")
    header = next(h for h in cookies if h.startswith("ccbb_session="))
    assert "httponly" in header.lower() and "samesite=lax" in header.lower()


def test_bad_sign_up_says_what_to_fix_and_keeps_the_email(client: TestClient) -> None:
    response = signup(client, "not-an-email", "short")
    assert response.status_code == 400
    assert "Enter an e-mail address" in response.text and "at least 10 characters" in response.text
    assert 'value="not-an-email"' in response.text


def test_wrong_password_and_unknown_email_look_the_same(client: TestClient) -> None:
    email = unique("bob")
    signup(client, email)
    client.cookies.clear()
    wrong = login(client, email, "not the password!!")
    unknown = login(client, unique("nobody"), "not the password!!")
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong e-mail or password." in wrong.text and "Wrong e-mail or password." in unknown.text
    taken = signup(client, email)  # does not say "exists"
    assert "exists" not in taken.text.lower()


def test_login_attempts_are_throttled_per_account(client: TestClient) -> None:
    email = unique("carol")
    signup(client, email)
    client.cookies.clear()
    for _ in range(5):
        assert login(client, email, "wrong password!!").status_code == 400
    blocked = login(client, email)  # even the right password, for a while
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.text


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_forms_without_a_valid_csrf_token_are_refused(
    client: TestClient, token: str | None
) -> None:
    csrf(client, "/signup")
    data = {"email": unique("dan"), "password": PASSWORD}
    if token:
        data["csrftoken"] = token
    response = client.post("/signup", data=data, follow_redirects=False)
    assert response.status_code == 403


def test_changing_the_password_ends_other_sessions(client: TestClient) -> None:
    """Two browsers of one user: one client whose cookie jar is swapped (two TestClients on one
    app would run two event loops over one Redis pool)."""
    email = unique("eve")
    signup(client, email)
    first = dict(client.cookies)
    client.cookies.clear()
    login(client, email)
    second = dict(client.cookies)
    assert client.get("/settings", follow_redirects=False).status_code == 200

    client.cookies.clear()
    client.cookies.update(first)
    token = csrf(client, "/account")
    changed = client.post("/account", data={"current": PASSWORD, "new": "another long password",
                                            "csrftoken": token})  # fmt: skip
    assert "Password changed." in changed.text
    assert client.get("/settings", follow_redirects=False).status_code == 200  # this one goes on
    client.cookies.clear()
    client.cookies.update(second)
    assert client.get("/settings", follow_redirects=False).status_code == 303  # the other ends


def test_user_create_from_the_command_line(tmp_path: Path) -> None:
    env = {"CCBB_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "ccbb.cli", "user", "create", "root@example.com",
                         "--password-stdin", "--admin"], input=PASSWORD + "\n", env=env,
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run([sys.executable, "-m", "ccbb.cli", "user", "create", "root@example.com",
                            "--password-stdin"], input=PASSWORD + "\n", env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr
    assert PASSWORD not in ok.stderr + again.stderr
