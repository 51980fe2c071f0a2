"""Engines and sessions: SQLite (embedded mode) or PostgreSQL through asyncpg.

SQLite is set up for several processes sharing one file: WAL journal (readers never block the
writer), foreign keys enforced, and a busy timeout so a writer waits for another instead of
failing. PostgreSQL connections are checked before use (``pool_pre_ping``), so a database
restart costs a reconnect, not an error.

A PostgreSQL URL may carry libpq's ``options`` parameter, e.g.
``postgresql://u@h/db?options=-csearch_path%3Dccbb`` (one ``-c name=value`` per setting): it is
handed to asyncpg as server settings, as libpq would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT = 10.0  # seconds, for check_database


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message (one line) says which and what to do."""


def async_url(url: str | URL) -> str:
    """The URL with an async driver: ``postgres(ql)://`` → ``postgresql+asyncpg://``,
    ``sqlite://`` → ``sqlite+aiosqlite://``; others unchanged."""
    text_url = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    scheme, sep, rest = text_url.partition("://")
    if not sep:
        return text_url
    if scheme in ("postgres", "postgresql"):
        return "postgresql+asyncpg://" + rest
    if scheme == "sqlite":
        return "sqlite+aiosqlite://" + rest
    return text_url


def make_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``;
    plain ``postgresql://`` and ``sqlite:///`` get the async driver); ``kwargs`` go to
    :func:`~sqlalchemy.ext.asyncio.create_async_engine`."""
    sa_url = make_url(async_url(url))
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        database = sa_url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            # a missing data directory is made; an impossible one is reported on connect
            with contextlib.suppress(OSError):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                private_sqlite_files(Path(database))
        engine = create_async_engine(sa_url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        sa_url, server_settings = _split_pg_options(sa_url)
        if server_settings:
            connect_args = dict(kwargs.pop("connect_args", {}))
            connect_args["server_settings"] = {
                **server_settings,
                **connect_args.get("server_settings", {}),
            }
            kwargs["connect_args"] = connect_args
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(sa_url, **kwargs)
    return create_async_engine(sa_url, **kwargs)


# ---- plain asyncpg, for statements run one at a time in autocommit ---------------------------
# (web.reads for the hottest reads, store.credits.Writes for the common ledger write)

PG_DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
_SA_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")  # not asyncpg's
# what a connection the server dropped (a restart) raises: such a statement may be run again
PG_DROPPED = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """A statement in autocommit leaves no state behind (asyncpg's default reset would spend a
    round trip on ``RESET ALL`` and friends each time a connection goes back to the pool)."""


async def asyncpg_pool(
    url: str | URL,
    *,
    max_size: int,
    min_size: int = 1,
    server_settings: Mapping[str, str] | None = None,
) -> asyncpg.Pool:
    """An asyncpg pool for the PostgreSQL ``url`` (its ``options`` as server settings, as
    :func:`make_engine` does; ``server_settings`` added), for single statements in autocommit:
    no transaction around them, no ping before them, no reset query after them."""
    sa_url, settings = _split_pg_options(make_url(async_url(url)))
    _, kwargs = PG_DIALECT.create_connect_args(sa_url)  # type: ignore[no-untyped-call]
    for key in _SA_ONLY:
        kwargs.pop(key, None)
    merged = {**settings, **(server_settings or {})}
    return await asyncpg.create_pool(
        min_size=min_size,
        max_size=max_size,
        reset=_nothing_to_reset,
        server_settings=merged or None,
        **kwargs,
    )


def compile_for_asyncpg(stmt: Any) -> tuple[str, tuple[str, ...]]:
    """A Core statement with named ``bindparam``s as asyncpg SQL (``$1``…) and the names of its
    parameters in that order. Values go to asyncpg as they are: no SQLAlchemy type processing
    (give aware datetimes, as asyncpg wants for ``timestamptz``)."""
    compiled = stmt.compile(dialect=PG_DIALECT)
    return str(compiled), tuple(compiled.positiontup or ())


SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")


def private_sqlite_files(database: Path) -> None:
    """Make the SQLite file ``database`` readable by its owner only (0600, like the server key),
    creating it so if it is missing; existing WAL, shared-memory and journal files too. SQLite
    gives the WAL and shm files it creates later the database file's own mode."""
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    for suffix in SQLITE_SIDECARS:
        path = Path(f"{database}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep their objects readable after commit (no lazy reloads in async)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def masked_url(url: str | URL) -> str:
    """The URL as it may be shown or logged: password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show nothing of it
        return "<invalid database URL>"


async def check_database(engine: AsyncEngine) -> None:
    """Connect and run ``SELECT 1``. Raises :class:`DatabaseUnavailable` with one line naming
    the database (password masked), the cause, and the fix."""
    problem = _sqlite_path_problem(engine.url)
    if problem is not None:  # say it plainly (and spare aiosqlite a failed connect)
        raise DatabaseUnavailable(_unavailable_message(engine.url, OSError(problem)))
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable(_unavailable_message(engine.url, exc)) from None


def _unavailable_message(url: URL, exc: BaseException) -> str:
    cause: BaseException = getattr(exc, "orig", None) or exc
    reason = " ".join(str(cause).split()) or type(cause).__name__
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {CONNECT_TIMEOUT:g} s"
    password = url.password
    if password:
        reason = reason.replace(str(password), "***")
    reason = reason[:300]
    where = masked_url(url)
    if url.get_backend_name() == "sqlite":
        fix = (
            "check that the data directory (CCBB_DATA_DIR) exists and is writable, or set "
            "DATABASE_URL"
        )
    else:
        fix = (
            "check that the database server is running and reachable, and that DATABASE_URL "
            "names the right host, port, user, password and database"
        )
    return f"database unreachable at {where}: {reason}; {fix}"


def _sqlite_path_problem(url: URL) -> str | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    directory = Path(database).parent
    if not directory.is_dir():
        return f"directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} is not writable"
    return None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, far fewer fsyncs
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _split_pg_options(url: URL) -> tuple[URL, dict[str, str]]:
    """libpq's ``options=-c name=value …`` out of the URL, as asyncpg server settings."""
    options = url.query.get("options")
    if options is None:
        return url, {}
    values = options if isinstance(options, tuple) else (options,)
    settings: dict[str, str] = {}
    for value in values:
        words = shlex.split(value)
        i = 0
        while i < len(words):
            word = words[i]
            if word == "-c" and i + 1 < len(words):
                word = words[i + 1]
                i += 1
            elif word.startswith("-c") or word.startswith("--"):
                word = word[2:]
            else:
                raise ValueError(f"unsupported PostgreSQL option {word!r}: use -c name=value")
            name, sep, setting = word.partition("=")
            if not sep:
                raise ValueError(f"unsupported PostgreSQL option {word!r}: use -c name=value")
            settings[name.replace("-", "_")] = setting
            i += 1
    return url.difference_update_query(["options"]), settings


# ---- PostgreSQL schemas of their own (test runs, benchmarks) ---------------------------------


def url_in_schema(url: str, schema: str) -> str:
    """``url`` with its search_path set to ``schema`` (libpq's ``options``, as above)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


async def run_ddl(url: str, statement: str) -> None:
    """One statement (CREATE SCHEMA, DROP SCHEMA…) in a transaction of its own."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()
