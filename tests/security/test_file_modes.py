"""The embedded SQLite database holds users' encrypted secrets and password hashes: it and its
WAL and shared-memory files are readable by their owner only (0600), like the server key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from store.db import make_engine
from store.migrate import upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> object:
    old = os.umask(0o022)  # a usual umask: new files 0644, world-readable
    yield
    os.umask(old)


async def test_a_new_database_and_its_wal_are_private(tmp_path: Path, open_umask: object) -> None:
    db = tmp_path / "data" / "ccbb.sqlite3"
    url = f"sqlite+aiosqlite:///{db}"
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        files = sorted(p.name for p in db.parent.iterdir())
        assert files == ["ccbb.sqlite3", "ccbb.sqlite3-shm", "ccbb.sqlite3-wal"]  # WAL mode
        for name in files:
            assert mode(db.parent / name) == 0o600, name
    finally:
        await engine.dispose()


def test_migrating_a_fresh_database_makes_it_private(tmp_path: Path, open_umask: object) -> None:
    db = tmp_path / "ccbb.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{db}")
    assert mode(db) == 0o600


async def test_an_existing_world_readable_database_is_made_private(
    tmp_path: Path, open_umask: object
) -> None:
    db = tmp_path / "ccbb.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").touch(mode=0o644)
        os.chmod(f"{db}{suffix}", 0o644)
    Path(f"{db}-wal").unlink()
    Path(f"{db}-shm").unlink()
    Path(f"{db}-wal").write_bytes(b"")
    os.chmod(f"{db}-wal", 0o644)
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    for path in db.parent.iterdir():
        assert mode(path) == 0o600, path.name
