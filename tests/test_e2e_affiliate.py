"""The affiliate program end to end in headless Chromium (Debian's ``chromium``, driven by
Playwright): ``ccbb web`` and ``ccbb worker`` as processes on SQLite and a real Redis, and
``ccbb sandbox-clickbank`` wired as ``ccbb run --demo`` wires it. An affiliate joins on the
Affiliate page and copies their link and a banner's HTML; a visitor in another browser follows
the link, signs up and buys the Starter plan on the sandbox's order form; the sandbox then
bills the first monthly rebill. The affiliate's statistics show the visit, the sign-up, the
sale, the rebill and the commission (30 %, to the cent), in the page and in its CSV. Screenshots
land in ``artifacts/screenshots/``."""

from __future__ import annotations

import csv
import html
import io
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from store import affiliates as store_aff
from tests.shop_stack import Stack, bundled_plans, running_shop

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

CHROMIUM = os.environ.get("CCBB_CHROMIUM") or shutil.which("chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "an affiliate's long password"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, test_redis_url: str) -> Iterator[Stack]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with running_shop(tmp_path_factory.mktemp("e2e-aff"), test_redis_url, bundled_plans()) as stack:
        yield stack


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def signup(page: Any, url: str, email: str) -> None:
    page.goto(url + "/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button.primary")
    page.wait_for_load_state()
    assert "/signup" not in page.url, page.content()[:2000]


def day_cells(page: Any, day: str) -> list[str]:
    row = page.locator(f'#stats tr[data-day="{day}"] td')
    return [c.strip() for c in row.all_inner_texts()]


def commissions(stack: Stack, ref_id: str) -> list[store_aff.AffiliateCommission]:
    async def go(s: Any) -> list[store_aff.AffiliateCommission]:
        aff = await store_aff.get_by_ref(s, ref_id=ref_id)
        return await store_aff.commissions_of(s, affiliate_id=aff.id)

    return list(stack.db(go))


def test_referral_walk_link_signup_purchase_rebill_then_the_statistics(stack: Stack) -> None:
    today = datetime.now(UTC).date().isoformat()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            # the affiliate joins
            mine = browser.new_context(viewport={"width": 1100, "height": 900})
            page = mine.new_page()
            signup(page, stack.url, "affiliate@example.com")
            page.goto(stack.url + "/affiliate")
            page.fill("input[name=paypal_email]", "affiliate-pay@example.com")
            page.fill("input[name=website]", "https://my-blog.example/")
            page.check("input[name=adult]")
            page.check("input[name=accept_terms]")
            page.click("form[action='/affiliate'] button.primary")
            ref_id = page.inner_text("#ref-id").strip()
            link = page.inner_text("#referral-link").strip()
            assert link == f"{stack.url}/?ref={ref_id}"
            # the promotional material: banners shown, their HTML ready to copy
            banner = page.locator("#promo-en-728x90")
            assert banner.input_value().startswith(f'<a href="{link}" rel="sponsored"><img src=')
            assert page.locator("#promo-fr-300x250").input_value().count(ref_id) == 1
            for img in page.locator("#promo img").all():  # lazy: each loads once scrolled to
                img.scroll_into_view_if_needed()
                page.wait_for_function(
                    "i => i.complete && i.naturalWidth > 0", arg=img.element_handle()
                )
            shot(page, "affiliate-01-joined")
            page.click("#stats-link")
            page.wait_for_url("**/affiliate/stats")
            assert day_cells(page, today)[1:5] == ["0", "0", "0", "0"]

            # a visitor, in a browser of their own, follows the link, signs up and buys
            theirs = browser.new_context(viewport={"width": 1100, "height": 800})
            visitor = theirs.new_page()
            visitor.goto(f"{stack.url}/r/{ref_id}")
            assert visitor.url.rstrip("/") == stack.url  # the home page
            assert any(c["name"] == "ccbb_ref" for c in theirs.cookies())
            signup(visitor, stack.url, "customer@example.com")
            visitor.goto(stack.url + "/billing/payments")
            visitor.click("tr[data-sku=plan_starter] a.button")
            assert visitor.url.startswith(stack.sandbox)
            visitor.fill("input[name=email]", "customer@example.com")
            shot(visitor, "affiliate-02-visitor-order-form")
            visitor.click("button[type=submit]")
            visitor.wait_for_url("**/confirmation/**")

            # the sale's notification reaches us; then the sandbox bills the first rebill
            deadline = time.monotonic() + 30
            while not commissions(stack, ref_id) and time.monotonic() < deadline:
                time.sleep(0.3)
            [first] = commissions(stack, ref_id)
            assert first.kind == "sale", stack.log_tails()
            req = urllib.request.Request(f"{stack.sandbox}/_sandbox/bill/{first.receipt}",
                                         data=b"", method="POST")  # fmt: skip
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status in (200, 303)
            while len(commissions(stack, ref_id)) < 2 and time.monotonic() < deadline:
                time.sleep(0.3)
            rows = commissions(stack, ref_id)
            assert sorted(c.kind for c in rows) == ["rebill", "sale"], stack.log_tails()
            assert [c.amount for c in rows] == [Decimal("5.70"), Decimal("5.70")]  # 30 % of 19.00

            # the affiliate's statistics: the visit, the sign-up, the sale, the rebill, the profit
            page.reload()
            cells = day_cells(page, today)
            assert cells[1:] == ["1", "1", "1", "1", "$19.00", "1", "$19.00", "$0.00", "$11.40"], (
                cells
            )
            total = [c.strip() for c in page.locator("#stats-total td").all_inner_texts()]
            assert total[-1] == "$11.40" and total[0] == "1"
            assert page.inner_text("#stats-pending") == "$11.40"
            assert page.inner_text("#stats-payable") == "$0.00"
            shot(page, "affiliate-03-statistics")
            with page.expect_download() as download:
                page.click("#stats-csv")
            text = Path(download.value.path()).read_text()
            by_day = {r["date"]: r for r in csv.DictReader(io.StringIO(text))}
            assert (by_day[today]["visits"], by_day[today]["signups"], by_day[today]["sales"],
                    by_day[today]["rebills"], by_day[today]["profit"]) == (
                "1", "1", "1", "1", "11.40")  # fmt: skip
            assert by_day["total"]["sales_amount"] == "19.00"
            # in French
            page.goto(stack.url + "/affiliate/stats?lang=fr")
            assert "Statistiques d'affiliation" in page.content()
            assert (
                day_cells(page, today)[-1].replace("\u202f", " ").replace("\xa0", " ") == "11,40 $"
            )
            shot(page, "affiliate-04-statistics-fr")
            page.goto(stack.url + "/affiliate?lang=fr")
            shot(page, "affiliate-05-promo-fr")
            assert html.escape(ref_id) in page.content()
        finally:
            browser.close()
