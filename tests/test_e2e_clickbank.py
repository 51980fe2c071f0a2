"""Buying a plan end to end in headless Chromium (Debian's ``chromium``, driven by Playwright):
``ccbb web`` and ``ccbb worker`` as processes on SQLite and a real Redis, and ``ccbb
sandbox-clickbank`` wired as ``ccbb run --demo`` wires it. A user clicks Buy on Billing, pays on
the sandbox's order form, takes the first PitchPlus upsell, meets a subscription offer that
cannot be accepted without its consent box and declines it, reaches ClickBank's confirmation,
follows a thank-you link and watches the credits arrive; the ledger agrees. The upsell pages
are checked as ClickBank's reviewers would: one product, its price, "Add to my order" with the
decline link beside it, no script (no exit pop-up), cbskin before cbur, cbf passed through."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from store import clickbank as store_cb
from store import credits as store_credits
from store import users as store_users
from tests.shop_stack import Stack, bundled_plans, running_shop

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

CHROMIUM = os.environ.get("CCBB_CHROMIUM") or shutil.which("chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "a buyer's long password"

# the bundled plans, with a flow that also offers a subscription (consent needed) and a skin
FLOW = """
[[plan]]
sku = "plan_monitor"
name = "Monitor"
price = "9.00"
credits = 5
max_pages = 500
clickbank_item = "9"

[[flow]]
id = "test-flow"
clickbank_flow_id = "7"
start = ["plan_starter"]
first = "pack50"
skin = "ccbbskin"

[[flow.offer]]
step = "pack50"
sku = "credits_50"
accept = "monitor"
decline = "monitor"

[[flow.offer]]
step = "monitor"
sku = "plan_monitor"
headline = "Weekly monitoring of your site"
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, test_redis_url: str) -> Iterator[Stack]:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with running_shop(
        tmp_path_factory.mktemp("e2e-cb"), test_redis_url, bundled_plans(FLOW)
    ) as stack:
        yield stack


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def names(url: str) -> list[str]:
    return [k for k, _ in parse_qsl(urlsplit(url).query)]


def check_upsell_page(page: Any, cbf: str) -> None:
    """PitchPlus's page rules, as the buyer's browser shows them."""
    assert page.locator(".product").count() == 1  # exactly one product
    price = page.locator(".price")
    assert price.is_visible() and "$" in price.inner_text()
    accept, decline = page.locator("#accept"), page.locator("#decline")
    assert accept.inner_text().strip() == "Add to my order"
    assert decline.is_visible()
    a, d = accept.bounding_box(), decline.bounding_box()
    assert abs(a["y"] - d["y"]) < 40 and 0 < d["x"] - (a["x"] + a["width"]) < 80  # beside it
    html = page.content()
    assert "<script" not in html and "onbeforeunload" not in html  # no exit pop-up
    href = decline.get_attribute("href")
    q = names(href)
    assert q.index("cbskin") < q.index("cbur") < q.index("cbf")
    assert dict(parse_qsl(urlsplit(href).query))["cbf"] == cbf and "cbur=d" in href


def test_buy_a_plan_take_an_upsell_and_see_the_credits(stack: Stack) -> None:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            # what the browser refused or failed on (a blocked form, a script error) is the
            # first thing to read when a click goes nowhere
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            try:
                walk(page, stack)
            except Exception:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                (SCREENSHOTS / "clickbank-failed.html").write_text(page.content())
                shot(page, "clickbank-failed")
                print("browser console:\n" + "\n".join(console))
                raise
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            browser.close()
    check_ledger(stack)


def walk(page: Any, stack: Stack) -> None:
    """Sign up, buy Starter, take the 50-credit upsell, meet the subscription offer's consent box,
    reach the confirmation and the thank-you page, see the credits."""
    page.goto(stack.url + "/signup")
    page.fill("input[name=email]", "walker@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")
    page.goto(stack.url + "/billing/payments")
    shot(page, "clickbank-01-billing")
    page.click("tr[data-sku=plan_starter] a.button")
    # ClickBank's order form (the sandbox), reached by the pay link made for us
    assert page.url.startswith(stack.sandbox)
    q = dict(parse_qsl(urlsplit(page.url).query))
    assert q["cbitems"] == "1" and q["cbfid"] == "7" and len(q["ccref"]) >= 16
    assert "walker" not in page.url  # the reference names nobody
    page.fill("input[name=email]", "walker@example.com")
    shot(page, "clickbank-02-order-form")
    page.click("button[type=submit]")
    # the first upsell: ours, with the cbf ClickBank gave
    assert "/clickbank/upsell/test-flow/pack50" in page.url, page.url
    cbf = dict(parse_qsl(urlsplit(page.url).query))["cbf"]
    check_upsell_page(page, cbf)
    shot(page, "clickbank-03-upsell")
    with page.expect_request(lambda r: "cbur=a" in r.url) as sent:
        page.click("#accept")
    order = names(sent.value.url)
    assert order.index("cbskin") < order.index("cbur") < order.index("cbf")
    assert "cbrblaccpt" not in order
    # the subscription offer: accepting needs the consent box, without any script
    page.wait_for_url("**/clickbank/upsell/test-flow/monitor**")
    check_upsell_page(page, cbf)
    consent = page.locator("input[name=cbrblaccpt]")
    assert consent.get_attribute("required") is not None
    before = page.url
    page.click("#accept")  # not ticked: the browser refuses to submit
    assert page.url == before
    assert page.evaluate("document.querySelector('input[name=cbrblaccpt]').validity.valueMissing")
    shot(page, "clickbank-04-upsell-subscription")
    consent.check()
    with page.expect_request(lambda r: "cbur=a" in r.url) as sent:
        page.click("#accept")
    accepted = sent.value.url
    assert dict(parse_qsl(urlsplit(accepted).query))["cbrblaccpt"] == "true"
    assert names(accepted).index("cbur") < names(accepted).index("cbrblaccpt")
    # ClickBank's confirmation: a thank-you link per item bought
    page.wait_for_url("**/confirmation/**")
    links = page.locator("a", has_text="Access your purchase")
    assert links.count() == 3
    shot(page, "clickbank-05-confirmation")
    links.nth(0).click()
    page.wait_for_url("**/clickbank/thank-you**")
    assert "Starter" in page.content()
    page.wait_for_selector(".thank-you[data-state=done]", timeout=30_000)
    assert page.locator(".credits").get_attribute("data-credits") == "10"
    shot(page, "clickbank-06-thank-you")


def check_ledger(stack: Stack) -> None:
    def truth(s: Any) -> Any:
        async def go() -> tuple[int, str | None, list[str]]:
            user = await store_users.get_user_by_email(s, email="walker@example.com")
            balance = await store_credits.balance(s, user_id=user.id)
            account = await store_credits.get_account(s, user_id=user.id)
            events = await store_cb.list_events(s)
            return balance, account.plan_sku, sorted(e.state for e in events)

        return go()

    deadline = time.monotonic() + 30
    while True:
        balance, plan, states = stack.db(truth)
        if states == ["done"] * 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == ["done"] * 3, stack.log_tails()
    # Starter (10) + 50 credits + the Monitor subscription (5, it is now the plan)
    assert balance == 65 and plan == "plan_monitor"
