"""Alembic environment: the app's async engines (``store.db.make_engine``), target
``SQLModel.metadata``.

The URL is, in order: ``alembic -x url=…``, the URL ``store.migrate`` passes, ``sqlalchemy.url``
in alembic.ini, the application's settings. Migrations run in one transaction holding a lock
(PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``), so processes that start together and
all upgrade do it one after the other: the first migrates, the others find the schema current.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import store.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from store.db import async_url, make_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata
MIGRATION_LOCK_KEY = 0x63636262  # "ccbb"


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from ccbb.settings import get_settings

        url = get_settings().sqlalchemy_url
    return async_url(url)


def run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # SQLite alters a table by rebuilding it (CREATE new, copy, DROP old, RENAME); with
        # foreign keys on, the DROP deletes the old rows first and the ON DELETE CASCADE of
        # every child table goes with them (0006_credits rebuilding "user" emptied "scan").
        # The pragma can only change outside a transaction: off here, checked before commit;
        # store.migrate drops the connection afterwards so none is reused with it off.
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


async def run_async_migrations() -> None:
    engine = make_engine(database_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared := config.attributes.get("connection")) is not None:
    run_migrations(shared)  # store.migrate: a connection already in a transaction
else:
    asyncio.run(run_async_migrations())
