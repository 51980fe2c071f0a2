"""Schema migrations (Alembic, ``migrations/`` at the repository root), run from the code.

Embedded mode upgrades at start (:func:`upgrade`, or :func:`upgrade_async` inside an event
loop); production runs ``alembic upgrade head`` (or ``python -m store.migrate``) once, as its own
service, and the app only checks (:func:`check_schema`). Concurrent upgrades are serialised by
a lock taken in ``migrations/env.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import make_engine, masked_url

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"


class SchemaOutdated(Exception):
    """The database schema is not the one this code expects; the message says what to run."""


def alembic_config(url: str | None = None) -> Config:
    """The Alembic configuration, for ``url`` if given (else env.py's usual sources)."""
    ini = ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["configure_logger"] = False  # leave the application's logging alone
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``. Synchronous: it runs its own event loop,
    so call it before starting one, or use :func:`upgrade_async` from async code."""

    async def run() -> None:
        engine = make_engine(url)
        try:
            await upgrade_async(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """:func:`upgrade` on an engine, from inside an event loop (one transaction)."""
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
    if engine.dialect.name == "sqlite":
        # the migration turned foreign keys off on its connection (migrations/env.py): no
        # pooled connection may keep that; new ones turn them on again (store.db)
        await engine.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def check_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at the latest revision."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutdated(
            f"database {masked_url(engine.url)} is at schema revision {current or 'none'}, this "
            f"code needs {head}: run `ccbb migrate` (or the compose service `migrate`) first"
        )


def main() -> None:
    """``python -m store.migrate [URL]``: upgrade to head (the settings' database by default)."""
    if len(sys.argv) > 1:
        url = sys.argv[1]
    else:
        from ccbb.settings import get_settings

        url = get_settings().sqlalchemy_url
    upgrade(url)
    print(f"{masked_url(url)}: schema at {head_revision()}")


if __name__ == "__main__":
    main()
