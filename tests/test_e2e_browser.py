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

from ccbb.services import _free_port, demo_services
from ccbb.settings import Settings
from scanner.report import STATUS_LABELS
from store import scans as store_scans
from store.crypto import mask
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.conftest import _off_loop
from web import i18n

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")

# the whole file: the stack starts in ~5 s, the scan (1 Amazon request a second) takes ~25 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("CCBB_CHROMIUM") or shutil.which("chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "a browser's password"
# what the walk reads and clicks, in each language of the pages (the French walk's browser
# asks for French in Accept-Language, as a French-speaking user's does)
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "home": "Find the Amazon links that stopped paying you", "sign_up": "Sign up",
        "email": "E-mail", "password": "Password", "no_scan": "No scan yet.",
        "settings": "Settings", "no_credentials": "No credentials saved yet.", "label": "Label",
        "version": "Version", "country": "Country", "partner_tag": "Partner tag",
        "save": "Save credentials", "saved": "Credentials saved.",
        "test": "Test connection", "connected": "Connected", "new_scan": "New Scan",
        "start": "Start scan", "correct": "correct the fields", "tag_example": "yourname-20",
        "queued": "Scan queued.", "rerun": "Re-run", "report": "Report", "filter": "Filter",
        "rows": r"([\d,]+) rows?",
    },
    "fr": {
        "home": "Trouvez les liens Amazon qui ne vous rapportent plus rien",
        "sign_up": "Inscription", "email": "E-mail", "password": "Mot de passe",
        "no_scan": "Aucun scan pour l'instant.", "settings": "Réglages",
        "no_credentials": "Aucun identifiant enregistré pour l'instant.", "label": "Nom",
        "version": "Version", "country": "Pays", "partner_tag": "ID partenaire",
        "save": "Enregistrer les identifiants", "saved": "Identifiants enregistrés.",
        "test": "Tester la connexion", "connected": "Connecté", "new_scan": "Nouveau scan",
        "start": "Lancer le scan", "correct": "corriger les champs", "tag_example": "votrenom-21",
        "queued": "Scan mis en file d'attente.", "rerun": "Relancer", "report": "Rapport",
        "filter": "Filtrer", "rows": r"([\d\s\u202f\xa0]+) lignes?",
    },
}  # fmt: skip
# the statuses as the report's pages name them
STATUS_WORDS = {
    "en": {label: status.value for status, label in STATUS_LABELS.items()},
    "fr": {"Disponible": "available", "Supprimé": "removed", "Stock épuisé": "out_of_stock",
           "Erreur": "error"},
}  # fmt: skip


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
    env = {
        **os.environ, **demo_env, "CCBB_DATA_DIR": str(data), "DATABASE_URL": db_url,
        "REDIS_URL": test_redis_url, "CCBB_QUEUE": queue,
    }  # fmt: skip
    port = _free_port()
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


def shot(page: Any, name: str, *, full_page: bool = True, lang: str = "en") -> None:
    """A screenshot to look at. Now and then headless Chromium hands back a full-page capture
    at a wrong size (twice as wide, half as tall, the page in its left half): taken again."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (f"{name}.png" if lang == "en" else f"{name}-{lang}.png")
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


def shows(row: dict[str, Any], scan: dict[str, Any], lang: str) -> bool:
    """Does the row show the counters of /scans/progress.json (its state and phase in the
    page's language)?"""
    i18n.use(lang)
    try:
        state, phase = i18n.state_word(scan["state"]), i18n.phase_word(scan["phase"] or "")
    finally:
        i18n.use("en")
    return (
        row["state"] == scan["state"]
        and row["badge"] == state
        and row["phase"] == (phase or "—")
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
                               href: full(tr.querySelector("td.url"))}));
            }"""
        )
    )


def row_count(page: Any, lang: str) -> int:
    text = page.locator("#row-count").inner_text()
    m = re.match(WORDS[lang]["rows"], text)
    assert m, text
    return int(re.sub(r"\D", "", m.group(1)))


def number(value: int, lang: str) -> str:
    """``value`` as the pages of ``lang`` write it (``1,234`` / ``1 234``)."""
    i18n.use(lang)
    try:
        return i18n.number(value)
    finally:
        i18n.use("en")


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


def csv_keys(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(r["marketplace"], r["asin"], r["amazon_link"]) for r in rows]


# ---- the test -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_signup_credentials_scan_progress_report_export(
    stack: Stack, browser: Any, lang: str
) -> None:
    expect = sync_api.expect
    w = WORDS[lang]
    context = browser.new_context(
        viewport={"width": 1280, "height": 860},
        accept_downloads=True,
        locale="fr-FR" if lang == "fr" else "en-US",  # the browser's Accept-Language
    )
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
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("h1")).to_have_text(w["home"])
    shot(page, "home", lang=lang)
    page.locator("header").get_by_role("link", name=w["sign_up"]).click()
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label(w["email"]).fill(email)
    page.get_by_label(w["password"]).fill(PASSWORD)
    page.get_by_role("button", name=w["sign_up"]).click()
    expect(page).to_have_url(stack.url + "/")
    expect(page.locator("header nav")).to_contain_text(email)
    expect(page.locator("main")).to_contain_text(w["no_scan"])

    # -- save the sandbox credentials in Settings
    page.locator("header nav").get_by_role("link", name=w["settings"]).click()
    expect(page.locator("main")).to_contain_text(w["no_credentials"])
    form = page.locator("form.grid-form")
    form.get_by_label(w["label"], exact=True).fill("Sandbox account")
    form.get_by_label("Credential ID").fill(stack.credential["credential_id"])
    form.get_by_label("Credential Secret").fill(secret)
    form.get_by_label(w["version"]).select_option(stack.credential["version"])
    form.get_by_label(w["country"]).select_option("US")
    form.get_by_label(w["partner_tag"]).fill("demo-20")
    form.get_by_role("button", name=w["save"]).click()
    expect(page.locator(".notice.ok")).to_have_text(w["saved"])
    saved = page.locator("table.credentials tbody tr")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text(stack.credential["credential_id"])
    expect(saved.locator("code").nth(1)).to_have_text(mask(secret))
    saved.first.get_by_role("button", name=w["test"]).click()  # one real lookup
    expect(page.locator("#connection-result")).to_contain_text(w["connected"])
    shot(page, "settings", lang=lang)

    # -- New Scan: a validation error first, then the real one
    page.locator("header").get_by_role("link", name=w["new_scan"]).click()
    expect(page).to_have_url(stack.url + "/scans/new")
    page.locator("#saved_credential").select_option(label=f"Sandbox account "
                                                    f"({stack.credential['credential_id']}, US)")  # fmt: skip
    page.locator("#domain").fill("not a domain")
    page.locator("#partner_tag").fill("bad tag")
    page.locator("#cloak_prefixes").fill(stack.cloak_prefix)
    page.get_by_role("button", name=w["start"]).click()
    expect(page.locator(".notice.error")).to_contain_text(w["correct"])
    expect(page.locator("#err-domain")).to_be_visible()
    expect(page.locator("#err-partner_tag")).to_contain_text(w["tag_example"])
    expect(page.locator("#partner_tag")).to_have_value("bad tag")  # the input is kept
    shot(page, "new-scan-validation", lang=lang)
    page.locator("#domain").fill(stack.site)
    page.locator("#partner_tag").fill("demo-20")
    expect(page.locator("#cloak_prefixes")).to_have_value(stack.cloak_prefix)
    page.get_by_role("button", name=w["start"]).click()
    expect(page.locator(".notice.ok")).to_have_text(w["queued"])
    expect(page).to_have_url(stack.url + "/")  # so that a reload does not say it again
    rows = page.locator("#scans tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(stack.site)
    scan_id = int(rows.first.get_attribute("data-scan") or 0)

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
            assert shows(row, scan, lang), (row, scan)
            seen.append(scan)
            if scan["state"] == "running" and 0 < scan["percent"] < 100 and not pictured:
                shot(page, "dashboard-progress", lang=lang)  # kept: the first one past a quarter
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
    assert final["badge"] == {"en": "done", "fr": "terminé"}[lang], final
    assert final["width"] == "100%", final
    expect(rows.first.get_by_role("button", name=w["rerun"])).to_be_visible()
    expect(page.locator(".notice.ok")).to_have_count(0)  # reloaded: "Scan queued." is past

    # -- the report: the numbers of the database
    report = stack.report(scan_id)
    summary = report["summary"]
    assert summary["urls_scanned"] > 100 and all(summary["by_status"].values()), summary
    assert final["pages_crawled"] == str(summary["urls_scanned"])
    assert final["products_checked"] == final["products_found"] == str(summary["total_products"])
    rows.first.get_by_role("link", name=w["report"]).click()
    expect(page).to_have_url(f"{stack.url}/scans/{scan_id}")
    for key, name in (("urls", "urls_scanned"), ("products", "total_products"),
                      ("links", "total_links"), ("unique", "unique_links")):  # fmt: skip
        expect(page.locator(f"#stat-{key} .value")).to_have_text(number(summary[name], lang))
    legend = page.locator("svg.donut g.legend text").all_text_contents()
    donut: dict[str, int] = {}
    for text in legend:
        m = re.fullmatch(r"(.+): (\d+) \([\d.]+ %\)", text.strip())
        assert m, text
        donut[STATUS_WORDS[lang][m.group(1)]] = int(m.group(2))
    assert donut == summary["by_status"]
    audit = summary["tag_audit"]
    expect(page.locator("#audit-missing")).to_have_text(number(audit["missing_tag"], lang))
    expect(page.locator("#audit-other")).to_have_text(number(audit["other_tag"], lang))
    truth = truth_rows(report)
    assert row_count(page, lang) == len(truth)
    shot(page, "report-summary", full_page=False, lang=lang)

    # -- filter by status
    page.locator("form.filters select[name=status]").select_option("removed")
    page.locator("form.filters").get_by_role("button", name=w["filter"]).click()
    expect(page).to_have_url(re.compile(r"status=removed"))
    removed = {k: v for k, v in truth.items() if v["status"] == "removed"}
    assert removed
    assert row_count(page, lang) == len(removed)
    shown = table_rows(page)
    assert len(shown) == min(len(removed), 50)
    removed_word = {"en": "Removed", "fr": "Supprimé"}[lang]
    assert all(r["status"] == removed_word and "removed" in r["badge"].split() for r in shown)
    assert {(r["asin"], r["href"]) for r in shown} <= {(a, h) for _, a, h in removed}
    shot(page, "report-filtered", lang=lang)

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
    assert all(r["status"] == removed_word for r in shown)
    assert row_count(page, lang) == len(removed)

    # -- CSV export of what the table shows: exactly the filtered rows, in the page's order
    exported = download_csv(page)
    assert sorted(csv_keys(exported)) == sorted(removed)
    assert [r["asin"] for r in exported][: len(desc)] == desc
    for r in exported:
        want = removed[(r["marketplace"], r["asin"], r["amazon_link"])]
        assert r["status"] == "removed"
        assert set(r["pages"].split()) == want["pages"]
        assert int(r["pages_count"]) == len(want["pages"])

    # -- filter by ASIN (typed in lower case), every status
    asin = max(removed, key=lambda k: (len(removed[k]["pages"]), k))[1]
    page.locator("form.filters input[name=asin]").fill(asin.lower())
    page.locator("form.filters select[name=status]").select_option("")
    page.locator("form.filters").get_by_role("button", name=w["filter"]).click()
    expect(page).to_have_url(re.compile(rf"asin={asin}", re.IGNORECASE))
    mine = {k: v for k, v in truth.items() if k[1] == asin}
    shown = table_rows(page)
    assert {r["asin"] for r in shown} == {asin}
    assert len(shown) == row_count(page, lang) == len(mine)
    exported = download_csv(page)
    assert sorted(csv_keys(exported)) == sorted(mine)

    # -- the secret typed in Settings is in no page the browser received
    for path in ("/", "/settings", "/scans/new", f"/scans/{scan_id}"):
        page.goto(stack.url + path)
    assert len(html) >= 15 and any("••••" in h for h in html), len(html)
    assert not [h for h in html if secret in h]
    context.close()
