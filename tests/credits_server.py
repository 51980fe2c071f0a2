"""The dashboard app served by uvicorn on a loopback port, in a thread: what the credits API
tests talk to with a real HTTP client (httpx over a socket)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from ccbb.settings import Settings
from store import tokens, users
from store.db import make_engine, session_factory
from web.app import create_app


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` on 127.0.0.1 (a free port); yield its base URL."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_user(settings: Settings, email: str) -> tuple[int, str]:
    """A user and a personal API token of theirs: (user id, token)."""

    async def go() -> tuple[int, str]:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                user = await users.create_user(session, email=email, password_hash="x")
                assert user.id is not None
                _, token = await tokens.create_token(session, user_id=user.id, name="test")
                return user.id, token
        finally:
            await engine.dispose()

    return asyncio.run(go())


def in_db(settings: Settings, fn: Any) -> Any:
    """``await fn(session)`` on the app's database, from test code."""

    async def go() -> Any:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())
