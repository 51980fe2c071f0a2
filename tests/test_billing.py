"""Plans and credits on the dashboard (a real SQLite database and Redis, the app behind a test
client): the catalogue's checks, the Billing page and its history in words, the header's
balance, a scan refused without credits (form and re-run, with a link to Billing), the plan's
page budget, CCBB_CREDITS=off, and account ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.catalogue import BUNDLED, CatalogueError, load_catalogue, parse_catalogue
from ccbb.settings import Settings
from store import credits as store_credits
from tests.test_web_scans import SECRET, Env, web_env
from web.app import create_app

FORM = {"domain": "shop.example", "credential_id": "CID1", "secret": SECRET, "version": "2.1",
        "country": "US", "partner_tag": "me-20"}  # fmt: skip


@pytest.fixture
def env(tmp_path: Path, test_redis_url: str) -> Iterator[Env]:
    with web_env(tmp_path, test_redis_url, CCBB_SIGNUP_CREDITS=0) as e:
        yield e


def grant(env: Env, user_id: int, amount: int, comment: str = "Goodwill") -> None:
    async def go(session: Any) -> None:
        await store_credits.grant(
            session, user_id=user_id, amount=amount, kind="grant", source="admin",
            comment=comment, idempotency_key=f"t:{user_id}:{amount}:{comment}",
        )  # fmt: skip

    env.run(env._with_session(go))


def balance(env: Env, user_id: int) -> int:
    return int(env.run(env._with_session(lambda s: store_credits.balance(s, user_id=user_id))))


def header_balance(html: str) -> int:
    m = re.search(r'id="credits-balance"[^>]*>Billing · (\d+) credit', html)
    assert m, "no balance in the header"
    return int(m.group(1))


# ---- the catalogue ---------------------------------------------------------------------------


def test_the_bundled_catalogue() -> None:
    catalogue = load_catalogue(BUNDLED)
    assert [p.sku for p in catalogue.plans] == ["plan_starter", "plan_pro", "plan_agency"]
    assert [p.sku for p in catalogue.packs] == ["credits_10", "credits_50"]
    pro = catalogue.get("plan_pro")
    assert pro is not None and pro.price == Decimal("49.00") and pro.recurring
    assert all(isinstance(i.price, Decimal) and i.currency == "USD" for i in catalogue.items)
    assert all(p.price <= 150 for p in catalogue.packs)
    assert catalogue.by_clickbank_item(pro.clickbank_item) == pro
    assert catalogue.get("nope") is None and catalogue.by_clickbank_item("999") is None
    assert catalogue.max_pages_for("plan_agency") > catalogue.max_pages_for("plan_starter")
    assert catalogue.max_pages_for(None) == catalogue.max_pages_without_plan
    assert [f["id"] for f in catalogue.section("flow")] == ["after-plan"]  # billing.upsell_flow


def test_each_mistake_of_a_catalogue_gets_its_message(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(
        'currency = "usd"\n'
        '[[plan]]\nsku = "Plan Pro"\nname = "Pro"\nprice = 19.99\ncredits = 0\nmax_pages = 10\n'
        'clickbank_item = "1"\n'
        '[[plan]]\nsku = "plan_b"\nname = "B"\nprice = "1.999"\ncredits = 1\nclickbank_item = "1"\n'
        'colour = "red"\n'
        '[[pack]]\nsku = "credits_1"\nname = "One"\nprice = "5"\ncredits = 1\nclickbank_item = "7"\n'
        "max_pages = 3\n"
        '[[flow]]\nname = "after_pro"\n'
    )
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    problems = caught.value.problems
    text = str(caught.value)
    assert str(path) in text and "CCBB_PLANS_FILE" in text
    expected = [
        "currency = 'usd'",
        "sku 'Plan Pro' must be lower-case",
        "price 19.99 must be a string",
        "credits 0 must be a whole number above 0",
        "price '1.999' must be a string of at most 2 decimals",
        "max_pages is missing",
        "unknown field 'colour'",
        "unknown field 'max_pages' (packs have no page limit",
    ]
    for words in expected:
        assert any(words in p for p in problems), (words, problems)
    assert len(problems) == len(expected)
    # the same ClickBank item twice, an unknown section kept
    ok = parse_catalogue({
        "plan": [{"sku": "a", "name": "A", "price": "1", "credits": 1, "max_pages": 1,
                  "clickbank_item": "1"}],
        "flow": [{"name": "x", "steps": [1, 2]}],
    })  # fmt: skip
    assert ok.section("flow") == [{"name": "x", "steps": [1, 2]}]
    with pytest.raises(CatalogueError, match="also a's"):
        parse_catalogue({"plan": [
            {"sku": "a", "name": "A", "price": "1", "credits": 1, "max_pages": 1, "clickbank_item": "1"},
            {"sku": "b", "name": "B", "price": "1", "credits": 1, "max_pages": 1, "clickbank_item": "1"},
        ]})  # fmt: skip
    path.write_text("[[plan]\n")
    with pytest.raises(CatalogueError, match="not valid TOML"):
        load_catalogue(path)
    with pytest.raises(CatalogueError, match="does not exist"):
        load_catalogue(tmp_path / "missing.toml")


def test_the_app_does_not_start_with_a_wrong_plans_file(
    tmp_path: Path, test_redis_url: str
) -> None:
    bad = tmp_path / "plans.toml"
    bad.write_text('[[plan]]\nsku = "x"\n')
    settings = Settings(CCBB_DATA_DIR=tmp_path, REDIS_URL=test_redis_url, CCBB_PLANS_FILE=bad)  # type: ignore[call-arg]
    with pytest.raises(CatalogueError, match="name is missing"):
        create_app(settings)
    good = tmp_path / "mine.toml"
    good.write_text('[[plan]]\nsku = "solo"\nname = "Solo"\nprice = "5.00"\ncredits = 3\n'
                    'max_pages = 50\nclickbank_item = "9"\n')  # fmt: skip
    assert load_catalogue(good).get("solo") is not None


# ---- Billing, the header, a scan without credits --------------------------------------------


def test_a_scan_without_credits_is_refused_with_a_link_to_billing(env: Env) -> None:
    user_id = env.signup("broke@example.com")
    r = env.post("/scans/new", FORM)
    assert r.status_code == 402
    assert "no scan credits left" in r.text and 'href="/billing"' in r.text
    assert env.scans_of(user_id) == []
    assert "CID1" not in env.get("/settings").text  # nothing saved for a refused scan
    assert header_balance(env.get("/").text) == 0


def test_billing_shows_the_balance_going_down_and_the_history_in_words(env: Env) -> None:
    user_id = env.signup("buyer@example.com")
    grant(env, user_id, 3, "Pro plan, monthly renewal")
    page = env.get("/billing").text
    assert re.search(r'id="balance">3<', page)
    assert header_balance(page) == 3
    assert "Pro plan, monthly renewal" in page and "No plan" in page
    for sku in ("plan_starter", "plan_pro", "plan_agency", "credits_10", "credits_50"):
        assert f'href="/billing/checkout/{sku}"' in page
    assert "$49.00 / month" in page and "$25.00" in page
    assert env.post("/scans/new", FORM).status_code == 303
    (scan,) = env.scans_of(user_id)
    page = env.get("/billing").text
    assert re.search(r'id="balance">2<', page) and header_balance(page) == 2
    assert f"Scan #{scan.id} of shop.example" in page
    assert scan.options["max_pages"] == 1000  # no plan: the catalogue's budget without one
    # cancelled before a worker started it: the credit comes back, once
    assert env.post(f"/scans/{scan.id}/cancel").status_code == 303
    env.post(f"/scans/{scan.id}/cancel")
    page = env.get("/billing").text
    assert re.search(r'id="balance">3<', page)
    assert page.count(f"Refund: scan #{scan.id} of shop.example cancelled before it started") == 1
    # a re-run spends again, and is refused without credits, with the link
    assert env.post(f"/scans/{scan.id}/rerun").status_code == 303
    assert balance(env, user_id) == 2


def test_rerun_without_credits(env: Env) -> None:
    user_id = env.signup("rerun@example.com")
    grant(env, user_id, 1)
    assert env.post("/scans/new", FORM).status_code == 303
    (scan,) = env.scans_of(user_id)
    r = env.post(f"/scans/{scan.id}/rerun")
    assert r.status_code == 402 and 'href="/billing"' in r.text
    assert len(env.scans_of(user_id)) == 1


def test_a_plan_on_the_billing_page_and_its_page_budget(env: Env) -> None:
    user_id = env.signup("pro@example.com")
    grant(env, user_id, 50)
    end = datetime.now(UTC) + timedelta(days=12)

    async def pro(session: Any) -> None:
        await store_credits.set_plan(
            session, user_id=user_id, sku="plan_pro", status="active", period_end=end, renews=True
        )

    env.run(env._with_session(pro))
    page = env.get("/billing").text
    assert re.search(r'id="plan-name">Pro<', page)
    day = f"{end:%b} {end.day}, {end.year}"  # Babel's English medium date: "Dec 1, 2026"
    assert f"renews on {day}" in page
    assert f"50 credits on {day}, when your Pro plan renews" in page
    assert "Your plan" in page and "Change to this plan" in page
    assert env.post("/scans/new", dict(FORM, max_pages="99999")).status_code == 303
    assert env.scans_of(user_id)[0].options["max_pages"] == 10_000  # the Pro plan's budget


def test_checkout_is_not_configured_yet(env: Env) -> None:
    env.signup("shopper@example.com")
    r = env.get("/billing/checkout/plan_pro")
    assert r.status_code == 200 and "Checkout is not configured" in r.text and "$49.00" in r.text
    assert env.get("/billing/checkout/plan_gold").status_code == 404


def test_the_account_page_shows_the_public_id(env: Env) -> None:
    env.signup("who@example.com")
    page = env.get("/account").text
    public = re.search(r'id="public-id">([0-9a-f-]{36})<', page)
    assert public


def test_credits_off(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url, CCBB_CREDITS="off", CCBB_SIGNUP_CREDITS=0) as env:
        user_id = env.signup("self-hosted@example.com")
        assert env.get("/billing").status_code == 404
        assert env.get("/billing/checkout/plan_pro").status_code == 404
        assert 'id="credits-balance"' not in env.get("/").text
        for _ in range(2):
            assert env.post("/scans/new", FORM).status_code == 303
        assert len(env.scans_of(user_id)) == 2 and balance(env, user_id) == 0
        assert "max_pages" not in env.scans_of(user_id)[0].options  # no plan budget either


def test_signup_credits(tmp_path: Path, test_redis_url: str) -> None:
    with web_env(tmp_path, test_redis_url, CCBB_SIGNUP_CREDITS=5) as env:
        user_id = env.signup("trial@example.com")
        assert balance(env, user_id) == 5
        assert "Welcome credits" in env.get("/billing").text
