"""schemathesis against the JSON API's own OpenAPI document, on a real ``ccbb web`` (uvicorn)
on a free loopback port, with a real bearer token: whatever the generated requests (valid and
invalid bodies, ids, query strings), the API never answers 5xx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from ccbb.child_processes import free_port
from ccbb.settings import Settings
from store import tokens as store_tokens
from store import users as store_users
from store.db import make_engine, session_factory
from store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


async def _user_with_token(settings: Settings) -> str:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with session_factory(engine)() as session:
            user = await store_users.create_user(
                session, email="fuzz@example.com", password_hash="x"
            )
            assert user.id is not None
            return (await store_tokens.create_token(session, user_id=user.id, name="fuzz"))[1]
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, test_redis_url: str
) -> Iterator[dict[str, str]]:
    data = tmp_path_factory.mktemp("fuzz")
    env = {
        **os.environ,
        "CCBB_DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'ccbb.sqlite3'}",
        "REDIS_URL": test_redis_url,
        "CCBB_QUEUE": f"ccbb:fuzz:{uuid.uuid4().hex}",
        "CCBB_API_RATE": "100000/minute",
    }
    settings = Settings(CCBB_DATA_DIR=data, DATABASE_URL=env["DATABASE_URL"])  # type: ignore[call-arg]
    upgrade(settings.sqlalchemy_url)
    token = asyncio.run(_user_with_token(settings))
    port = free_port()
    log = open(data / "web.log", "wb")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccbb.cli", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (data / "web.log").read_text()[-2000:]
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield {"base": base, "token": token, "log": str(data / "web.log")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_the_api_never_answers_5xx(served: dict[str, str]) -> None:
    """Each operation of the document, 25 generated requests each, with the token and
    without (the plugin's ``parametrize`` does not run on pytest 9: Hypothesis is driven
    here, one operation at a time)."""
    schema = schemathesis.openapi.from_url(served["base"] + "/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    auth = {"Authorization": f"Bearer {served['token']}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_5xx(case: schemathesis.Case) -> None:
            for headers in (auth, {}):
                response = case.call(headers=headers, timeout=30)
                assert response.status_code < 500, (
                    case.as_curl_command(),
                    response.status_code,
                    response.text[:300],
                )

        no_5xx()
