"""Starting the application's processes: what they need first (database schema, Redis) and the
one clear line when it is not there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator

from ccbb.embedded import EmbeddedRedis, EmbeddedRedisError, RedisUnavailable, check_redis
from ccbb.settings import Settings, get_settings
from store.db import DatabaseUnavailable, check_database, make_engine
from store.migrate import upgrade

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """Redis or the database cannot be used; the message says which and what to do."""


@contextlib.contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """``REDIS_URL``, or the embedded Redis of the data directory (started or joined)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    try:
        embedded = EmbeddedRedis(settings.data_dir)
        embedded.start()
    except EmbeddedRedisError as exc:
        raise ServiceUnavailable(str(exc)) from None
    try:
        yield embedded.url
    finally:
        embedded.stop()


def prepare_database(settings: Settings) -> None:
    """Check the database answers; on the embedded SQLite, also bring its schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.sqlalchemy_url

    async def check() -> None:
        engine = make_engine(url)
        try:
            await check_database(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except DatabaseUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    if not settings.database_url:
        upgrade(url)


def migrate() -> int:
    settings = get_settings()
    try:
        prepare_database(settings)
        upgrade(settings.sqlalchemy_url)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def run_worker() -> int:
    from arq.worker import run_worker as arq_run_worker

    from ccbb.worker import WorkerSettings, redis_settings

    settings = get_settings()
    logging.getLogger().setLevel(logging.INFO)
    try:
        with redis_url(settings) as url:
            try:
                asyncio.run(check_redis(url))
            except RedisUnavailable as exc:
                raise ServiceUnavailable(str(exc)) from None
            prepare_database(settings)
            arq_run_worker(WorkerSettings, redis_settings=redis_settings(url))  # type: ignore[arg-type]
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def _resolved(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"redis_url": url})


def run_web(host: str, port: int) -> int:
    import uvicorn

    from web.app import create_app

    settings = get_settings()
    try:
        with redis_url(settings) as url:
            try:
                asyncio.run(check_redis(url))
            except RedisUnavailable as exc:
                raise ServiceUnavailable(str(exc)) from None
            prepare_database(settings)
            uvicorn.run(
                create_app(_resolved(settings, url)), host=host, port=port, log_level="info"
            )
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def run_all(host: str, port: int) -> int:
    """The web app and a worker together, on the embedded Redis and SQLite unless REDIS_URL and
    DATABASE_URL say otherwise: one command for one machine."""
    import os
    import subprocess

    import uvicorn

    from web.app import create_app

    settings = get_settings()
    try:
        with redis_url(settings) as url:
            try:
                asyncio.run(check_redis(url))
            except RedisUnavailable as exc:
                raise ServiceUnavailable(str(exc)) from None
            prepare_database(settings)
            worker = subprocess.Popen(
                [sys.executable, "-m", "ccbb.cli", "worker"],
                env={**os.environ, "REDIS_URL": url, "CCBB_DATA_DIR": str(settings.data_dir)},
            )
            try:
                sys.stderr.write(f"ccbb: dashboard at http://{host}:{port}/ (Ctrl-C stops)\n")
                uvicorn.run(
                    create_app(_resolved(settings, url)), host=host, port=port, log_level="info"
                )
            finally:
                worker.terminate()
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return 0


def create_user(email: str, password: str, *, admin: bool) -> int:
    from sqlalchemy.exc import IntegrityError

    from store import users
    from store.db import session_factory
    from web.auth import EMAIL_RE, hash_password, password_problem

    settings = get_settings()
    email = users.normalize_email(email)
    if not EMAIL_RE.match(email):
        sys.stderr.write(f"ccbb: {email!r} is not an e-mail address\n")
        return 2
    if problem := password_problem(password):
        sys.stderr.write(f"ccbb: {problem}\n")
        return 2
    try:
        prepare_database(settings)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1

    async def make() -> None:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                await users.create_user(
                    session, email=email, password_hash=hash_password(password), is_admin=admin
                )
        finally:
            await engine.dispose()

    try:
        asyncio.run(make())
    except IntegrityError:
        sys.stderr.write(f"ccbb: a user {email} exists already\n")
        return 1
    sys.stderr.write(f"ccbb: user {email} created{' (admin)' if admin else ''}\n")
    return 0
