"""The store against real databases: SQLite in a temporary directory always, PostgreSQL when
``CCBB_TEST_POSTGRES_URL`` is set (each test run works in its own schema, dropped at the end).

The round trip uses a real scan of the bundled demo site: what ``finish_scan`` stores,
``report_json`` must give back exactly as ``scanner.report.to_json`` gives it."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from ccbb.demo import run_demo
from ccbb.settings import Settings
from scanner.amazon import ProductResult
from scanner.amazon_urls import AmazonTarget
from scanner.classify import Status
from scanner.crawl import FailedPage, LinkOccurrence, Progress, UnresolvedLink
from scanner.report import summary, to_csv, to_json
from scanner.scan import ScanReport
from store import credentials, scans, users
from store.crypto import SecretBox, SecretKeyError, mask
from store.db import DatabaseUnavailable, check_database, make_engine, session_factory
from store.migrate import alembic_config, current_revision, head_revision, upgrade
from store.models import (
    FINDINGS_TABLES,
    LINK_TABLE,
    PAGE_TABLE,
    PRODUCT_TABLE,
    UNRESOLVED_TABLE,
    AmazonCredential,
    Scan,
)

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")


# ---- databases ----------------------------------------------------------------------------

from tests.conftest import SchemaFactory, _off_loop  # noqa: E402


@pytest.fixture(scope="session")
def pg_url(pg_schemas: SchemaFactory) -> str:
    """One migrated schema shared by the tests of this run (each test makes its own rows)."""
    url = pg_schemas()
    _off_loop(upgrade, url)
    return url


def _empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    make: SchemaFactory = request.getfixturevalue("pg_schemas")
    return make()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ccbb.sqlite3'}"
        _off_loop(upgrade, url)
        return url
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with session_factory(engine)() as session:
        yield session


@pytest.fixture(scope="session")
def demo_report() -> ScanReport:
    report: ScanReport = _off_loop(asyncio.run, run_demo(pages=60, show_progress=False))
    return report


async def _new_scan(session: AsyncSession, report: ScanReport, user_id: int | None = None) -> int:
    scan = await scans.create_scan(
        session,
        user_id=user_id,
        site=report.site,
        marketplace=report.marketplace,
        partner_tag=report.partner_tag,
        options={"cloak_prefixes": ["https://x.example/go/"], "max_pages": 100},
        credential_id=None,
    )
    assert scan.id is not None
    return scan.id


async def _count(session: AsyncSession, table: Table, scan_id: int) -> int:
    stmt = select(func.count()).select_from(table).where(table.c.scan_id == scan_id)
    conn = await session.connection()
    return int((await conn.execute(stmt)).scalar_one())


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# ---- migrations ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migrations_from_empty_to_head_match_the_models(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _empty_url(backend, tmp_path, request)
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    try:
        assert await current_revision(engine) == head_revision()

        def diff(connection: object) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
            return list(compare_metadata(context, SQLModel.metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        # down to nothing and up again
        config = alembic_config(url)
        await asyncio.to_thread(command.downgrade, config, "base")
        assert await current_revision(engine) is None
        await asyncio.to_thread(upgrade, url)
        await asyncio.to_thread(upgrade, url)  # already at head: nothing to do
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_starting_together_all_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _empty_url(backend, tmp_path, request)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "store.migrate", url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"schema at {head_revision()}" in out


# ---- the report round trip ----------------------------------------------------------------


async def test_report_round_trip_is_exact(session: AsyncSession, demo_report: ScanReport) -> None:
    report = demo_report
    assert report.links and report.failed and report.products
    scan_id = await _new_scan(session, report)
    assert await scans.mark_running(session, scan_id=scan_id) == 1
    await scans.finish_scan(session, scan_id=scan_id, report=report)

    got = await scans.report_json(session, scan_id=scan_id)
    assert _dumps(got) == _dumps(to_json(report))  # same keys, values and order
    loaded = await scans.load_report(session, scan_id=scan_id)
    assert to_csv(loaded) == to_csv(report)

    scan = await scans.get_scan(session, scan_id=scan_id)
    assert scan is not None
    assert scan.state == "done"
    assert scan.summary == summary(report)
    assert scan.started_at == report.started_at
    assert scan.finished_at == report.finished_at
    assert scan.pages_crawled == len(report.pages)
    assert scan.options == {"cloak_prefixes": ["https://x.example/go/"], "max_pages": 100}
    link_rows = sum(len(link.target.asins) for link in report.links)
    assert await _count(session, LINK_TABLE, scan_id) == link_rows


def _odd_report() -> ScanReport:
    """What the demo site does not have: a URL too long for a B-tree index entry, a widget with
    three products, one (page, href) twice with different kinds (order of ties), empty and
    missing tags, non-ASCII text, a failed page without status, unresolved links."""
    long_page = "https://site.example/" + "a-very-long-slug/" * 40 + "?q=" + "é" * 3000
    widget = AmazonTarget("www.amazon.com", ("B000000001", "B000000002", "B000000003"),
                          "mytag-20", is_widget=True)  # fmt: skip
    direct = AmazonTarget("www.amazon.de", ("B000000004",), None)
    empty_tag = AmazonTarget("www.amazon.com", ("B000000001",), "")
    other = AmazonTarget("www.amazon.com", ("0306406152",), "someone-20")
    page2 = "https://site.example/b/"
    links = [
        LinkOccurrence(page2, "https://site.example/go/x", "cloaked", other),
        LinkOccurrence(
            long_page, "https://ws-na.amazon-adsystem.com/widgets/q?asins=…", "widget", widget
        ),
        LinkOccurrence(page2, "https://amazon.de/dp/B000000004", "direct", direct),
        LinkOccurrence(page2, "https://site.example/go/x", "short", empty_tag),
        LinkOccurrence("https://site.example/a/", "https://amzn.to/x", "short", widget),
    ]
    products = {
        ("www.amazon.com", "B000000001"): ProductResult(
            "B000000001",
            "www.amazon.com",
            Status.AVAILABLE,
            "Tütü « 1 »",
            "In Stock",
            "https://amazon.com/dp/B000000001",
        ),
        ("www.amazon.com", "B000000002"): ProductResult(
            "B000000002", "www.amazon.com", Status.REMOVED
        ),
        ("www.amazon.com", "B000000003"): ProductResult(
            "B000000003", "www.amazon.com", Status.OUT_OF_STOCK, None, "Currently unavailable."
        ),
        ("www.amazon.de", "B000000004"): ProductResult(
            "B000000004",
            "www.amazon.de",
            Status.ERROR,
            error="no Amazon credentials for www.amazon.de in this scan",
        ),
        ("www.amazon.com", "0306406152"): ProductResult(
            "0306406152", "www.amazon.com", Status.AVAILABLE, "Book"
        ),
    }
    start = datetime(2026, 5, 17, 10, 0, 0, 123456, tzinfo=UTC)
    return ScanReport(
        site="https://site.example/",
        marketplace="www.amazon.com",
        partner_tag="mytag-20",
        started_at=start,
        finished_at=start + timedelta(seconds=42, microseconds=7),
        pages=["https://site.example/a/", page2, long_page],
        failed=[
            FailedPage("https://site.example/z/", 500, "HTTP 500", [page2, long_page]),
            FailedPage("https://site.example/y/", None, "timeout"),
            FailedPage("https://site.example/y/", 404, "HTTP 404"),
        ],
        links=links,
        unresolved=[
            UnresolvedLink(page2, "https://amzn.to/dead", "short", "HTTP 404"),
            UnresolvedLink(page2, "https://amzn.to/dead", "cloaked", "loop"),
            UnresolvedLink(
                "https://site.example/a/",
                "https://site.example/go/none",
                "cloaked",
                "does not lead to an Amazon product",
            ),
        ],
        products=products,
        truncated=True,
        robots_skipped=3,
        api_requests=2,
        timings={"crawl_seconds": 1.5, "total_seconds": 2.25, "http_requests": 17},
    )


async def test_round_trip_of_long_urls_widgets_ties_and_odd_values(session: AsyncSession) -> None:
    report = _odd_report()
    scan_id = await _new_scan(session, report)
    await scans.finish_scan(session, scan_id=scan_id, report=report)
    got = await scans.report_json(session, scan_id=scan_id)
    assert _dumps(got) == _dumps(to_json(report))
    loaded = await scans.load_report(session, scan_id=scan_id)
    assert loaded.pages == report.pages
    assert loaded.failed == report.failed
    assert loaded.unresolved == report.unresolved
    assert [(x.page, x.href, x.kind, x.target.asins, x.target.tag) for x in loaded.links] == [
        (x.page, x.href, x.kind, x.target.asins, x.target.tag) for x in report.links
    ]
    assert await _count(session, LINK_TABLE, scan_id) == 9  # 1 + 3 + 1 + 1 + 3
    assert got["summary"]["tag_audit"] == {"missing_tag": 2, "other_tag": 1}


async def test_finishing_again_leaves_no_duplicates(session: AsyncSession) -> None:
    report = _odd_report()
    scan_id = await _new_scan(session, report)
    assert await scans.mark_running(session, scan_id=scan_id) == 1
    # an attempt checkpointed products, then died; the next one finishes, and finishes again
    await scans.save_products(session, scan_id=scan_id, results=list(report.products.values()))
    assert await scans.mark_running(session, scan_id=scan_id) == 2
    await scans.finish_scan(session, scan_id=scan_id, report=report)
    counts = {t.name: await _count(session, t, scan_id) for t in FINDINGS_TABLES}
    assert counts == {"scan_link": 9, "scan_page": 6, "scan_product": 5, "scan_unresolved": 3}
    await scans.finish_scan(session, scan_id=scan_id, report=report)
    assert {t.name: await _count(session, t, scan_id) for t in FINDINGS_TABLES} == counts
    assert _dumps(await scans.report_json(session, scan_id=scan_id)) == _dumps(to_json(report))
    # a smaller second result replaces the first one entirely
    smaller = replace(report, links=report.links[:1], failed=[], unresolved=[])
    await scans.finish_scan(session, scan_id=scan_id, report=smaller)
    assert await _count(session, LINK_TABLE, scan_id) == 1
    assert await _count(session, PAGE_TABLE, scan_id) == 3
    assert await _count(session, UNRESOLVED_TABLE, scan_id) == 0
    assert _dumps(await scans.report_json(session, scan_id=scan_id)) == _dumps(to_json(smaller))


async def test_finish_is_one_transaction(session: AsyncSession) -> None:
    report = _odd_report()
    scan_id = await _new_scan(session, report)
    await scans.finish_scan(session, scan_id=scan_id, report=report)
    broken = replace(
        report,
        unresolved=[UnresolvedLink("https://site.example/a/", "h", "short", None)],  # type: ignore[arg-type]
    )
    with pytest.raises(Exception):  # noqa: B017  (NOT NULL violation, as the driver words it)
        await scans.finish_scan(session, scan_id=scan_id, report=broken)
    # the failed attempt deleted and wrote nothing: the first result is intact
    assert _dumps(await scans.report_json(session, scan_id=scan_id)) == _dumps(to_json(report))


# ---- scan rows ----------------------------------------------------------------------------


async def test_scans_belong_to_their_user(session: AsyncSession) -> None:
    alice = await users.create_user(
        session, email=f"Alice-{uuid.uuid4().hex}@x.example", password_hash="h"
    )
    bob = await users.create_user(
        session, email=f"bob-{uuid.uuid4().hex}@x.example", password_hash="h"
    )
    assert alice.id is not None and bob.id is not None
    report = _odd_report()
    first = await _new_scan(session, report, user_id=alice.id)
    second = await _new_scan(session, report, user_id=alice.id)
    assert await scans.get_scan(session, scan_id=first, user_id=alice.id) is not None
    assert await scans.get_scan(session, scan_id=first, user_id=bob.id) is None
    assert await scans.get_scan(session, scan_id=first) is not None  # no owner check
    assert await scans.get_scan(session, scan_id=10**9) is None
    assert [s.id for s in await scans.list_scans(session, user_id=alice.id)] == [second, first]
    assert [s.id for s in await scans.list_scans(session, user_id=alice.id, limit=1, offset=1)] == [
        first
    ]
    assert await scans.list_scans(session, user_id=bob.id) == []
    with pytest.raises(scans.ScanNotFound):
        await scans.report_json(session, scan_id=first, user_id=bob.id)
    assert await users.get_user_by_email(session, email=alice.email.upper()) is not None


async def test_states_progress_and_attempts(session: AsyncSession) -> None:
    report = _odd_report()
    scan_id = await _new_scan(session, report)
    progress = Progress("crawling", pages_crawled=3, pages_discovered=9, products_found=4)
    assert not await scans.save_progress(session, scan_id=scan_id, progress=progress)  # queued
    assert await scans.mark_running(session, scan_id=scan_id) == 1
    assert await scans.save_progress(session, scan_id=scan_id, progress=progress)
    scan = await scans.get_scan(session, scan_id=scan_id)
    assert scan is not None
    assert (scan.state, scan.phase, scan.pages_crawled, scan.pages_discovered) == (
        "running",
        "crawling",
        3,
        9,
    )
    assert scan.started_at is not None and scan.started_at.tzinfo is not None
    assert [s.id for s in await scans.unfinished_scans(session) if s.id == scan_id] == [scan_id]
    assert await scans.mark_running(session, scan_id=scan_id) == 2  # picked up again
    assert await scans.fail_scan(session, scan_id=scan_id, reason="site unreachable: check it")
    scan = await scans.get_scan(session, scan_id=scan_id)
    assert scan is not None and (scan.state, scan.error) == ("failed", "site unreachable: check it")
    assert not await scans.cancel_scan(session, scan_id=scan_id)  # already ended
    with pytest.raises(scans.ScanStateError):
        await scans.mark_running(session, scan_id=scan_id)
    with pytest.raises(scans.ScanNotFound):
        await scans.mark_running(session, scan_id=10**9)
    with pytest.raises(scans.ScanNotFound):
        await scans.finish_scan(session, scan_id=10**9, report=report)

    # the state column only takes the five states
    conn = await session.connection()
    with pytest.raises(IntegrityError):
        await conn.execute(text("UPDATE scan SET state = 'paused' WHERE id = :id"), {"id": scan_id})
    await session.rollback()


async def test_a_cancelled_scan_keeps_what_it_found(session: AsyncSession) -> None:
    report = _odd_report()
    scan_id = await _new_scan(session, report)
    await scans.mark_running(session, scan_id=scan_id)
    checked = list(report.products.values())[:2]
    await scans.save_products(session, scan_id=scan_id, results=checked)
    assert await scans.cancel_scan(session, scan_id=scan_id)
    assert not await scans.save_progress(session, scan_id=scan_id, progress=Progress())
    with pytest.raises(scans.ScanStateError):
        await scans.mark_running(session, scan_id=scan_id)
    partial = await scans.report_json(session, scan_id=scan_id)
    assert [p["asin"] for p in partial["products"]] == sorted(p.asin for p in checked)
    # the worker stops and stores what it had: the scan stays cancelled, with its findings
    await scans.finish_scan(session, scan_id=scan_id, report=report)
    scan = await scans.get_scan(session, scan_id=scan_id)
    assert scan is not None and scan.state == "cancelled"
    assert _dumps(await scans.report_json(session, scan_id=scan_id)) == _dumps(to_json(report))
    assert (await scans.load_report(session, scan_id=scan_id)).cancelled


async def test_a_report_stopped_by_its_worker_ends_the_scan_cancelled(
    session: AsyncSession,
) -> None:
    report = replace(_odd_report(), cancelled=True)
    scan_id = await _new_scan(session, report)
    await scans.mark_running(session, scan_id=scan_id)
    await scans.finish_scan(session, scan_id=scan_id, report=report)
    scan = await scans.get_scan(session, scan_id=scan_id)
    assert scan is not None and (scan.state, scan.phase) == ("cancelled", "cancelled")
    assert not await scans.cancel_scan(session, scan_id=scan_id)  # already ended: a no-op
    assert _dumps(await scans.report_json(session, scan_id=scan_id)) == _dumps(to_json(report))


async def test_save_and_load_products_is_idempotent(session: AsyncSession) -> None:
    report = _odd_report()
    scan_id = await _new_scan(session, report)
    results = list(report.products.values())
    await scans.save_products(session, scan_id=scan_id, results=results[:3])
    await scans.save_products(session, scan_id=scan_id, results=results[:3])
    await scans.save_products(session, scan_id=scan_id, results=[])
    assert await scans.load_products(session, scan_id=scan_id) == {
        (r.marketplace, r.asin): r for r in results[:3]
    }
    changed = replace(results[1], status=Status.AVAILABLE, title="Back", availability="In Stock")
    await scans.save_products(session, scan_id=scan_id, results=[*results, changed])
    loaded = await scans.load_products(session, scan_id=scan_id)
    assert loaded == {(r.marketplace, r.asin): r for r in [*results, changed]}
    assert loaded[(changed.marketplace, changed.asin)] == changed
    assert await _count(session, PRODUCT_TABLE, scan_id) == len(results)
    assert await scans.load_products(session, scan_id=10**9) == {}


# ---- secrets ------------------------------------------------------------------------------


async def test_credential_secret_is_stored_encrypted(session: AsyncSession) -> None:
    old_key = "k" * 40
    box = SecretBox.from_key(old_key)
    user = await users.create_user(
        session, email=f"c-{uuid.uuid4().hex}@x.example", password_hash="h"
    )
    assert user.id is not None
    plain = "amzn1.application-oa2-client.SECRET-1234567890abcdef"
    cred = await credentials.create_credential(
        session, box=box, user_id=user.id, credential_id="cid-1", secret=plain,
        version="2.2", country="de", partner_tag="mytag-21", label="EU",
    )  # fmt: skip
    assert cred.id is not None
    conn = await session.connection()
    stored = (
        await conn.execute(
            text("SELECT secret_encrypted FROM amazon_credential WHERE id = :id"), {"id": cred.id}
        )
    ).scalar_one()
    assert plain not in stored and "SECRET" not in stored
    assert plain not in repr(cred)
    got = await scans.get_credential(session, credential_id=cred.id)
    assert isinstance(got, AmazonCredential)
    assert credentials.reveal_secret(got, box=box) == plain
    assert got.country == "DE"
    assert (
        await credentials.get_credential(session, credential_id=cred.id, user_id=user.id + 1)
        is None
    )
    assert await credentials.get_credential(session, credential_id=None) is None
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        credentials.reveal_secret(got, box=SecretBox.from_key("another key " * 4))
    # rotation: the new key first, the old one after it
    assert SecretBox.from_key(f"{'n' * 40},{old_key}").decrypt(stored) == plain
    scan = Scan(site="https://s.example/", credential_id=cred.id)
    session.add(scan)
    await session.commit()
    assert await credentials.delete_credential(session, credential_id=cred.id, user_id=user.id)
    again = await scans.get_scan(session, scan_id=scan.id or 0)
    assert again is not None and again.credential_id is None  # the scan stays, unlinked


def test_embedded_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    settings = Settings(CCBB_DATA_DIR=tmp_path / "data", CCBB_SECRET_KEY=None)  # type: ignore[call-arg]
    token = SecretBox.from_settings(settings).encrypt("s3cret")
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert SecretBox.from_settings(settings).decrypt(token) == "s3cret"  # same key next time
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret.key"]
    configured = Settings(CCBB_DATA_DIR=tmp_path / "d2", CCBB_SECRET_KEY="p" * 32)  # type: ignore[call-arg]
    assert (
        SecretBox.from_settings(configured).decrypt(SecretBox.from_key("p" * 32).encrypt("x"))
        == "x"
    )
    assert not (tmp_path / "d2").exists()
    with pytest.raises(SecretKeyError, match="at least 32"):
        SecretBox.from_key("short")
    assert repr(SecretBox.from_key("p" * 32)) == "<SecretBox>"


def test_mask_shows_no_character_of_the_secret() -> None:
    secret = "amzn1.application-oa2-client.abcd"
    masks = {mask(secret), mask("shortsecret"), mask(""), mask(None)}
    assert masks == {"••••••••"}  # nor its length
    assert not set(mask(secret)) & set(secret)


# ---- reaching the database ----------------------------------------------------------------


async def test_check_database_names_the_database_and_hides_the_password() -> None:
    engine = make_engine("postgresql://ccbb:hunter2-pw@127.0.0.1:1/ccbb")
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await check_database(engine)
    finally:
        await engine.dispose()
    message = str(info.value)
    assert "\n" not in message
    assert "hunter2-pw" not in message
    assert "postgresql+asyncpg://ccbb:***@127.0.0.1:1/ccbb" in message
    assert "DATABASE_URL" in message


async def test_check_database_on_an_impossible_sqlite_path() -> None:
    engine = make_engine("sqlite:////proc/no-such-dir/ccbb.sqlite3")
    try:
        with pytest.raises(
            DatabaseUnavailable,
            match=r"^database unreachable at sqlite\+aiosqlite:////proc/no-such-dir/ccbb.sqlite3: "
            r"directory /proc/no-such-dir does not exist; .*CCBB_DATA_DIR",
        ):
            await check_database(engine)
    finally:
        await engine.dispose()


async def test_check_database_when_it_is_there(engine: AsyncEngine) -> None:
    await check_database(engine)
