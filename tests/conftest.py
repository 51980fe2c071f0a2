"""Shared fixtures. Redis: ``CCBB_TEST_REDIS_URL`` when set (CI sets the machine's Redis), else
a private embedded Redis for the session (what a laptop without Redis gets)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from ccbb.embedded import EmbeddedRedis, EmbeddedRedisError
from store.db import run_ddl, url_in_schema

PG_ENV = "CCBB_TEST_POSTGRES_URL"
T = TypeVar("T")


@pytest.fixture(scope="session")
def test_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CCBB_TEST_REDIS_URL")
    if url:
        yield url
        return
    data_dir: Path = tmp_path_factory.mktemp("redis")
    try:
        embedded = EmbeddedRedis(data_dir)
        embedded.start()
    except EmbeddedRedisError as exc:
        pytest.skip(f"no Redis for the tests: {exc}")
    try:
        yield embedded.url
    finally:
        embedded.stop(force=True)


# ---- PostgreSQL: a fresh schema per use, in the shared database ----------------------


def _pg_base() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    return url


def _off_loop(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn`` (which may call asyncio.run) in a thread: fixtures may be made while a test's
    event loop runs."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


SchemaFactory = Callable[[], str]


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[SchemaFactory]:
    """Makes PostgreSQL URLs whose search_path is a fresh, empty schema of this test run; the
    schemas are dropped at the end (the database is shared with other runs)."""
    base = _pg_base()
    made: list[str] = []

    def make() -> str:
        schema = f"ccbb_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _off_loop(asyncio.run, run_ddl(base, f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return url_in_schema(base, schema)

    yield make
    for schema in made:
        _off_loop(asyncio.run, run_ddl(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
