"""Every route of the app, enumerated from its route table (a new route cannot be forgotten):
tried from another account (IDOR: 404 and nothing changed), without or with a foreign CSRF
token (403 unless it is explicitly bearer-only), and with oversized and malformed bodies (no
5xx, and no more than the body limit read, whatever the client streams)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from store import credentials as store_credentials
from store import monitoring as store_monitoring
from store import tokens as store_tokens
from tests.test_web_scans import Env, web_env
from web import affiliate_api, api, credits_api, csrf, monitoring_api
from web.body_limit import DEFAULT_LIMIT

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# routes that take no cookie at all: the JSON APIs (a bearer token, the merchant's Basic key, or
# nothing)
BEARER_ONLY = {
    route.path
    for module in (api, credits_api, monitoring_api, affiliate_api)
    for route in module.routes
    if isinstance(route, Route)
}
# path parameters that name nothing a user owns (a catalogue item, an upsell step, the credits
# API's project, a signed single-use token, a public referral id): other parameters must name an object of Victim's
NOT_OWNED = {"sku", "flow", "step", "project_id", "token", "ref"}
WEBHOOKS = {"/clickbank/ins"}  # routes called by another service (their own proof of origin)


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def app_routes(env: Env) -> list[Route]:
    app = env.client.app
    while not isinstance(app, Starlette):  # the middleware that wrap it
        app = app.app  # type: ignore[attr-defined]
    routes = [r for r in app.routes if isinstance(r, Route)]
    mounts = [r for r in app.routes if isinstance(r, Mount)]
    assert [m.path for m in mounts] == ["/static"]  # static files: GET only
    return routes


def methods_of(route: Route) -> set[str]:
    return set(route.methods or {"GET"}) - {"HEAD"}


class Victim:
    """Account A with one of everything a route can name by id."""

    def __init__(self, env: Env) -> None:
        self.user = env.signup("victim@example.com")
        self.scan = env.make_scan(self.user)
        self.credential = env.scans_of(self.user)[0].credential_id

        async def make(session: Any) -> int:
            row, _ = await store_tokens.create_token(session, user_id=self.user, name="a")
            assert row.id is not None
            return row.id

        self.token = env.run(env._with_session(make))

        async def channel(session: Any) -> int:
            row = await store_monitoring.create_channel(
                session, user_id=self.user, kind="email", label="me",
                target_encrypted="x", secret_encrypted=None, alert_on="broken",
                weekly_summary=False,
            )  # fmt: skip
            assert row.id is not None
            return row.id

        self.channel = env.run(env._with_session(channel))
        self.ids = {"scan_id": self.scan, "credential_id": self.credential, "token_id": self.token,
                    "channel_id": self.channel, "sku": "plan_pro", "flow": "main", "step": "1",
                    "project_id": "ccbb", "token": "x", "ref": "NOSUCHREF"}  # fmt: skip

    def url(self, route: Route) -> str:
        path = route.path
        for name in route.param_convertors:
            if name not in self.ids:
                pytest.fail(f"{route.path}: add an object with a {name} to the IDOR test")
            path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", str(self.ids[name]), path)
        return path

    def unchanged(self, env: Env) -> None:
        scans = env.scans_of(self.user)
        assert [(s.id, s.state) for s in scans] == [(self.scan, "queued")]

        async def still(session: Any) -> tuple[bool, int]:
            credential = await store_credentials.get_credential(
                session, credential_id=self.credential
            )
            tokens = await store_tokens.list_tokens(session, user_id=self.user)
            return credential is not None, len(tokens)

        assert env.run(env._with_session(still)) == (True, 1)


def _bearer(env: Env, user: int) -> dict[str, str]:
    async def make(session: Any) -> str:
        return (await store_tokens.create_token(session, user_id=user, name="b"))[1]

    return {"Authorization": f"Bearer {env.run(env._with_session(make))}"}


def test_every_id_bearing_route_is_404_from_another_account(env: Env) -> None:
    victim = Victim(env)
    other = env.signup("other@example.com")
    bearer = _bearer(env, other)
    env.get("/")
    token = env.client.cookies["csrftoken"]
    tried = []
    for route in app_routes(env):
        if not set(route.param_convertors) - NOT_OWNED:
            continue
        for method in methods_of(route):
            url = victim.url(route)
            headers = {"X-CSRFToken": token} | (bearer if url.startswith("/api/") else {})
            r = env.client.request(method, url, headers=headers, follow_redirects=False)
            assert r.status_code == 404, (method, url, r.status_code, r.text[:200])
            tried.append((method, route.path))
    assert len(tried) >= 10, tried
    victim.unchanged(env)
    assert env.scans_of(other) == []


def test_every_state_changing_route_checks_csrf_or_takes_no_cookie(env: Env) -> None:
    """A route that changes state is CSRF-checked, or listed as bearer-only (it must then
    ignore a session cookie) or as a webhook: a new route cannot slip through unchecked."""
    victim = Victim(env)
    env.get("/")
    foreign = env.client.cookies["csrftoken"]
    session = env.client.cookies["ccbb_session"]
    env.client.cookies.clear()
    env.get("/login")  # another browser's token, valid for its own session only
    foreign = env.client.cookies["csrftoken"]
    env.client.cookies.clear()
    env.client.cookies.set("ccbb_session", session)
    checked, bearer_only = [], []
    for route in app_routes(env):
        for method in methods_of(route) & UNSAFE:
            url = victim.url(route) if route.param_convertors else route.path
            if csrf.is_exempt(route.path):
                assert route.path in BEARER_ONLY | WEBHOOKS, (
                    f"{method} {route.path} skips CSRF but is neither bearer-only nor a webhook"
                )
                if route.path in BEARER_ONLY:  # the session cookie is worth nothing there
                    r = env.client.request(method, url, follow_redirects=False)
                    # 404: the credits API's server methods without merchant settings
                    assert r.status_code in (401, 404), (method, url, r.status_code)
                    bearer_only.append(route.path)
                continue
            for headers, data in (({}, {}), ({"X-CSRFToken": foreign}, {}),
                                  ({}, {"csrftoken": foreign}),
                                  ({"Authorization": "Bearer ccbb_x"}, {})):  # fmt: skip
                r = env.client.request(method, url, headers=headers, data=data,
                                       follow_redirects=False)  # fmt: skip
                assert r.status_code == 403, (method, url, headers, r.status_code)
            checked.append(route.path)
    assert {"/login", "/signup", "/logout", "/scans/new", "/account/delete"} <= set(checked)
    assert bearer_only
    victim.unchanged(env)


MALFORMED = [
    ("application/x-www-form-urlencoded", b"email=\xff\xfe&password=%ZZ&&=&csrftoken=\xc3\x28"),
    ("multipart/form-data", b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb'),
    ("multipart/form-data; boundary=x", b"--x\r\nnot a header\r\n\r\n--x--"),
    ("multipart/form-data; boundary=x", b"garbage without any boundary"),
    ("application/json", b"{not json"),
    ("application/json", b"[" * 30000),
    ("application/json", b'{"site": ' * 5000),
    ("application/json; charset=idna", b'{"site": "a"}'),
    ("text/plain; charset=\xff", b"\xff\xfe"),
]


def test_malformed_bodies_on_every_route_never_give_a_5xx(env: Env) -> None:
    victim = Victim(env)
    env.get("/")
    token = env.client.cookies["csrftoken"]
    bearer = _bearer(env, victim.user)
    for route in app_routes(env):
        for method in methods_of(route):
            url = victim.url(route) if route.param_convertors else route.path
            for content_type, body in MALFORMED:
                headers = {"Content-Type": content_type.encode("latin-1"), "X-CSRFToken": token}
                if url.startswith("/api/"):
                    headers |= bearer
                r = env.client.request(method, url, content=body, headers=headers,
                                       follow_redirects=False)  # fmt: skip
                assert r.status_code < 500, (method, url, content_type, r.status_code, r.text[:300])
                assert "Traceback" not in r.text


def test_oversized_bodies_on_every_route_are_413(env: Env) -> None:
    victim = Victim(env)
    env.get("/")
    token = env.client.cookies["csrftoken"]
    big = b"a=" + b"x" * (DEFAULT_LIMIT + 1)
    for route in app_routes(env):
        for method in methods_of(route):
            url = victim.url(route) if route.param_convertors else route.path
            r = env.client.request(method, url, content=big, follow_redirects=False,
                                   headers={"X-CSRFToken": token,
                                            "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            assert r.status_code == 413, (method, url, r.status_code)


def test_a_streamed_body_is_never_read_past_the_limit_on_any_route(env: Env) -> None:
    """At the ASGI level (as uvicorn hands a chunked upload over): 100 MB offered, at most the
    limit and one chunk taken, whatever the route, the method or the client's session."""
    victim = Victim(env)
    env.get("/")
    cookie = "; ".join(f"{k}={v}" for k, v in env.client.cookies.items())
    token = env.client.cookies["csrftoken"]
    chunk = 65536

    async def stream(method: str, path: str) -> tuple[int, int]:
        pulled = 0
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal pulled
            pulled += chunk
            return {"type": "http.request", "body": b"x" * chunk, "more_body": pulled < 100 << 20}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
            "headers": [(b"cookie", cookie.encode()), (b"x-csrftoken", token.encode()),
                        (b"content-type", b"application/x-www-form-urlencoded"),
                        (b"host", b"testserver")],
        }  # fmt: skip
        await env.client.app(scope, receive, send)
        return status, pulled

    for route in app_routes(env):
        for method in methods_of(route):
            url = victim.url(route) if route.param_convertors else route.path
            status, pulled = env.client.portal.call(stream, method, url)  # type: ignore[union-attr]
            assert status < 500 and pulled <= DEFAULT_LIMIT + chunk, (method, url, status, pulled)


def test_ids_past_what_a_row_can_have_are_404(env: Env) -> None:
    """9223372036854775808 overflowed the database driver (500, found by schemathesis)."""
    uid = env.signup("huge@example.com")
    env.get("/")
    headers = {"X-CSRFToken": env.client.cookies["csrftoken"]} | _bearer(env, uid)
    for route in app_routes(env):
        if ":int}" not in route.path:  # ids (a sku or a signed token is no row's id)
            continue
        for method in methods_of(route):
            for huge in (2**31, 2**63, 10**30):
                url = re.sub(r"\{\w+:int\}", str(huge), route.path)
                r = env.client.request(method, url, headers=headers, follow_redirects=False)
                assert r.status_code == 404, (method, url, r.status_code)
