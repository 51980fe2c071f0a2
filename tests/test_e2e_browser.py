"""The dashboard end to end in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): ``ccbb web`` and ``ccbb worker`` as processes on a migrated SQLite database and a real
Redis, with the demo site and the sandbox Amazon API of ``ccbb run --demo`` — the only fakes are
at the network edge. A new user signs up, saves sandbox credentials, starts a New Scan, watches
its progress and checks the report against the database: summary, donut, filters, sort and CSV
export. Screenshots land in ``artifacts/screenshots/`` (look at them: it has to look good)."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from ccbb.child_processes import free_port
from ccbb.services import demo_services
from ccbb.settings import Settings
from scanner.report import STATUS_LABELS
from store import scans as store_scans
from store.crypto import mask
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.conftest import _off_loop

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")

# the whole file: the stack starts in ~5 s, the scan (1 Amazon request a second) takes ~25 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("CCBB_CHROMIUM") or shutil.which("chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "a browser's password"
LABELS = {label: status.value for status, label in STATUS_LABELS.items()}


@dataclass
class Stack:
    url: str  # the dashboard
    settings: Settings
    credential: dict[str, Any]  # the sandbox's credential (what the user types in Settings)
    site: str  # the demo site, as the user types it
    cloak_prefix: str
    logs: list[Path]

    def report(self, scan_id: int) -> dict[str, Any]:
        """The truth: the scan's report as the database has it."""

        async def go() -> dict[str, Any]:
            engine = make_engine(self.settings.sqlalchemy_url)
            try:
                async with session_factory(engine)() as session:
                    return await store_scans.report_json(session, scan_id=scan_id)
            finally:
                await engine.dispose()

        return _off_loop(asyncio.run, go())

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], stack_logs: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ccbb web exited with {proc.returncode}\n{stack_logs}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"ccbb web did not answer /healthz within 60 s\n{stack_logs}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, test_redis_url: str) -> Iterator[Stack]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run does it)")
    data = tmp_path_factory.mktemp("e2e")
    db_url = f"sqlite:///{data / 'ccbb.sqlite3'}"
    queue = f"ccbb:e2e:{uuid.uuid4().hex}"
    settings = Settings(  # type: ignore[call-arg]
        CCBB_DATA_DIR=data, DATABASE_URL=db_url, REDIS_URL=test_redis_url, CCBB_QUEUE=queue
    )
    with sync_redis.Redis.from_url(test_redis_url) as r:
        r.flushdb()  # this test database is ours: no progress or cancel key of another test's scan
    upgrade(settings.sqlalchemy_url)
    # the demo site and the sandbox Amazon API, wired as `ccbb run --demo` wires them
    demo_env, helpers = demo_services(settings)
    credential = json.loads((data / "demo-catalogue.json").read_text())["credentials"][0]
    port = free_port()
    env = {
        **os.environ, **demo_env, "CCBB_DATA_DIR": str(data), "DATABASE_URL": db_url,
        "REDIS_URL": test_redis_url, "CCBB_QUEUE": queue,
        "CCBB_PUBLIC_URL": f"http://127.0.0.1:{port}",  # links in the demo's mails
    }  # fmt: skip
    logs = [data / "worker.log", data / "web.log"]
    procs: list[subprocess.Popen[bytes]] = []
    commands = (["worker"], ["web", "--host", "127.0.0.1", "--port", str(port)])
    try:
        for log, args in zip(logs, commands, strict=True):
            with log.open("wb") as out:
                cmd = [sys.executable, "-m", "ccbb.cli", *args]
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
        stack = Stack(
            url=f"http://127.0.0.1:{port}",
            settings=settings,
            credential=credential,
            site="http://demo.example/",
            cloak_prefix="http://demo.example/go/",
            logs=logs,
        )
        _wait_healthy(stack.url, procs[1], stack.log_tails())
        yield stack
    finally:
        for proc in (*procs, *helpers):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (*procs, *helpers):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with sync_redis.Redis.from_url(test_redis_url) as r:
            r.flushdb()  # no progress hash of this scan for the next tests' scan 1


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    """A screenshot to look at. Now and then headless Chromium hands back a full-page capture
    at a wrong size (twice as wide, half as tall, the page in its left half): taken again."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    for _ in range(3):
        page.screenshot(path=str(path), full_page=full_page)
        width = struct.unpack(">I", path.read_bytes()[16:20])[0]  # PNG IHDR
        if width == page.viewport_size["width"]:
            return
    raise AssertionError(f"{path}: {width} px wide, not the viewport's width")


# ---- what the pages show ------------------------------------------------------------------

ROW_FIELDS = ("phase", "pages_crawled", "pages_discovered", "products_checked", "products_found")


def dashboard_row(page: Any, scan_id: int) -> dict[str, Any]:
    """The scan's row on the dashboard as the browser shows it."""
    return dict(
        page.evaluate(
            """(id) => {
              const row = document.querySelector(`tr[data-scan="${id}"]`);
              const f = (name) => row.querySelector(`[data-f="${name}"]`);
              const out = {state: row.getAttribute("data-state"),
                           badge: f("state").textContent.trim(),
                           width: f("percent").style.width,
                           same_page: window.__e2e_same_page === true};
              for (const name of ["phase", "pages_crawled", "pages_discovered",
                                  "products_checked", "products_found"]) {
                out[name] = f(name).textContent.trim();
              }
              return out;
            }""",
            scan_id,
        )
    )


def shows(row: dict[str, Any], scan: dict[str, Any]) -> bool:
    """Does the row show the counters of /scans/progress.json?"""
    return (
        row["state"] == scan["state"]
        and row["badge"] == scan["state"]
        and row["phase"] == (scan["phase"] or "—")
        and all(row[f] == str(scan[f]) for f in ROW_FIELDS if f != "phase")
        and row["width"] == f"{scan['percent']}%"
    )


def table_rows(page: Any) -> list[dict[str, str]]:
    """The detailed table of the report page (a long URL may be shown shortened: its title
    has all of it)."""
    return list(
        page.evaluate(
            """() => {
              const full = (td) => (td.querySelector("[title]")?.title ?? td.textContent).trim();
              return [...document.querySelectorAll("#products tbody tr")]
                .filter((tr) => tr.querySelector("td.asin"))
                .map((tr) => ({asin: tr.querySelector("td.asin").textContent.trim(),
                               badge: tr.querySelector(".badge").className,
                               status: tr.querySelector(".badge").textContent.trim(),
                               reason: tr.querySelector("td.stock")?.textContent.trim() ?? "",
                               href: tr.querySelector("td.url")
                                 ? full(tr.querySelector("td.url")) : ""}));
            }"""
        )
    )


def row_count(page: Any) -> int:
    text = page.locator("#row-count").inner_text()
    m = re.match(r"([\d,]+) (rows?|products?)", text)
    assert m, text
    return int(m.group(1).replace(",", ""))


def truth_rows(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(marketplace, ASIN, Amazon link) → product status and pages: the rows the detailed table
    and the CSV export must have."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for p in report["products"]:
        for link in p["links"]:
            row = rows.setdefault(
                (p["marketplace"], p["asin"], link["href"]), {"status": p["status"], "pages": set()}
            )
            row["pages"].add(link["page"])
    return rows


def download_csv(page: Any) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.locator("#export").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def csv_keys(rows: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    return {(r["marketplace"], r["asin"], r["href"]) for r in rows}


def csv_pages(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], set[str]]:
    out: dict[tuple[str, str, str], set[str]] = {}
    for r in rows:
        out.setdefault((r["marketplace"], r["asin"], r["href"]), set()).add(r["page"])
    return out


def no_page_scroll(page: Any) -> bool:
    """No horizontal scroll of the page itself (tables scroll inside their card)."""
    return bool(
        page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    )


# ---- the test -----------------------------------------------------------------------------


def test_signup_credentials_scan_progress_report_export(stack: Stack, browser: Any) -> None:
    expect = sync_api.expect
    context = browser.new_context(viewport={"width": 1366, "height": 860}, accept_downloads=True)
    context.set_default_timeout(20_000)
    html: list[str] = []  # every HTML document the browser received

    polls: list[list[dict[str, Any]]] = []  # what the dashboard's polls received

    def keep_html(response: Any) -> None:
        if response.headers.get("content-type", "").startswith("text/html") and (
            response.status < 300 or response.status >= 400
        ):
            html.append(response.text())

    def keep_poll(route: Any) -> None:  # passed through as is; read before the page may reload
        response = route.fetch()
        polls.append(response.json())
        route.fulfill(response=response)

    context.on("response", keep_html)
    context.route(re.compile(r"/scans/progress\.json(\?.*)?$"), keep_poll)
    page = context.new_page()
    # the dashboard polls its progress every 15 s: the page's clock stands still, and the test
    # moves it on (a poll exactly when the test asks for it, no waiting)
    now = time.time()
    page.clock.install(time=now)
    page.clock.pause_at(now + 5)
    secret = stack.credential["credential_secret"]

    # -- sign up
    page.goto(stack.url + "/")  # a visitor: the home page
    expect(page.locator("h1")).to_have_text("Find the Amazon links that stopped paying you")
    shot(page, "home")
    page.locator("header").get_by_role("link", name="Sign up").click()
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(stack.url + "/")
    expect(page.locator("header nav")).to_contain_text(email)
    expect(page.locator("main")).to_contain_text("No scan yet.")

    # -- the confirmation mail, caught by the demo's SMTP catcher (a worker sends it)
    for _ in range(60):
        page.goto(stack.url + "/demo/mail")
        # the mail itself (the unconfirmed-account banner names the address on every page)
        if page.locator("article.mail", has_text=email).count():
            break
        time.sleep(0.5)
    expect(page.locator("main")).to_contain_text("Confirm your e-mail address")
    page.locator('a[href*="/confirm?t="]').first.click()
    expect(page.locator("main")).to_contain_text("Your e-mail address is confirmed")
    page.goto(stack.url + "/")

    # -- Billing: the credits every account signed up in the demo gets
    page.locator("header nav").get_by_role("link", name=re.compile(r"^Billing")).click()
    expect(page).to_have_url(stack.url + "/billing")
    credits_before = int(page.locator("#balance").inner_text())
    assert credits_before > 0
    expect(page.locator("#credits-balance")).to_have_text(f"Billing · {credits_before} credits")

    # -- save the sandbox credentials in Settings
    page.locator("header nav").get_by_role("link", name="Settings").click()
    expect(page.locator("main")).to_contain_text("No credentials saved yet.")
    form = page.locator("form.grid-form")
    form.get_by_label("Label").fill("Sandbox account")
    form.get_by_label("Credential ID").fill(stack.credential["credential_id"])
    form.get_by_label("Credential Secret").fill(secret)
    form.get_by_label("Version").select_option(stack.credential["version"])
    form.get_by_label("Country").select_option("US")
    form.get_by_label("Partner tag").fill("demo-20")
    form.get_by_role("button", name="Save credentials").click()
    expect(page.locator(".notice.ok")).to_have_text("Credentials saved.")
    saved = page.locator("table.credentials tbody tr")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text(stack.credential["credential_id"])
    expect(saved.locator("code").nth(1)).to_have_text(mask(secret))
    saved.first.get_by_role("button", name="Test connection").click()  # one real lookup
    expect(page.locator("#connection-result")).to_contain_text("Connected")
    shot(page, "settings")

    # -- New Scan: a validation error first, then the real one
    page.locator("header").get_by_role("link", name="New Scan").click()
    expect(page).to_have_url(stack.url + "/scans/new")
    page.locator("#saved_credential").select_option(label=f"Sandbox account "
                                                    f"({stack.credential['credential_id']}, US)")  # fmt: skip
    page.locator("#domain").fill("not a domain")
    page.locator("#partner_tag").fill("bad tag")
    page.locator("#cloak_prefixes").fill(stack.cloak_prefix)
    page.get_by_role("button", name="Start scan").click()
    expect(page.locator(".notice.error")).to_contain_text("correct the fields")
    expect(page.locator("#err-domain")).to_be_visible()
    expect(page.locator("#err-partner_tag")).to_contain_text("yourname-20")
    expect(page.locator("#partner_tag")).to_have_value("bad tag")  # the input is kept
    shot(page, "new-scan-validation")
    page.locator("#domain").fill(stack.site)
    page.locator("#partner_tag").fill("demo-20")
    expect(page.locator("#cloak_prefixes")).to_have_value(stack.cloak_prefix)
    page.get_by_role("button", name="Start scan").click()
    expect(page.locator(".notice.ok")).to_have_text("Scan queued.")
    expect(page).to_have_url(stack.url + "/")  # so that a reload does not say it again
    rows = page.locator("#scans tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(stack.site)
    scan_id = int(rows.first.get_attribute("data-scan") or 0)
    # a queued scan is polled every 2 s, so that its start (or a quick failure) shows at once,
    # not up to 15 s later
    polled = len(polls)
    page.evaluate("window.__e2e_before_reload = true")
    page.clock.run_for(2_100)
    for _ in range(200):
        if len(polls) > polled:
            break
        page.wait_for_timeout(50)
    assert len(polls) == polled + 1, "a queued scan is polled within 2 s"
    if polls[-1][0]["state"] != "queued":  # it started: the page reloads to show it
        # the reload has begun only once the old page is gone (waiting for the load state
        # alone may look at the old page, then evaluate in a page being replaced)
        page.wait_for_function("() => window.__e2e_before_reload !== true")
        page.wait_for_load_state()

    # -- progress: each poll of /scans/progress.json updates the row in place, or reloads the
    # page when the scan's state changed
    seen: list[dict[str, Any]] = []
    pictured = False
    deadline = time.monotonic() + 75
    page.evaluate("window.__e2e_same_page = true")
    while True:
        before = dashboard_row(page, scan_id)
        polled = len(polls)
        page.clock.run_for(15_000)
        for _ in range(200):
            if len(polls) > polled:
                break
            page.wait_for_timeout(50)
        assert len(polls) == polled + 1, "one poll of /scans/progress.json per 15 s"
        listing = polls[-1]
        assert [s["id"] for s in listing] == [scan_id]
        scan = listing[0]
        if scan["state"] != before["state"]:  # the page reloads
            page.wait_for_function("() => window.__e2e_same_page !== true")
            page.wait_for_load_state()
            page.evaluate("window.__e2e_same_page = true")
        else:
            page.wait_for_function(
                """([id, want]) => {
                  const row = document.querySelector(`tr[data-scan="${id}"]`);
                  return row && row.querySelector('[data-f="pages_crawled"]').textContent
                    === String(want.pages_crawled)
                    && row.querySelector('[data-f="products_checked"]').textContent
                    === String(want.products_checked);
                }""",
                arg=[scan_id, scan],
            )
            row = dashboard_row(page, scan_id)
            assert row["same_page"], "the row was updated in place"
            assert shows(row, scan), (row, scan)
            seen.append(scan)
            if scan["state"] == "running" and 0 < scan["percent"] < 100 and not pictured:
                shot(page, "dashboard-progress")  # kept: the first one past a quarter
                pictured = scan["percent"] >= 25
        if scan["state"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"scan still {scan}\n{stack.log_tails()}"
        time.sleep(0.4)
    assert scan["state"] == "done", f"{scan}\n{stack.log_tails()}"
    live = [s for s in seen if s["state"] == "running" and 0 < s["percent"] < 100]
    assert live, f"no progress seen while the scan ran: {seen}"
    counters = {(s["pages_crawled"], s["products_checked"]) for s in live}
    assert len(counters) >= 3, f"the row did not move while the scan ran: {seen}"
    for a, b in itertools.pairwise(seen):
        for f in ("pages_crawled", "products_checked"):
            assert a[f] <= b[f], (f, seen)
    final = dashboard_row(page, scan_id)
    assert final["badge"] == "done" and final["width"] == "100%", final
    expect(rows.first.get_by_role("button", name="Re-run")).to_be_visible()
    expect(page.locator(".notice.ok")).to_have_count(0)  # reloaded: "Scan queued." is past

    # -- Billing: the scan spent one credit, and says so in its history
    page.locator("header nav").get_by_role("link", name=re.compile(r"^Billing")).click()
    expect(page.locator("#balance")).to_have_text(str(credits_before - 1))
    expect(page.locator("#credits-balance")).to_contain_text(f"{credits_before - 1} credit")
    expect(page.locator("table.ledger")).to_contain_text(f"Scan #{scan_id} of demo.example")
    shot(page, "billing")
    page.goto(stack.url + "/")

    # -- the report: the numbers of the database
    report = stack.report(scan_id)
    summary = report["summary"]
    assert summary["urls_scanned"] > 100, summary
    assert all(n for s, n in summary["by_status"].items() if s != "not_checked"), summary
    assert final["pages_crawled"] == str(summary["urls_scanned"])
    assert final["products_checked"] == final["products_found"] == str(summary["total_products"])
    rows.first.get_by_role("link", name="Report").click()
    expect(page).to_have_url(f"{stack.url}/scans/{scan_id}")
    for key, name in (("urls", "urls_scanned"), ("products", "total_products"),
                      ("links", "total_links"), ("unique", "unique_links")):  # fmt: skip
        expect(page.locator(f"#stat-{key} .value")).to_have_text(
            f"{summary[name]:,}"
        )  # Babel: 1,719
    legend = page.locator("svg.donut g.legend text").all_text_contents()
    donut: dict[str, int] = {}
    for text in legend:
        m = re.fullmatch(r"(.+): ([\d,]+) \([\d.]+\s?%\)", text.strip())  # Babel: "61.7%"
        assert m, text
        donut[LABELS[m.group(1)]] = int(m.group(2).replace(",", ""))
    assert donut == summary["by_status"]
    expect(page.locator("#audit-missing")).to_have_text(f"{summary['tag_audit']['missing_tag']:,}")
    expect(page.locator("#audit-other")).to_have_text(f"{summary['tag_audit']['other_tag']:,}")
    truth = truth_rows(report)
    # one row per product by default, problems first; the counts say what is what
    expect(page.locator("#table-counts")).to_contain_text(
        f"{summary['total_products']:,} products, {summary['total_links']:,} links."
    )
    assert row_count(page) == summary["total_products"]
    ranks = {"removed": 0, "out_of_stock": 1, "error": 2, "not_checked": 3, "available": 4}
    first = [LABELS[r["status"]] for r in table_rows(page)]
    assert [ranks[s] for s in first] == sorted(ranks[s] for s in first)
    for s in page.locator("form.filters select[name=status] option").all_text_contents()[1:]:
        m = re.fullmatch(r"(.+) \((\d+)\)", s)
        assert m and int(m.group(2)) == summary["by_status"][LABELS[m.group(1)]], s
    shot(page, "report-summary", full_page=False)
    shot(page, "report-1366")

    # -- every error says why
    page.locator("form.filters select[name=status]").select_option("error")
    page.locator("form.filters").get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=error.*#table$"))  # the table stays in view
    errors = table_rows(page)
    assert errors and all(r["reason"] and r["reason"] != "—" for r in errors), errors
    reasons = {p["asin"]: p["error"] for p in report["products"] if p["status"] == "error"}
    assert all(r["reason"] == reasons[r["asin"]] for r in errors), errors

    # -- one row per link as written on the site
    page.locator("#per-link").click()
    expect(page).to_have_url(re.compile(r"per=link"))
    page.locator("form.filters select[name=status]").select_option("")
    page.locator("form.filters").get_by_role("button", name="Filter").click()
    assert row_count(page) == len(truth)

    # -- filter by status
    page.locator("form.filters select[name=status]").select_option("removed")
    page.locator("form.filters").get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=removed"))
    removed = {k: v for k, v in truth.items() if v["status"] == "removed"}
    assert removed
    assert row_count(page) == len(removed)
    shown = table_rows(page)
    assert len(shown) == min(len(removed), 50)
    assert all(r["status"] == "Removed" and "removed" in r["badge"].split() for r in shown), shown
    assert {(r["asin"], r["href"]) for r in shown} <= {(a, h) for _, a, h in removed}
    shot(page, "report-filtered")

    # -- sort by ASIN, ascending then descending (the filter stays)
    page.locator("#products thead").get_by_role("link", name="ASIN").click()
    expect(page).to_have_url(re.compile(r"sort=asin"))
    asc = [r["asin"] for r in table_rows(page)]
    assert asc == sorted(asc) and asc[0] == min(a for _, a, _ in removed)
    page.locator("#products thead").get_by_role("link", name="ASIN ▲").click()
    expect(page).to_have_url(re.compile(r"dir=desc"))
    shown = table_rows(page)
    desc = [r["asin"] for r in shown]
    assert desc == sorted(desc, reverse=True) and desc[0] == max(a for _, a, _ in removed)
    assert all(r["status"] == "Removed" for r in shown)
    assert row_count(page) == len(removed)

    # -- CSV export of what the table shows (the CLI's shape): exactly the filtered links
    exported = download_csv(page)
    assert csv_keys(exported) == set(removed)
    for key, pages in csv_pages(exported).items():
        assert pages == removed[key]["pages"]
    assert all(r["status"] == "removed" for r in exported)

    # -- filter by ASIN (typed in lower case), every status
    asin = max(removed, key=lambda k: (len(removed[k]["pages"]), k))[1]
    page.locator("form.filters input[name=asin]").fill(asin.lower())
    page.locator("form.filters select[name=status]").select_option("")
    page.locator("form.filters").get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"asin={asin}", re.IGNORECASE))
    mine = {k: v for k, v in truth.items() if k[1] == asin}
    shown = table_rows(page)
    assert {r["asin"] for r in shown} == {asin}
    assert len(shown) == row_count(page) == len(mine)
    exported = download_csv(page)
    assert csv_keys(exported) == set(mine)

    # -- the failed pages say which pages link to them
    if report["pages_failed"]:
        page.goto(f"{stack.url}/scans/{scan_id}")
        expect(page.locator("#failed-pages")).to_contain_text("Linked from")
        linked = [f for f in report["pages_failed"] if f["linked_from"]]
        assert linked
        ref = linked[0]["linked_from"][0]
        expect(page.locator(f'#failed-pages a[href="{ref}"]')).to_have_count(1)

    # -- a new API token: shown once, with a copy button; a reload makes no second one
    page.goto(stack.url + "/settings")
    page.locator("form.token-form input[name=name]").fill("my script")
    page.locator("form.token-form").get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()
    expect(page.locator("#copy-token")).to_be_visible()
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("table.tokens tbody tr")).to_have_count(1)

    # -- 390 px wide: no horizontal page scroll; tables scroll inside their card
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("dashboard-390", "/"), ("report-390", f"/scans/{scan_id}"),
                       ("report-per-link-390", f"/scans/{scan_id}?per=link"),
                       ("settings-390", "/settings"), ("new-scan-390", "/scans/new"),
                       ("not-found-390", "/no/such/page")):  # fmt: skip
        page.goto(stack.url + path)
        assert no_page_scroll(page), name
        shot(page, name)
    page.set_viewport_size({"width": 1366, "height": 860})
    for name, path in (("dashboard-1366", "/"), ("settings-1366", "/settings"),
                       ("not-found-1366", "/no/such/page")):  # fmt: skip
        page.goto(stack.url + path)
        assert no_page_scroll(page), name
        shot(page, name)

    # -- the secret typed in Settings is in no page the browser received
    for path in ("/", "/settings", "/scans/new", f"/scans/{scan_id}"):
        page.goto(stack.url + path)
    assert len(html) >= 15 and any("••••" in h for h in html), len(html)
    assert not [h for h in html if secret in h]
    context.close()


def test_the_same_walk_in_french(stack: Stack, browser: Any) -> None:
    """A browser asking for French (Accept-Language): the home page, sign-up, the first-run
    guide, the confirmation mail (written in French) and its link, Billing, Settings and Test
    connection, a New Scan refused then queued, its report, the credit it spent, a schedule on
    Monitoring, the delete-scan question, all in French with French formats (screenshots
    *-fr.png)."""
    expect = sync_api.expect
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="fr-FR")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(stack.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("h1")).to_have_text(
        "Trouvez les liens Amazon qui ne vous rapportent plus rien"
    )
    shot(page, "home-fr")
    page.locator("header").get_by_role("link", name="Inscription").click()
    email = f"e2e-fr-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Inscription").click()
    expect(page).to_have_url(stack.url + "/")
    expect(page.locator("#first-run")).to_contain_text("Bien démarrer en quatre étapes")
    expect(page.locator("main")).to_contain_text("Aucun scan pour l'instant.")
    shot(page, "dashboard-guide-fr")

    # the confirmation mail (a scan needs a confirmed address), written in French: the
    # sign-up was
    for _ in range(60):
        page.goto(stack.url + "/demo/mail")
        # the mail itself (the unconfirmed-account banner names the address on every page)
        if page.locator("article.mail", has_text=email).count():
            break
        time.sleep(0.5)
    expect(page.locator("h1")).to_have_text("E-mails envoyés par la démo")
    mail = page.locator("article.mail").first
    expect(mail.locator("h2")).to_have_text(
        "Confirmez votre adresse e-mail pour ClickClickBankBank"
    )
    expect(mail).to_contain_text("Bienvenue sur ClickClickBankBank !")
    shot(page, "demo-mail-fr")
    mail.locator('a[href*="/confirm?t="]').first.click()
    expect(page.locator("main")).to_contain_text("Votre adresse e-mail est confirmée")
    page.goto(stack.url + "/")

    # Billing, in French words and numbers
    page.locator("header nav").get_by_role("link", name=re.compile(r"^Facturation")).click()
    credits_before = int(page.locator("#balance").inner_text())
    expect(page.locator("#credits-balance")).to_have_text(f"Facturation · {credits_before} crédits")
    expect(page.locator("h1")).to_have_text("Facturation")
    expect(page.locator("#plans")).to_contain_text("Forfaits")
    expect(page.locator("#plans")).to_contain_text(" $ / mois")  # Babel's French money
    expect(page.locator("#history")).to_contain_text("Crédits de bienvenue")
    shot(page, "billing-fr")

    page.locator("header nav").get_by_role("link", name="Réglages").click()
    form = page.locator("form.grid-form")
    form.get_by_label("Nom", exact=True).fill("Compte bac à sable")
    form.get_by_label("Credential ID").fill(stack.credential["credential_id"])
    form.get_by_label("Credential Secret").fill(stack.credential["credential_secret"])
    form.get_by_label("Version").select_option(stack.credential["version"])
    form.get_by_label("Pays").select_option("US")
    form.get_by_label("ID partenaire").fill("demo-20")
    form.get_by_role("button", name="Enregistrer les identifiants").click()
    expect(page.locator(".notice.ok")).to_have_text("Identifiants enregistrés.")
    page.locator("table.credentials tbody tr").first.get_by_role(
        "button", name="Tester la connexion"
    ).click()
    expect(page.locator("#connection-result")).to_contain_text("Connecté : Amazon a répondu")
    shot(page, "settings-fr")

    page.locator("header").get_by_role("link", name="Nouveau scan").click()
    page.locator("#domain").fill("pas un domaine")
    page.locator("#partner_tag").fill("mauvais id")
    page.get_by_role("button", name="Lancer le scan").click()
    expect(page.locator(".notice.error")).to_contain_text("Merci de corriger les champs")
    expect(page.locator("#err-partner_tag")).to_contain_text("votrenom-21")
    shot(page, "new-scan-validation-fr")
    page.locator("#domain").fill(stack.site)
    page.locator("#partner_tag").fill("demo-20")
    page.get_by_role("button", name="Lancer le scan").click()
    expect(page.locator(".notice.ok")).to_have_text("Scan mis en file d'attente.")
    row = page.locator("#scans tbody tr").first
    scan_id = int(row.get_attribute("data-scan") or 0)
    expect(row.locator(".badge")).to_have_text(re.compile(r"^(en attente|en cours|terminé)$"))

    deadline = time.monotonic() + 90
    while stack_state(stack, scan_id) != "done":
        assert time.monotonic() < deadline, stack.log_tails()
        time.sleep(1)
    page.goto(f"{stack.url}/scans/{scan_id}")
    summary = stack.report(scan_id)["summary"]
    total = f"{summary['total_links']:,}".replace(",", "\u202f")  # Babel's French thousands
    expect(page.locator("#stat-links .value")).to_have_text(total)
    legend = " ".join(page.locator("svg.donut g.legend text").all_text_contents())
    for word in ("Disponible", "Supprimé", "Stock épuisé", "Erreur"):
        assert word in legend, legend
    # French punctuation and decimals: "Disponible : 100 (61,7 %)" (Babel's spaces)
    assert re.search(r"Disponible\s: \d+ \(\d+,\d\s%\)", legend.replace("\u202f", " ")), legend
    shot(page, "report-summary-fr", full_page=False)

    # the scan spent a credit: the history says so in French
    page.goto(stack.url + "/billing")
    expect(page.locator("#balance")).to_have_text(str(credits_before - 1))
    expect(page.locator("#history")).to_contain_text(f"Scan n°{scan_id} de demo.example")

    # Monitoring: the schedule in French words
    page.locator("header nav").get_by_role("link", name="Surveillance").click()
    expect(page.locator("h1")).to_have_text("Scans programmés")
    row = page.locator(f"#site-{scan_id}")
    row.get_by_label("Fréquence").select_option("weekly")
    row.get_by_label("Jour de la semaine (hebdomadaire)").select_option("0")
    row.get_by_role("button", name="Enregistrer").click()
    expect(page.locator(".notice.ok")).to_have_text("Programmation enregistrée.")
    expect(page.locator(f"#site-{scan_id}")).to_contain_text("chaque lundi à 06:00 (UTC)")
    shot(page, "monitoring-fr")

    # deleting a scan asks first, in French
    page.goto(f"{stack.url}/scans/{scan_id}/delete")
    expect(page.locator("h1")).to_have_text("Supprimer ce scan ?")
    expect(page.locator("main")).to_contain_text(f"Le scan n°{scan_id} de")
    expect(page.locator("#confirm-delete")).to_have_text(f"Supprimer le scan n°{scan_id}")
    shot(page, "delete-scan-fr")
    context.close()


def stack_state(stack: Stack, scan_id: int) -> str:
    async def go() -> str:
        engine = make_engine(stack.settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                scan = await store_scans.get_scan(session, scan_id=scan_id)
                return scan.state if scan else "gone"
        finally:
            await engine.dispose()

    return str(_off_loop(asyncio.run, go()))
