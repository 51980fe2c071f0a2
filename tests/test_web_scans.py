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
from html import escape as html_escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import redis as sync_redis
from starlette.testclient import TestClient

from ccbb import jobs
from ccbb.demo import run_demo
from ccbb.settings import Settings
from scanner.report import to_csv
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
    client (``settings_env``: more Settings, by their environment names). Accounts signed up
    get 100 scan credits unless ``CCBB_SIGNUP_CREDITS`` says otherwise."""
    settings_env.setdefault("CCBB_SIGNUP_CREDITS", 100)
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

    # what the table shows is said: N products, M links; one row per product by default
    products, links = len(demo_report.products), len(demo_report.links)
    assert re.search(rf'id="table-counts">{products} products, {links} links\.', html)
    assert f"{products} products" in re.search(r'id="row-count">([^<]*)<', html).group(1)  # type: ignore[union-attr]
    first = _table_asins(html)
    assert len(first) == min(products, 50) and len(set(first)) == len(first)

    # problems first (removed, out of stock, error, then available), most linked first within
    rank = {"removed": 0, "out_of_stock": 1, "error": 2, "not_checked": 3, "available": 4}
    by_asin = {a: p for (_, a), p in demo_report.products.items()}
    linked = {a: 0 for a in by_asin}
    for link in demo_report.links:
        for asin in link.target.asins:
            linked[asin] += 1
    keys = [(rank[by_asin[a].status.value], -linked[a]) for a in first]
    assert keys == sorted(keys)

    # the status filter counts products, as the donut does
    for status, n in s["by_status"].items():
        if n:
            assert f'value="{status}">' in html or f'value="{status}" selected>' in html
            label = {"available": "Available", "removed": "Removed", "out_of_stock": "Out of stock",
                     "error": "Error", "not_checked": "Not checked"}[status]  # fmt: skip
            assert f"{label} ({n})</option>" in html
            got = env.get(f"/scans/{scan_id}?status={status}").text
            assert re.search(rf'id="row-count">{n} products? match', got), status

    # every error says why, in the table and the CSV
    errors = [p for p in demo_report.products.values() if p.error]
    assert errors
    page = env.get(f"/scans/{scan_id}?status=error").text
    for p in errors:
        if p.status.value == "error":
            assert f'<span class="reason">{html_escape(p.error or "")}</span>' in page

    # one row per link as written on the site, with its pages
    expected: set[tuple[str, str]] = set()
    for link in demo_report.links:
        for asin in link.target.asins:
            expected.add((asin, link.href))
    total = len(expected)
    assert total > 50  # enough for two pages
    per_link = env.get(f"/scans/{scan_id}?per=link").text
    assert f"{total} rows" in per_link
    assert len(_table_asins(per_link)) == 50
    page2 = env.get(f"/scans/{scan_id}?per=link&page=2").text
    assert len(_table_asins(page2)) == total - 50
    assert set(_table_asins(per_link)) | set(_table_asins(page2)) == {a for a, _ in expected}

    # the export is the CLI's CSV, named after the site and the day
    r = env.client.get(f"/scans/{scan_id}/export.csv")
    assert r.text == to_csv(demo_report)
    day = demo_report.finished_at.strftime("%Y-%m-%d")
    assert (
        f'filename="{urlsplit(demo_report.site).hostname}-{day}.csv"'
        in r.headers["content-disposition"]
    )
    rows = _csv(r.text)
    assert {(row["asin"], row["href"]) for row in rows if row["href"]} == expected
    assert {row["error"] for row in rows if row["status"] == "error"} == {
        p.error for p in demo_report.products.values() if p.status.value == "error"
    }

    # filter by status: table and export
    removed = {a for (_, a), p in demo_report.products.items() if p.status.value == "removed"}
    html = env.get(f"/scans/{scan_id}?status=removed").text
    assert set(_table_asins(html)) == removed
    assert 'class="badge available"' not in html
    r = env.client.get(f"/scans/{scan_id}/export.csv?status=removed")
    assert r.headers["content-type"].startswith("text/csv")
    rows = _csv(r.text)
    assert {row["asin"] for row in rows} == removed
    assert all(row["status"] == "removed" for row in rows)

    # ASIN by prefix (any case), name and page by substring
    asin = sorted(removed)[0]
    html = env.get(f"/scans/{scan_id}?asin={asin.lower()}").text
    assert set(_table_asins(html)) == {asin}
    prefix = asin[:4]
    assert set(_table_asins(env.get(f"/scans/{scan_id}?asin={prefix}").text)) == {
        a for a in by_asin if a.startswith(prefix)
    }
    assert _csv(env.client.get(f"/scans/{scan_id}/export.csv?asin=B0NOTHERE0").text) == []
    assert "No product matches." in env.get(f"/scans/{scan_id}?asin=B0NOTHERE0").text
    named = next(p for p in demo_report.products.values() if p.title and len(p.title) > 6)
    word = named.title[2:6].upper()  # type: ignore[index]
    got = set(_table_asins(env.get(f"/scans/{scan_id}?name={word}").text))
    assert got == {a for a, p in by_asin.items() if word.lower() in (p.title or "").lower()}
    some_page = sorted({link.page for link in demo_report.links})[3]
    needle = urlsplit(some_page).path
    got = set(_table_asins(env.get(f"/scans/{scan_id}?page_url={needle}").text))
    assert got == {
        a for link in demo_report.links if needle in link.page for a in link.target.asins
    }
    rows = _csv(env.client.get(f"/scans/{scan_id}/export.csv?page_url={needle}").text)
    assert rows and all(needle in row["page"] for row in rows)

    # the export link of the page carries the filters; links land on the table
    html = env.get(f"/scans/{scan_id}?status=removed&sort=asin&dir=desc").text
    assert f"/scans/{scan_id}/export.csv?status=removed&amp;sort=asin&amp;dir=desc" in html
    assert f'action="/scans/{scan_id}#table"' in html
    assert re.search(r'<a href="\?[^"]*sort=name[^"]*#table"', html)

    # sort: by ASIN descending, by pages count, by name (unnamed last, both ways)
    html = env.get(f"/scans/{scan_id}?per=link&sort=asin&dir=desc").text
    asins = _table_asins(html)
    assert asins == sorted(asins, reverse=True)
    assert asins[0] == max(a for a, _ in expected)
    for direction in ("asc", "desc"):
        names = re.findall(
            r'<td class="name">([^<]*)</td>',
            env.get(f"/scans/{scan_id}?sort=name&dir={direction}").text,
        )
        named_part = [n for n in names if n != "—"]
        assert names == named_part + ["—"] * (len(names) - len(named_part))
        assert named_part == sorted(named_part, reverse=direction == "desc")

    # bad parameters are ignored, an out-of-range page shows the last one
    assert env.get(f"/scans/{scan_id}?sort=evil&dir=x&page=abc&status=zzz").status_code == 200
    assert len(_table_asins(env.get(f"/scans/{scan_id}?per=link&page=99").text)) == total - 50

    # the secret of the scan's credential is in no page seen
    env.get("/")
    env.get("/settings")
    env.get("/scans/new")
    assert all(SECRET not in page for page in env.html)


def test_a_running_scan_says_so_refreshes_and_never_contradicts_itself(env: Env) -> None:
    from scanner.amazon import ProductResult
    from scanner.classify import Status

    me = env.signup("me@example.com")
    scan_id = env.make_scan(me)

    async def start(session: Any) -> None:
        await store_scans.mark_running(session, scan_id=scan_id)
        await store_scans.save_products(session, scan_id=scan_id, results=[
            ProductResult("B000000002", "www.amazon.com", Status.REMOVED),
            ProductResult("B000000001", "www.amazon.com", Status.AVAILABLE, "One", "In Stock"),
        ])  # fmt: skip

    env.run(env._with_session(start))
    key = jobs.PROGRESS_KEY.format(scan_id)
    env.redis.hset(key, mapping={"phase": "crawling", "pages_crawled": "52",
                                 "pages_discovered": "80", "products_found": "5",
                                 "products_checked": "2"})  # fmt: skip
    try:
        r = env.get(f"/scans/{scan_id}")
    finally:
        env.redis.delete(key)
    html = r.text
    assert 'id="running"' in html and "refreshes itself" in html
    assert re.search(r'<meta http-equiv="refresh" content="\d+">', html)
    assert "<script>" not in html  # no inline script (the pages' CSP allows none)
    assert re.search(r'id="stat-urls">.*?class="value">52<', html)
    assert re.search(r'id="stat-products">.*?class="value">5<', html)
    assert re.search(r'id="stat-links">.*?class="value">—<', html)  # not "0" beside 5 products
    # found but not checked yet: "Not checked", never "Error"
    assert "Not checked: 3 (" in html and "Error: 0 (" in html
    assert 'id="export"' not in html
    assert env.client.get(f"/scans/{scan_id}/export.csv").status_code == 409
    # done: no refresh, no notice
    env.run(env._with_session(lambda s: store_scans.cancel_scan(s, scan_id=scan_id)))
    html = env.get(f"/scans/{scan_id}").text
    assert 'http-equiv="refresh"' not in html and 'id="running"' not in html


def test_a_cancelled_scan_counts_unchecked_products_as_not_checked(env: Env) -> None:
    from dataclasses import replace

    from scanner.classify import Status

    report = asyncio.run(run_demo(pages=20, show_progress=False))
    keys = sorted(report.products)[:3]
    for key in keys:
        report.products[key] = replace(
            report.products[key], status=Status.NOT_CHECKED, title=None,
            error="not checked: the scan was cancelled",
        )  # fmt: skip
    report.cancelled = True
    me = env.signup("me@example.com")
    scan_id = env.make_scan(me, report)
    scan = env.scan(scan_id)
    assert scan.state == "cancelled"
    assert scan.products_checked == len(report.products) - 3 < scan.products_found
    (row,) = [p for p in env.get("/scans/progress.json").json() if p["id"] == scan_id]
    assert row["products_checked"] == len(report.products) - 3
    html = env.get(f"/scans/{scan_id}?status=not_checked").text
    assert sorted(_table_asins(html)) == sorted(a for _, a in keys)
    assert html.count("not checked: the scan was cancelled") == 3
    assert "Not checked: 3 (" in html
    assert "#a78bfa" in html  # its own colour


def test_404_and_500_are_pages_of_the_app(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url) as env:
        env.signup("me@example.com")
        r = env.get("/no/such/page")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert 'class="topbar"' in r.text and 'href="/settings"' in r.text
        assert "Page not found" in r.text
        r = env.get("/scans/999999")
        assert r.status_code == 404 and 'class="topbar"' in r.text

        async def boom(request: Any) -> Any:
            raise RuntimeError("a bug")

        from starlette.routing import Route

        app = env.client.app
        while not hasattr(app, "router"):
            app = app.app  # type: ignore[attr-defined]
        app.router.routes.insert(0, Route("/boom", boom))
        client = TestClient(
            env.client.app, raise_server_exceptions=False, cookies=env.client.cookies
        )
        r = client.get("/boom")
        assert r.status_code == 500 and 'class="topbar"' in r.text
        assert "a bug" not in r.text and "went wrong" in r.text


def test_the_first_poll_after_a_change_shows_it(env: Env) -> None:
    """The server side of item 14: no cache between the worker's writes and the poll (the
    dashboard polls every 2 s while a scan is queued or starting: static/dashboard.js)."""
    me = env.signup("me@example.com")
    scan_id = env.make_scan(me)

    def state() -> tuple[str, str]:
        (row,) = env.get("/scans/progress.json").json()
        return row["state"], row["phase"]

    assert state() == ("queued", "")
    env.run(env._with_session(lambda s: store_scans.mark_running(s, scan_id=scan_id)))
    assert state() == ("running", "starting")
    env.run(env._with_session(lambda s: store_scans.fail_scan(s, scan_id=scan_id, reason="x")))
    assert state() == ("failed", "failed")
    js = (Path(__file__).parent.parent / "web" / "static" / "dashboard.js").read_text()
    assert "FAST = 2000" in js and 'tr[data-state="queued"]' in js


def test_a_scan_is_deleted_after_confirmation(env: Env, demo_report: ScanReport) -> None:
    me = env.signup("me@example.com")
    scan_id = env.make_scan(me, demo_report)
    dashboard = env.get("/").text
    assert f'href="/scans/{scan_id}/delete"' in dashboard
    confirm = env.get(f"/scans/{scan_id}/delete")
    assert confirm.status_code == 200 and 'id="confirm-delete"' in confirm.text
    assert env.scan(scan_id) is not None  # asking deletes nothing
    # another user cannot; a POST without the CSRF token is refused
    env.signup("other@example.com")
    assert env.post(f"/scans/{scan_id}/delete").status_code == 404
    env.client.cookies.clear()
    env.get("/login")
    env.post("/login", {"email": "me@example.com", "password": PASSWORD})
    r = env.client.post(f"/scans/{scan_id}/delete", follow_redirects=False)
    assert r.status_code == 403 and env.scan(scan_id) is not None
    r = env.post(f"/scans/{scan_id}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/?deleted=1"
    assert env.scan(scan_id) is None
    assert "Scan deleted" in env.get("/?deleted=1").text
    assert env.get(f"/scans/{scan_id}").status_code == 404


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
    assert 'id="scans" data-page="2"' in second  # the page polls its own rows (dashboard.js)
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
    from web.report_page import URL_SHOWN, short_url

    report = _long_url_report()
    me = env.signup("me@example.com")
    scan_id = env.make_scan(me, report)
    html = env.get(f"/scans/{scan_id}?per=link").text
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
    assert row["href"] == long and row["page"] == page


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


@pytest.mark.timeout(600)  # ~900 requests: a minute alone, longer on a busy machine
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
    every_sort = ("", "problems", "name", "asin", "link", "status", "stock", "href", "links",
                  "pages")  # fmt: skip
    for per in ("", "per=link"):
        for status in ("", "available", "removed", "out_of_stock", "error"):
            sorts = every_sort if per == "" or status == "" else ("", "name", "pages")
            for sort in sorts:
                for direction in ("", "desc"):
                    q = "&".join(
                        f"{k}={v}"
                        for k, v in (("status", status), ("sort", sort), ("dir", direction))
                        if v
                    )
                    q = "&".join(x for x in (per, q) if x)
                    queries += [q, f"{q}&page=2", f"{q}&page=99"]
        queries += [
            f"{per}&asin={asins[0]}",
            f"{per}&asin={asins[-1][:3]}&sort=pages&dir=desc",
            f"{per}&asin={asins[3]}&status=available",
            f"{per}&asin=B0NOTHERE0",
            f"{per}&name=e&sort=name",
            f"{per}&page_url=/post&sort=links&dir=desc&page=2",
            f"{per}&page_url=%25&name=_",
        ]
    for q in queries:
        a, b = env.get(f"/scans/{made}?{q}").text, env.get(f"/scans/{live}?{q}").text
        assert table(a) == table(b), q
        assert re.search(r'id="row-count">([^<]*)<', a).group(1) == re.search(
            r'id="row-count">([^<]*)<', b
        ).group(1), q  # type: ignore[union-attr]
        if "page=" not in q and "sort=" not in q:  # the CSV has the CLI's order
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
    assert _table_asins(html) == ["B000000002", "B000000001"]  # problems first
    assert "2 products" in html and "the site went away" in html
    assert _table_asins(env.get(f"/scans/{scan_id}?status=removed").text) == ["B000000002"]
    # a failed scan has no export (nor does a running one)
    assert 'id="export"' not in html
    assert env.client.get(f"/scans/{scan_id}/export.csv").status_code == 409


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
    html = env.get(f"/scans/{done}?per=link&status=available&sort=pages&dir=desc&page=2").text
    assert 'class="badge available"' in html and 'class="badge removed"' not in html
    # the export is the CLI's CSV on PostgreSQL too (strings by code point, as Python orders)
    text = env.client.get(f"/scans/{done}/export.csv").text
    assert text == to_csv(demo_report)
    rows = _csv(text)
    assert env.get(f"/scans/{done}?page_url=/&name=a").status_code == 200
    assert env.get(f"/scans/{done}?asin={rows[0]['asin']}").status_code == 200
