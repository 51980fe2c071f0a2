"""The dashboard's scan pages against a real SQLite database and a real Redis: New Scan
(validation, storing and queueing), the dashboard and its progress JSON, cancel / re-run,
ownership (404), CSRF, the report (summary, donut, filters, sort, pagination), the CSV export
and the settings page (credentials; the secret never shown)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis as sync_redis
from starlette.testclient import TestClient

from ccbb import jobs
from ccbb.demo import run_demo
from ccbb.settings import Settings
from scanner.scan import ScanReport
from store import credentials as store_credentials
from store import scans as store_scans
from store import users as store_users
from store.crypto import SecretBox
from store.db import make_engine, session_factory
from store.migrate import upgrade
from web.app import create_app
from web.charts import donut

SECRET = "sEcReT-value-0123456789-abcdefXYZ"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def demo_report() -> ScanReport:
    return asyncio.run(run_demo(pages=60, show_progress=False))


class Env:
    def __init__(self, client: TestClient, settings: Settings, redis_url: str) -> None:
        self.client = client
        self.settings = settings
        self.redis = sync_redis.Redis.from_url(redis_url)
        self.html: list[str] = []  # every HTML page seen, for the secret check

    # -- HTTP ---------------------------------------------------------------------------

    def get(self, url: str, **kw: Any) -> Any:
        response = self.client.get(url, **kw)
        if response.headers.get("content-type", "").startswith("text/html"):
            self.html.append(response.text)
        return response

    def post(self, url: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
        body = {"csrftoken": self.client.cookies.get("csrftoken", ""), **(data or {})}
        response = self.client.post(url, data=body, follow_redirects=False, **kw)
        if response.headers.get("content-type", "").startswith("text/html"):
            self.html.append(response.text)
        return response

    def signup(self, email: str) -> int:
        self.client.cookies.clear()
        self.get("/signup")
        r = self.post("/signup", {"email": email, "password": PASSWORD})
        assert r.status_code == 303, r.text
        return self.run(self._user_id(email))

    # -- database -----------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    async def _with_session(self, fn: Any) -> Any:
        engine = make_engine(self.settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                return await fn(session)
        finally:
            await engine.dispose()

    async def _user_id(self, email: str) -> int:
        async def go(session: Any) -> int:
            user = await store_users.get_user_by_email(session, email=email)
            assert user is not None and user.id is not None
            return user.id

        return int(await self._with_session(go))

    def scan(self, scan_id: int) -> Any:
        return self.run(self._with_session(lambda s: store_scans.get_scan(s, scan_id=scan_id)))

    def scans_of(self, user_id: int) -> list[Any]:
        return list(
            self.run(self._with_session(lambda s: store_scans.list_scans(s, user_id=user_id)))
        )

    def make_scan(self, user_id: int, report: ScanReport | None = None, site: str = "") -> int:
        """A scan of the user (finished with ``report`` when given)."""

        async def go(session: Any) -> int:
            credential = await store_credentials.create_credential(
                session,
                box=SecretBox.from_settings(self.settings),
                user_id=user_id,
                credential_id="CID-made",
                secret=SECRET,
                partner_tag="demo-20",
            )
            scan = await store_scans.create_scan(
                session,
                user_id=user_id,
                site=site or (report.site if report else "https://made.example/"),
                marketplace="www.amazon.com",
                partner_tag="demo-20",
                options={"cloak_prefixes": [], "tps": 1.0},
                credential_id=credential.id,
            )
            assert scan.id is not None
            if report is not None:
                await store_scans.mark_running(session, scan_id=scan.id)
                await store_scans.finish_scan(session, scan_id=scan.id, report=report)
            return scan.id

        return int(self.run(self._with_session(go)))


@contextmanager
def web_env(tmp_path: Path, redis_url: str, **settings_env: Any) -> Iterator[Env]:
    """The dashboard on a fresh migrated SQLite database and ``redis_url``, behind a test
    client (``settings_env``: more Settings, by their environment names)."""
    settings = Settings(
        CCBB_DATA_DIR=tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'ccbb.sqlite3'}",
        REDIS_URL=redis_url,
        CCBB_QUEUE=f"ccbb:test:{uuid.uuid4().hex}",
        **settings_env,
    )
    upgrade(settings.sqlalchemy_url)
    with TestClient(create_app(settings)) as client:
        e = Env(client, settings, redis_url)
        # the test Redis is ours; ids restart at 1 with each test's database, so what earlier
        # tests left (progress of scan 1, throttling counters of user 1…) would be taken as ours
        e.redis.flushdb()
        try:
            yield e
        finally:
            e.redis.close()


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def _field_error(html: str, field: str) -> str:
    m = re.search(rf'<p class="field-error" id="err-{field}">(.*?)</p>', html, re.S)
    return m.group(1) if m else ""


# ---- new scan ---------------------------------------------------------------------------


def test_new_scan_validation_keeps_input(env: Env) -> None:
    env.signup("a@example.com")
    assert env.get("/scans/new").status_code == 200
    r = env.post(
        "/scans/new",
        {
            "domain": "not a domain",
            "saved_credential": "",
            "credential_id": "",
            "secret": SECRET,
            "version": "9.9",
            "country": "US",
            "partner_tag": "bad tag",
            "cloak_prefixes": "https://elsewhere.example/go/\n",
            "max_pages": "lots",
        },
    )
    assert r.status_code == 400
    html = r.text
    assert _field_error(html, "domain")
    assert "Credential ID" in _field_error(html, "credential_id")
    assert _field_error(html, "version")
    assert "yourname-20" in _field_error(html, "partner_tag")
    assert _field_error(html, "cloak_prefixes") == ""  # checked once the domain is right
    assert _field_error(html, "max_pages")
    assert _field_error(html, "secret") == ""  # it was given
    # the input is kept (the secret only encrypted, never in clear)
    assert 'value="not a domain"' in html
    assert 'value="bad tag"' in html
    assert 'value="lots"' in html
    assert "https://elsewhere.example/go/" in html
    assert SECRET not in html
    kept = re.search(r'name="secret_kept" value="([^"]+)"', html)
    assert kept

    # fix the domain: now the cloaking prefix is checked against the site
    r = env.post(
        "/scans/new",
        {
            "domain": "mysite.example",
            "credential_id": "CID1",
            "secret_kept": kept.group(1),
            "version": "2.1",
            "country": "US",
            "partner_tag": "me-20",
            "cloak_prefixes": "https://elsewhere.example/go/",
        },
    )
    assert r.status_code == 400
    assert "elsewhere.example" in _field_error(r.text, "cloak_prefixes")
    assert _field_error(r.text, "secret") == ""  # the kept secret counted
    assert _field_error(r.text, "domain") == ""
    assert SECRET not in r.text
    assert env.scans_of(env.run(env._user_id("a@example.com"))) == []

    # an unknown country, a saved credential that is not one of the user's
    r = env.post("/scans/new", {"domain": "mysite.example", "saved_credential": "999",
                                "country": "XX", "partner_tag": "me-20"})  # fmt: skip
    assert r.status_code == 400
    assert _field_error(r.text, "saved_credential")
    assert _field_error(r.text, "country")


def test_valid_new_scan_is_stored_and_queued(env: Env) -> None:
    user_id = env.signup("a@example.com")
    r = env.post(
        "/scans/new",
        {
            "domain": "MySite.example",
            "credential_id": "CID1",
            "secret": SECRET,
            "version": "2.2",
            "country": "DE",
            "partner_tag": "me-21",
            "cloak_prefixes": "https://mysite.example/go/\n/recommends/\nwww.mysite.example/x/",
            "max_pages": "250",
        },
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/")
    (scan,) = env.scans_of(user_id)
    assert scan.site == "https://mysite.example/"
    assert scan.marketplace == "www.amazon.de"
    assert scan.partner_tag == "me-21"
    assert scan.state == "queued"
    assert scan.options == {
        "cloak_prefixes": [
            "https://mysite.example/go/",
            "https://mysite.example/recommends/",
            "https://www.mysite.example/x/",
        ],
        "max_pages": 250,
        "tps": 1.0,
        "http_fallback": True,  # a bare domain: http:// if https:// does not work
    }
    # the typed credential was saved under the domain's name
    settings_page = env.get("/settings").text
    assert "mysite.example" in settings_page and "CID1" in settings_page
    assert SECRET not in settings_page
    assert "••••" in settings_page
    # queued in arq, no progress until a worker runs it
    assert env.redis.exists("arq:job:" + jobs.job_id(scan, 0))
    assert env.redis.zscore(env.settings.queue_name, jobs.job_id(scan, 0)) is not None
    assert not env.redis.exists(jobs.PROGRESS_KEY.format(scan.id))

    # a second scan with the saved credential (no new credential)
    cred_id = re.search(r'<option value="(\d+)"', env.get("/scans/new").text)
    assert cred_id
    r = env.post("/scans/new", {"domain": "other.example", "saved_credential": cred_id.group(1),
                                "country": "US", "partner_tag": "me-20"})  # fmt: skip
    assert r.status_code == 303
    assert len(env.scans_of(user_id)) == 2
    assert env.get("/settings").text.count("/delete") == 1


# ---- dashboard, progress, cancel, rerun, ownership, CSRF --------------------------------


def test_dashboard_progress_and_ownership(env: Env, demo_report: ScanReport) -> None:
    other = env.signup("other@example.com")
    theirs = env.make_scan(other, site="https://theirs.example/")
    me = env.signup("me@example.com")
    mine = env.make_scan(me, site="https://mine.example/")
    done = env.make_scan(me, demo_report)

    page = env.get("/").text
    assert "https://mine.example/" in page and "theirs.example" not in page
    assert f"/scans/{mine}/cancel" in page  # queued: cancel
    assert f"/scans/{done}/rerun" in page and f"/scans/{done}/cancel" not in page
    progress = env.get("/scans/progress.json").json()
    assert [p["id"] for p in progress] == [done, mine]  # newest first, only mine
    assert progress[0]["state"] == "done" and progress[0]["percent"] == 100
    assert progress[0]["pages_crawled"] == 60

    # live counters of a running scan come from the Redis hash
    env.redis.hset(
        jobs.PROGRESS_KEY.format(mine),
        mapping={"state": "running", "phase": "crawling", "pages_crawled": "7",
                 "pages_discovered": "20", "products_found": "3", "products_checked": "1",
                 "updated_at": "0"},
    )  # fmt: skip
    try:
        row = next(p for p in env.get("/scans/progress.json").json() if p["id"] == mine)
        assert (row["phase"], row["pages_crawled"], row["pages_discovered"]) == ("crawling", 7, 20)
    finally:
        env.redis.delete(jobs.PROGRESS_KEY.format(mine))

    # another user's scan: 404 everywhere
    assert env.get(f"/scans/{theirs}").status_code == 404
    assert env.get(f"/scans/{theirs}/export.csv").status_code == 404
    assert env.post(f"/scans/{theirs}/cancel").status_code == 404
    assert env.post(f"/scans/{theirs}/rerun").status_code == 404
    assert env.get("/scans/999999").status_code == 404
    assert env.scan(theirs).state == "queued"
    assert len(env.scans_of(other)) == 1

    # CSRF: missing or forged token → 403, nothing changes
    r = env.client.post(f"/scans/{mine}/cancel", follow_redirects=False)
    assert r.status_code == 403
    r = env.client.post(f"/scans/{mine}/cancel", data={"csrftoken": "forged"},
                        follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    r = env.client.post("/scans/new", data={"domain": "x.example"}, follow_redirects=False)
    assert r.status_code == 403
    assert env.scan(mine).state == "queued"

    # cancel mine; re-run the finished one
    assert env.post(f"/scans/{mine}/cancel").status_code == 303
    assert env.scan(mine).state == "cancelled"
    assert env.redis.exists(jobs.CANCEL_KEY.format(mine))
    assert env.post(f"/scans/{done}/rerun").status_code == 303
    newest = env.scans_of(me)[0]
    assert newest.id not in (mine, done) and newest.state == "queued"
    assert newest.site == demo_report.site and newest.partner_tag == "demo-20"
    assert env.redis.exists("arq:job:" + jobs.job_id(newest, 0))


def test_settings_credentials(env: Env) -> None:
    me = env.signup("me@example.com")
    r = env.post("/settings", {"credential_id": "", "secret": SECRET, "version": "2.1",
                               "country": "US", "partner_tag": "nope"})  # fmt: skip
    assert r.status_code == 400
    assert "Credential ID" in r.text and "yourname-20" in r.text and SECRET not in r.text
    r = env.post("/settings", {"label": "Main", "credential_id": "CID9", "secret": SECRET,
                               "version": "3.1", "country": "UK", "partner_tag": "me-21"})  # fmt: skip
    assert r.status_code == 303
    page = env.get("/settings").text
    assert "Main" in page and "CID9" in page and "3.1" in page and "me-21" in page
    assert "••••••••" in page and SECRET not in page and SECRET[-4:] not in page
    cred = re.search(r"/settings/credentials/(\d+)/delete", page)
    assert cred
    # someone else cannot delete it
    env.signup("other@example.com")
    assert env.post(f"/settings/credentials/{cred.group(1)}/delete").status_code == 404
    assert "CID9" not in env.get("/settings").text
    env.client.cookies.clear()
    env.get("/login")
    r = env.post("/login", {"email": "me@example.com", "password": PASSWORD})
    assert r.status_code == 303
    assert env.post(f"/settings/credentials/{cred.group(1)}/delete").status_code == 303
    assert "CID9" not in env.get("/settings").text
    assert me


# ---- report -----------------------------------------------------------------------------


def _table_asins(html: str) -> list[str]:
    return re.findall(r'<td class="asin">([^<]+)</td>', html)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_report_page_and_export(env: Env, demo_report: ScanReport) -> None:
    me = env.signup("me@example.com")
    scan_id = env.make_scan(me, demo_report)
    from scanner.report import summary

    s = summary(demo_report)
    r = env.get(f"/scans/{scan_id}")
    assert r.status_code == 200
    html = r.text
    for key, stat in (("urls", "urls_scanned"), ("products", "total_products"),
                      ("links", "total_links"), ("unique", "unique_links")):  # fmt: skip
        assert re.search(rf'id="stat-{key}".*?class="value">{s[stat]}<', html), key
    assert '<svg class="donut"' in html
    by = s["by_status"]
    assert f"Available: {by['available']} (" in html
    assert f"Out of stock: {by['out_of_stock']} (" in html
    assert f'id="audit-missing">{s["tag_audit"]["missing_tag"]}<' in html
    assert f'id="audit-other">{s["tag_audit"]["other_tag"]}<' in html
    for failed in demo_report.failed:
        assert failed.url in html

    # the rows: one per product × Amazon link as on the site
    expected: set[tuple[str, str]] = set()
    for link in demo_report.links:
        for asin in link.target.asins:
            expected.add((asin, link.href))
    total = len(expected)
    assert total > 50  # enough for two pages
    assert f"{total} rows" in html
    assert len(_table_asins(html)) == 50
    page2 = env.get(f"/scans/{scan_id}?page=2").text
    assert len(_table_asins(page2)) == total - 50
    assert set(_table_asins(html)) | set(_table_asins(page2)) == {a for a, _ in expected}

    # full export = all rows
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv").text)
    assert {(row["asin"], row["amazon_link"]) for row in rows} == expected
    assert len(rows) == total
    pages_of = {}
    for link in demo_report.links:
        for asin in link.target.asins:
            pages_of.setdefault((asin, link.href), set()).add(link.page)
    for row in rows:
        assert set(row["pages"].split()) == pages_of[(row["asin"], row["amazon_link"])]
        assert int(row["pages_count"]) == len(pages_of[(row["asin"], row["amazon_link"])])

    # filter by status
    removed = {a for (_, a), p in demo_report.products.items() if p.status.value == "removed"}
    html = env.get(f"/scans/{scan_id}?status=removed").text
    assert set(_table_asins(html)) == removed
    assert 'class="badge available"' not in html
    r = env.client.get(f"/scans/{scan_id}/export.csv?status=removed")
    assert r.headers["content-type"].startswith("text/csv")
    rows = _csv(r.text)
    assert {row["asin"] for row in rows} == removed
    assert len(rows) == sum(1 for a, _ in expected if a in removed)
    assert all(row["status"] == "removed" for row in rows)

    # filter by ASIN (case-insensitive)
    asin = sorted(removed)[0]
    html = env.get(f"/scans/{scan_id}?asin={asin.lower()}").text
    assert set(_table_asins(html)) == {asin}
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv?asin={asin}").text)
    assert {(r["asin"], r["amazon_link"]) for r in rows} == {e for e in expected if e[0] == asin}
    assert _csv(env.client.get(f"/scans/{scan_id}/export.csv?asin=B0NOTHERE0").text) == []
    assert "No product matches." in env.get(f"/scans/{scan_id}?asin=B0NOTHERE0").text

    # the export link of the page carries the filters
    html = env.get(f"/scans/{scan_id}?status=removed&sort=asin&dir=desc").text
    assert f"/scans/{scan_id}/export.csv?status=removed&amp;sort=asin&amp;dir=desc" in html

    # sort: by ASIN descending, by pages count, by status
    html = env.get(f"/scans/{scan_id}?sort=asin&dir=desc").text
    asins = _table_asins(html)
    assert asins == sorted(asins, reverse=True)
    assert asins[0] == max(a for a, _ in expected)
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv?sort=pages&dir=desc").text)
    counts = [int(r["pages_count"]) for r in rows]
    assert counts == sorted(counts, reverse=True)
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv?sort=status").text)
    statuses = [r["status"] for r in rows]
    assert statuses == sorted(statuses)
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv?sort=href").text)
    assert [r["amazon_link"] for r in rows] == sorted(r["amazon_link"] for r in rows)

    # bad parameters are ignored, an out-of-range page shows the last one
    assert env.get(f"/scans/{scan_id}?sort=evil&dir=x&page=abc&status=zzz").status_code == 200
    assert len(_table_asins(env.get(f"/scans/{scan_id}?page=99").text)) == total - 50

    # the secret of the scan's credential is in no page seen
    env.get("/")
    env.get("/settings")
    env.get("/scans/new")
    assert all(SECRET not in page for page in env.html)


def test_donut_svg() -> None:
    svg = donut({"Available": 3, "Removed": 1, "Out of stock": 0, "Error": 0},
                {"Available": "#0f0", "Removed": "#f00"})  # fmt: skip
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Available: 3 (75.0 %)" in svg and "Removed: 1 (25.0 %)" in svg
    assert "Out of stock: 0 (0.0 %)" in svg
    assert svg.count('class="segment"') == 2
    empty = donut({"<b>": 0}, ["#000"])
    assert "&lt;b&gt;: 0 (0 %)" in empty and "<b>" not in empty


# ---- dashboard pages, long URLs, the precomputed table -----------------------------------


def test_dashboard_pages_through_older_scans(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from web import scans as web_scans

    monkeypatch.setattr(web_scans, "DASHBOARD_LIMIT", 3)
    me = env.signup("me@example.com")
    made = [env.make_scan(me, site=f"https://s{i}.example/") for i in range(7)]
    newest_first = made[::-1]

    def ids(html: str) -> list[int]:
        return [int(x) for x in re.findall(r'<tr data-scan="(\d+)"', html)]

    first = env.get("/").text
    assert ids(first) == newest_first[:3]
    assert "Scans 1–3 of 7" in first and 'href="/?page=2"' in first and "Newer scans" not in first
    second = env.get("/?page=2").text
    assert ids(second) == newest_first[3:6]
    assert 'href="/"' in second and 'href="/?page=3"' in second
    assert 'data-page="2"' in second  # the page polls its own rows (static/dashboard.js)
    last = env.get("/?page=3").text
    assert ids(last) == newest_first[6:] and "Older scans" not in last
    assert ids(env.get("/?page=99").text) == newest_first[6:]  # past the end: the last page
    assert ids(env.get("/?page=x").text) == newest_first[:3]
    page2 = env.get("/scans/progress.json?page=2").json()
    assert [p["id"] for p in page2] == newest_first[3:6]
    assert [p["id"] for p in env.get("/scans/progress.json").json()] == newest_first[:3]
    # every scan is on exactly one page
    seen = ids(first) + ids(second) + ids(last)
    assert sorted(seen) == sorted(made)
    monkeypatch.setattr(web_scans, "DASHBOARD_LIMIT", 100)
    single = env.get("/").text
    assert ids(single) == newest_first and "scan-pages" not in single


def _long_url_report() -> ScanReport:
    from datetime import UTC, datetime

    from scanner.amazon import ProductResult
    from scanner.amazon_urls import AmazonTarget
    from scanner.classify import Status
    from scanner.crawl import LinkOccurrence

    long = "https://www.amazon.com/dp/B000000001?tag=demo-20&pd_rd_w=" + "x" * 3000 + "&end=1"
    page = "https://long.example/" + "p" * 500 + "/"
    target = AmazonTarget("www.amazon.com", ("B000000001",), "demo-20")
    now = datetime.now(UTC)
    return ScanReport(
        site="https://long.example/",
        marketplace="www.amazon.com",
        partner_tag="demo-20",
        started_at=now,
        finished_at=now,
        pages=[page],
        failed=[],
        links=[LinkOccurrence(page, long, "direct", target)],
        unresolved=[],
        products={
            ("www.amazon.com", "B000000001"): ProductResult(
                "B000000001", "www.amazon.com", Status.AVAILABLE, "Thing", "In Stock"
            )
        },
    )


def test_long_links_are_cut_in_the_table_not_in_the_link(env: Env) -> None:
    from web.scans import URL_SHOWN, short_url

    report = _long_url_report()
    me = env.signup("me@example.com")
    scan_id = env.make_scan(me, report)
    html = env.get(f"/scans/{scan_id}").text
    long = report.links[0].href
    cell = re.search(
        r'<td class="url"><a href="([^"]+)" title="([^"]+)"[^>]*>([^<]+)</a></td>', html
    )
    assert cell, html
    assert cell.group(1) == cell.group(2) == long.replace("&", "&amp;")  # the whole URL
    shown = cell.group(3).replace("&amp;", "&")
    assert len(shown) == URL_SHOWN and "…" in shown and shown == short_url(long)
    assert shown.startswith(long[:40]) and shown.endswith(long[-10:])
    page = report.pages[0]
    assert f'href="{page}" title="{page}"' in html and short_url(page) in html
    assert page not in html.replace(f'"{page}"', "")  # shown cut, only whole in attributes
    assert short_url("https://short.example/") == "https://short.example/"
    # the CSV keeps everything
    (row,) = _csv(env.client.get(f"/scans/{scan_id}/export.csv").text)
    assert row["amazon_link"] == long and row["pages"] == page


async def _forget_table(settings: Settings, scan_id: int) -> None:
    """Remove the precomputed table of a scan, as for one finished before it existed."""
    from sqlalchemy import delete

    from store.models import REPORT_TABLES

    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with engine.begin() as conn:
            for table in REPORT_TABLES:
                gone = await conn.execute(delete(table).where(table.c.scan_id == scan_id))
                assert gone.rowcount > 0, table.name
    finally:
        await engine.dispose()


def test_precomputed_table_matches_the_live_query(env: Env, demo_report: ScanReport) -> None:
    """Every filter, sort, direction and page: the table made at finish gives exactly what the
    SQL over the findings gives (a scan finished before the table existed uses the latter)."""
    me = env.signup("me@example.com")
    made = env.make_scan(me, demo_report)
    live = env.make_scan(me, demo_report)
    env.run(_forget_table(env.settings, live))
    asins = sorted({a for link in demo_report.links for a in link.target.asins})

    def table(html: str) -> str:
        body = html[
            html.index('<table class="products"') : html.index(
                "</table>", html.index('<table class="products"')
            )
        ]
        return re.sub(r"/scans/\d+", "/scans/N", body)

    def audit(html: str) -> str:
        return html[html.index("Tag audit") : html.index("Detailed report")]

    queries = [""]
    for status in ("", "available", "removed", "out_of_stock", "error"):
        for sort in ("", "name", "asin", "link", "status", "stock", "href", "pages"):
            for direction in ("", "desc"):
                q = "&".join(
                    f"{k}={v}"
                    for k, v in (("status", status), ("sort", sort), ("dir", direction))
                    if v
                )
                queries += [q, f"{q}&page=2", f"{q}&page=99"]
    queries += [
        f"asin={asins[0]}",
        f"asin={asins[-1]}&sort=pages&dir=desc",
        f"asin={asins[3]}&status=available",
        "asin=B0NOTHERE0",
    ]
    for q in queries:
        a, b = env.get(f"/scans/{made}?{q}").text, env.get(f"/scans/{live}?{q}").text
        assert table(a) == table(b), q
        assert re.search(r'id="row-count">([^<]*)<', a).group(1) == re.search(
            r'id="row-count">([^<]*)<', b
        ).group(1), q  # type: ignore[union-attr]
        if "page=" not in q and "asin" not in q:
            csv_a = env.client.get(f"/scans/{made}/export.csv?{q}").text
            assert csv_a == env.client.get(f"/scans/{live}/export.csv?{q}").text, q
    assert audit(env.get(f"/scans/{made}").text) == audit(env.get(f"/scans/{live}").text)


def test_report_of_an_unfinished_scan_lists_its_checked_products(env: Env) -> None:
    from scanner.amazon import ProductResult
    from scanner.classify import Status

    me = env.signup("me@example.com")
    scan_id = env.make_scan(me)

    async def checkpoint_then_fail(session: Any) -> None:
        await store_scans.mark_running(session, scan_id=scan_id)
        await store_scans.save_products(session, scan_id=scan_id, results=[
            ProductResult("B000000002", "www.amazon.com", Status.REMOVED),
            ProductResult("B000000001", "www.amazon.com", Status.AVAILABLE, "One", "In Stock"),
        ])  # fmt: skip
        await store_scans.fail_scan(session, scan_id=scan_id, reason="the site went away")

    env.run(env._with_session(checkpoint_then_fail))
    html = env.get(f"/scans/{scan_id}").text
    assert _table_asins(html) == ["B000000001", "B000000002"]
    assert "2 rows" in html and "the site went away" in html
    assert _table_asins(env.get(f"/scans/{scan_id}?status=removed").text) == ["B000000002"]
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv?sort=asin&dir=desc").text)
    assert [r["asin"] for r in rows] == ["B000000002", "B000000001"]
    assert all(r["pages_count"] == "0" and r["amazon_link"] == "" for r in rows)


# ---- on PostgreSQL: the asyncpg reads, the precomputed table ------------------------------


@pytest.fixture
def pg_env(tmp_path: Path, test_redis_url: str, pg_schemas: Any) -> Iterator[Env]:
    # its connections carry a name of their own: the test drops those, and only those
    name = f"ccbb-test-{uuid.uuid4().hex[:12]}"
    url = pg_schemas() + "&" + urlencode({"options": f"-capplication_name={name}"})
    settings = Settings(
        CCBB_DATA_DIR=tmp_path,
        DATABASE_URL=url,
        REDIS_URL=test_redis_url,
        CCBB_QUEUE=f"ccbb:test:{uuid.uuid4().hex}",
    )
    upgrade(settings.sqlalchemy_url)
    with TestClient(create_app(settings)) as client:
        e = Env(client, settings, test_redis_url)
        e.app_name = name  # type: ignore[attr-defined]
        yield e
        e.redis.close()


async def _drop_connections(settings: Settings, name: str) -> int:
    """Terminate the web app's connections (what a database restart does to its pools)."""
    from sqlalchemy import text

    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            return len(found.all())
    finally:
        await engine.dispose()


def test_on_postgresql_reads_survive_dropped_connections(
    pg_env: Env, demo_report: ScanReport
) -> None:
    env = pg_env
    me = env.signup("me@example.com")
    done = env.make_scan(me, demo_report)
    queued = env.make_scan(me, site="https://queued.example/")
    env.redis.hset(
        jobs.PROGRESS_KEY.format(queued), mapping={"phase": "crawling", "pages_crawled": "5"}
    )
    try:
        progress = env.get("/scans/progress.json").json()
        assert [p["id"] for p in progress] == [queued, done]
        assert progress[0]["phase"] == "crawling" and progress[0]["pages_crawled"] == 5
        assert env.run(_drop_connections(env.settings, env.app_name)) >= 1  # type: ignore[attr-defined]
        again = env.get("/scans/progress.json")  # the dropped connection is retried once
        assert again.status_code == 200 and [p["id"] for p in again.json()] == [queued, done]
    finally:
        env.redis.delete(jobs.PROGRESS_KEY.format(queued))
    # the precomputed table on PostgreSQL: pages, sorts, CSV
    html = env.get(f"/scans/{done}?status=available&sort=pages&dir=desc&page=2").text
    assert 'class="badge available"' in html and 'class="badge removed"' not in html
    rows = _csv(env.client.get(f"/scans/{done}/export.csv?sort=pages&dir=desc").text)
    counts = [int(r["pages_count"]) for r in rows]
    assert counts == sorted(counts, reverse=True)
    assert len(rows) == len(
        {(a, link.href) for link in demo_report.links for a in link.target.asins}
    )
    assert env.get(f"/scans/{done}?asin={rows[0]['asin']}").status_code == 200
