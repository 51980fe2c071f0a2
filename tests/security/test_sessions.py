"""Sessions are server-side and end when they should: a copied cookie stops working after
logout, "log out everywhere", a password change (the other sessions) and account deletion."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from store.db import make_engine
from store.sessions import SESSION_TABLE, hash_session_id
from tests.test_web_scans import PASSWORD, Env, web_env
from web import auth


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


class Browser:
    """Another browser: its own cookie jar, through the test client of ``env`` (one app, one
    event loop)."""

    def __init__(self, env: Env, cookies: dict[str, str] | None = None) -> None:
        self.env = env
        self.jar = httpx.Cookies(cookies or {})

    @contextmanager
    def active(self) -> Iterator[TestClient]:
        saved = self.env.client.cookies
        self.env.client.cookies = self.jar
        try:
            yield self.env.client
        finally:
            self.jar = self.env.client.cookies
            self.env.client.cookies = saved


def copy_of(env: Env) -> Browser:
    """A browser holding a copy of this one's session cookie."""
    return Browser(env, {"ccbb_session": env.client.cookies["ccbb_session"]})


def logged_in(who: TestClient | Browser) -> bool:
    if isinstance(who, Browser):
        with who.active() as client:
            return logged_in(client)
    return who.get("/settings", follow_redirects=False).status_code == 200


def test_a_copied_cookie_stops_working_after_logout(env: Env) -> None:
    env.signup("copy@example.com")
    thief = copy_of(env)
    assert logged_in(thief)
    assert env.post("/logout").status_code == 303
    assert not logged_in(env.client)
    assert not logged_in(thief)


def test_a_session_ended_elsewhere_ends_here_within_the_cache_time(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another web process keeps its cached session USER_CACHE_SECONDS at most."""
    env.signup("cache@example.com")
    thief = copy_of(env)
    assert logged_in(thief)  # cached now
    sid = env.client.cookies["ccbb_session"]

    async def delete_row() -> None:  # as another process's logout would
        engine = make_engine(env.settings.sqlalchemy_url)
        async with engine.begin() as conn:
            await conn.execute(
                SESSION_TABLE.delete().where(SESSION_TABLE.c.id_hash == hash_session_id(sid))
            )
        await engine.dispose()

    asyncio.run(delete_row())
    assert logged_in(thief)  # still in this process's cache…
    real = auth.time.monotonic
    monkeypatch.setattr(auth.time, "monotonic", lambda: real() + auth.USER_CACHE_SECONDS + 0.1)
    assert not logged_in(thief)  # …for USER_CACHE_SECONDS at most


def test_log_out_everywhere(env: Env) -> None:
    env.signup("every@example.com")
    thief = copy_of(env)
    second = Browser(env)
    with second.active() as client:
        client.get("/login")
        client.post("/login", data={"email": "every@example.com", "password": PASSWORD,
                                    "csrftoken": client.cookies["csrftoken"]})  # fmt: skip
    assert logged_in(second) and logged_in(thief)
    page = env.get("/account")
    assert 'action="/logout/everywhere"' in page.text
    r = env.post("/logout/everywhere")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert "every device" in env.get("/login?everywhere=1").text
    assert not logged_in(env.client) and not logged_in(thief) and not logged_in(second)


def test_password_change_ends_the_other_sessions_but_this_one(env: Env) -> None:
    env.signup("pw@example.com")
    thief = copy_of(env)
    r = env.post("/account", {"current": PASSWORD, "new": "another long password"})
    assert "Password changed." in r.text
    assert logged_in(env.client)
    assert not logged_in(thief)  # the old cookie (the session id changed too)


def test_account_deletion_ends_its_sessions(env: Env) -> None:
    env.signup("gone@example.com")
    thief = copy_of(env)
    assert env.post("/account/delete", {"password": PASSWORD}).status_code == 303
    assert not logged_in(thief)


def test_the_cookie_is_opaque_and_only_its_hash_is_stored(env: Env) -> None:
    env.signup("opaque@example.com")
    sid = env.client.cookies["ccbb_session"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)
    for piece in sid.split("."):  # nothing decodes to JSON with the user id
        try:
            decoded = base64.urlsafe_b64decode(piece + "==")
        except ValueError:
            continue
        assert b"user_id" not in decoded

    async def stored() -> list[str]:
        engine = make_engine(env.settings.sqlalchemy_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(SESSION_TABLE.c.id_hash))).scalars().all()
        await engine.dispose()
        return list(rows)

    hashes = asyncio.run(stored())
    assert hash_session_id(sid) in hashes and sid not in hashes


def test_login_gives_a_new_session_id(env: Env) -> None:
    """Session fixation: the pre-session id an attacker may have planted is not kept."""
    env.signup("fix@example.com")
    env.post("/logout")
    env.get("/login")
    before = env.client.cookies["ccbb_session"]
    r = env.post("/login", {"email": "fix@example.com", "password": PASSWORD})
    assert r.status_code == 303
    assert env.client.cookies["ccbb_session"] != before
