"""The affiliate's statistics from real traffic: referral visits and sign-ups through the app,
sales, an upsell, a rebill and a refund as real INS notifications (encrypted as ClickBank does,
POSTed to the real endpoint, applied by a real arq worker); the page, its CSV and the JSON API
agree with figures worked out by hand. Also the API's join and errors, and the OpenAPI
document. SQLite and Redis, real."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from affiliates import commissions as cm
from store import affiliate_stats as stats_store
from store import affiliates as store_aff
from store import users as store_users
from tests.clickbank_fixtures import notification
from tests.test_clickbank_ins import CB, CLICKBANK_ENV, PACK, STARTER, sale
from tests.test_web_scans import PASSWORD, web_env
from web import affiliate_stats as stats_page
from web.i18n import money

FLUSH = 0.05
NOV = "from=2026-11-01&to=2026-11-30"


@pytest.fixture
def cb(tmp_path: Path, test_redis_url: str) -> Iterator[CB]:
    with web_env(tmp_path, test_redis_url, CCBB_AFFILIATE_VISIT_FLUSH_SECONDS=FLUSH,
                 CCBB_PUBLIC_URL="https://ccbb.example", **CLICKBANK_ENV) as env:  # fmt: skip
        yield CB(env)


def _login(cb: CB, email: str) -> None:
    cb.env.client.cookies.clear()
    cb.env.get("/login")
    r = cb.env.post("/login", {"email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text


def _join(cb: CB, email: str) -> store_aff.Affiliate:
    user = cb.env.signup(email)
    cb.env.get("/affiliate")
    r = cb.env.post("/affiliate", {"paypal_email": f"pp-{email}", "adult": "yes",
                                   "accept_terms": "yes"})  # fmt: skip
    assert r.status_code == 200, r.text
    found = cb.db(lambda s: store_aff.get_by_user(s, user_id=user))
    assert found is not None
    cb.env.client.cookies.clear()
    return found


def _signup_after(cb: CB, email: str) -> int:
    cb.env.get("/signup")
    r = cb.env.post("/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    user = cb.db(lambda s: store_users.get_user_by_email(s, email=email))
    return int(user.id)


def _traffic(cb: CB) -> tuple[store_aff.Affiliate, int, int]:
    """Three visits (two visitors), two sign-ups today; in November: a sale, an upsell, a rebill
    refunded later, and a second customer's sale."""
    aff = _join(cb, "stats@example.com")
    c = cb.env.client
    assert c.get(f"/r/{aff.ref_id}", follow_redirects=False).status_code == 303
    assert c.get(f"/?ref={aff.ref_id}", follow_redirects=False).status_code == 303  # same one
    a = _signup_after(cb, "customer-a@example.com")
    c.cookies.clear()
    c.get(f"/r/{aff.ref_id}", headers={"user-agent": "another browser"}, follow_redirects=False)
    c.get("/r/ZZZZZZZZZZ", follow_redirects=False)  # unknown: counts nothing
    b = _signup_after(cb, "customer-b@example.com")
    cb.ins(sale(cb.checkout(a), time="2026-11-02T10:00:00+00:00"))
    cb.ins(notification("BILL", receipt="ABCD1234-B001", item=STARTER, recurring=True,
                        amount="19.95", time="2026-11-03T09:00:00+00:00"))  # fmt: skip
    upsell = {"upsellOriginalReceipt": "ABCD1234", "upsellFlowId": 1, "upsellSession": "S",
              "upsellPath": "pack"}  # fmt: skip
    cb.ins(notification("SALE", receipt="UPSL0001", item=PACK, line_type="UPSELL",
                        upsell=upsell, amount="9.95", time="2026-11-03T23:59:59+00:00"))  # fmt: skip
    cb.ins(sale(cb.checkout(b), receipt="WXYZ9876", email="b@example.com",
                time="2026-11-05T00:00:00+00:00"))  # fmt: skip
    cb.work()
    cb.ins(notification("RFND", receipt="ABCD1234-B001", item=STARTER, recurring=True,
                        amount="-19.95", time="2026-11-05T12:00:00+00:00"))  # fmt: skip
    cb.work()
    time.sleep(FLUSH * 6)  # the web process writes the visits it gathered
    return aff, a, b


# per day, worked out by hand: (sales, sales amount, rebills, rebills amount, reversals,
# reversed, profit); 30 % half-up: 29.00 → 8.70, 19.95 → 5.99, 9.95 → 2.99
EXPECTED = {
    "2026-11-02": (1, "29.00", 0, "0.00", 0, "0.00", "8.70"),
    "2026-11-03": (1, "9.95", 1, "19.95", 0, "0.00", "8.98"),
    "2026-11-05": (1, "29.00", 0, "0.00", 1, "-5.99", "2.71"),
}
TOTAL = (3, "67.95", 1, "19.95", 1, "-5.99", "20.39")


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_periods_default_to_the_last_30_days_and_bad_ones_say_why() -> None:
    today = date(2026, 12, 1)
    assert stats_page.parse_period(None, None, today=today) == (date(2026, 11, 2), today)
    assert stats_page.parse_period("2026-01-01", None, today=today) == (date(2026, 1, 1), today)
    assert stats_page.parse_period(None, "2026-06-30", today=today) == (
        date(2026, 6, 1), date(2026, 6, 30))  # fmt: skip
    for start, end, why in (("2026-13-01", None, stats_page.BAD_DATE),
                            ("yesterday", None, stats_page.BAD_DATE),
                            ("2026-11-02", "2026-11-01", stats_page.BAD_ORDER),
                            ("2024-01-01", "2026-01-02", stats_page.TOO_LONG)):  # fmt: skip
        with pytest.raises(stats_page.PeriodError, match=re.escape(why)):
            stats_page.parse_period(start, end, today=today)
    assert stats_page.parse_period("2024-01-02", "2026-01-01", today=today)[0] == date(2024, 1, 2)


def test_csv_cells_are_numbers_or_neutralised_text() -> None:
    assert stats_page._cell(Decimal("-5.99")) == "-5.99"  # a number a spreadsheet adds up
    assert stats_page._cell(date(2026, 11, 3)) == "2026-11-03"
    assert stats_page._cell('=HYPERLINK("http://x")').startswith("'=")
    assert stats_page._cell("-2+3+cmd|' /C calc'!A0") == "'-2+3+cmd|' /C calc'!A0"
    assert stats_page._cell("@SUM(A1)") == "'@SUM(A1)" and stats_page._cell("total") == "total"


def test_statistics_from_real_traffic_on_the_page_in_the_csv_and_in_the_api(cb: CB) -> None:
    aff, _, _ = _traffic(cb)
    assert aff.id is not None
    today = datetime.now(UTC).date()
    # the store, against the hand-made figures
    stats = cb.db(lambda s: stats_store.statistics(
        s, affiliate_id=aff.id, start=date(2026, 11, 1), end=date(2026, 11, 30)))  # fmt: skip
    assert len(stats.days) == 30
    got = {d.day.isoformat(): (d.sales, f"{d.sales_amount}", d.rebills, f"{d.rebills_amount}",
                               d.reversals, f"{d.reversals_amount}", f"{d.profit}")
           for d in stats.days if d.sales or d.rebills or d.reversals}  # fmt: skip
    assert got == EXPECTED
    t = stats.totals
    assert (t.sales, f"{t.sales_amount}", t.rebills, f"{t.rebills_amount}", t.reversals,
            f"{t.reversals_amount}", f"{t.profit}") == TOTAL  # fmt: skip
    # the profit adds up to every commission entry, cent for cent
    entries = cb.db(lambda s: store_aff.commissions_of(s, affiliate_id=aff.id))
    assert sum((e.amount for e in entries), Decimal("0")) == Decimal("20.39")
    # the balance in SQL is the pure split, at any moment
    for now in (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC),
                datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)):  # fmt: skip
        sql = cb.db(lambda s, now=now: stats_store.balance(
            s, affiliate_id=aff.id, paid=Decimal("0.00"), now=now))  # fmt: skip
        assert sql == cm.balance(entries, paid=Decimal("0.00"), now=now)
    assert cm.balance(entries, paid=Decimal("0"), now=datetime(2026, 12, 10, tzinfo=UTC)
                      ).payable == Decimal("20.39")  # fmt: skip

    _login(cb, "stats@example.com")
    # today's visits and sign-ups, in the default period (the last 30 days)
    page = cb.env.get("/affiliate/stats").text
    row = re.search(rf'<tr data-day="{today.isoformat()}">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells[1:4] == ["3", "2", "2"]  # visits, unique visits, sign-ups
    # November: the money, row by row, and the totals
    page = cb.env.get(f"/affiliate/stats?{NOV}").text
    for day, (sales, amount, rebills, r_amount, _, reversed_, profit) in EXPECTED.items():
        row = re.search(rf'<tr data-day="{day}">(.*?)</tr>', page, re.S)
        assert row is not None, day
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        assert cells[4:] == [str(sales), money(amount), str(rebills), money(r_amount),
                             money(reversed_), money(profit)], day  # fmt: skip
    total = re.search(r'<tr class="total" id="stats-total">(.*?)</tr>', page, re.S)
    assert total is not None and "$20.39" in total.group(1) and "$67.95" in total.group(1)
    assert page.count("<tr data-day=") == 30
    balance = cm.balance(entries, paid=Decimal("0"), now=datetime.now(UTC))
    assert f'id="stats-pending">{money(balance.pending)}<' in page
    assert f'id="stats-payable">{money(balance.payable)}<' in page
    # in French: the same figures, as French writes them
    fr = cb.env.get(f"/affiliate/stats?{NOV}&lang=fr").text
    assert "Statistiques d'affiliation" in fr and "20,39 $" in fr and "Bénéfice" in fr
    cb.env.get("/affiliate/stats?lang=en")

    # the CSV: every day, oldest first, then the total; English columns
    r = cb.env.get(f"/affiliate/stats.csv?{NOV}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"affiliate-{aff.ref_id}-2026-11-01-2026-11-30.csv" in r.headers["content-disposition"]
    rows = _csv_rows(r.text)
    assert [x["date"] for x in rows] == [
        (date(2026, 11, 1) + timedelta(days=n)).isoformat() for n in range(30)
    ] + ["total"]
    by_day = {x["date"]: x for x in rows}
    for day, (sales, amount, rebills, r_amount, reversals, reversed_, profit) in EXPECTED.items():
        x = by_day[day]
        assert (int(x["sales"]), x["sales_amount"], int(x["rebills"]), x["rebills_amount"],
                int(x["reversals"]), x["reversals_amount"], x["profit"]) == (
            sales, amount, rebills, r_amount, reversals, reversed_, profit)  # fmt: skip
    assert by_day["total"]["profit"] == "20.39" and by_day["2026-11-04"]["profit"] == "0.00"
    assert cb.env.get("/affiliate/stats.csv?from=2026-11-30&to=2026-11-01").status_code == 400

    # the API: the same rows
    r = cb.env.post("/settings/tokens", {"name": "stats script"})
    token = re.search(
        r'<code id="new-token">([^<]+)</code>', cb.env.get(r.headers["location"]).text
    )
    assert token is not None
    cb.env.client.cookies.clear()
    auth = {"Authorization": f"Bearer {token.group(1)}"}
    body = cb.env.client.get(f"/api/v1/affiliate/stats?{NOV}", headers=auth).json()
    assert (body["from"], body["to"], body["currency"], len(body["days"])) == (
        "2026-11-01", "2026-11-30", "USD", 30)  # fmt: skip
    api_days = {d["date"]: d for d in body["days"]}
    for day, (sales, amount, rebills, r_amount, reversals, reversed_, profit) in EXPECTED.items():
        d = api_days[day]
        assert (d["sales"], d["sales_amount"], d["rebills"], d["rebills_amount"],
                d["reversals"], d["reversals_amount"], d["profit"]) == (
            sales, amount, rebills, r_amount, reversals, reversed_, profit)  # fmt: skip
    assert body["totals"]["profit"] == "20.39" and body["totals"]["date"] == "total"
    recent = cb.env.client.get("/api/v1/affiliate/stats", headers=auth).json()
    assert recent["to"] == today.isoformat() and len(recent["days"]) == 30
    assert recent["days"][-1]["visits"] == 3 and recent["days"][-1]["unique_visits"] == 2
    assert recent["days"][-1]["signups"] == 2
    me = cb.env.client.get("/api/v1/affiliate", headers=auth).json()
    assert (
        me["ref_id"] == aff.ref_id
        and me["referral_url"] == f"https://ccbb.example/?ref={aff.ref_id}"
    )
    assert me["balance"] == {"pending": f"{balance.pending:.2f}",
                             "payable": f"{balance.payable:.2f}", "paid": "0.00"}  # fmt: skip
    assert me["payouts"] == [] and me["currency"] == "USD" and me["status"] == "active"
    assert date.fromisoformat(me["next_payout_date"]).day in range(10, 32)
    for query in (
        "from=2026-11-31",
        "from=2026-11-02&to=2026-11-01",
        "from=2020-01-01&to=2026-11-01",
    ):
        r = cb.env.client.get(f"/api/v1/affiliate/stats?{query}", headers=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_query", query


def test_someone_else_sees_only_their_own_statistics(cb: CB) -> None:
    aff, _, _ = _traffic(cb)
    other = _join(cb, "other@example.com")
    _login(cb, "other@example.com")
    page = cb.env.get(f"/affiliate/stats?{NOV}").text
    assert other.ref_id in page and aff.ref_id not in page and "$20.39" not in page
    assert "$0.00" in page
    # there is no id in the address to change: the page is always the caller's own
    assert cb.env.get(f"/affiliate/stats?{NOV}&affiliate_id={aff.id}").text.count("$20.39") == 0
    # not a member: the page sends to the join form
    cb.env.signup("nobody@example.com")
    r = cb.env.get("/affiliate/stats", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/affiliate"
    assert cb.env.get("/affiliate/stats.csv", follow_redirects=False).status_code == 303
    cb.env.client.cookies.clear()
    r = cb.env.get("/affiliate/stats", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_period_error_is_shown_and_the_default_period_kept(cb: CB) -> None:
    _join(cb, "typo@example.com")
    _login(cb, "typo@example.com")
    r = cb.env.get("/affiliate/stats?from=2026-11-31")
    assert r.status_code == 400 and 'id="period-error"' in r.text
    assert "YYYY-MM-DD" in r.text and 'value="2026-11-31"' in r.text
    assert r.text.count("<tr data-day=") == 30


def test_the_affiliate_page_lists_the_latest_entries_and_sums_them_all(cb: CB) -> None:
    aff = _join(cb, "busy@example.com")
    at = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)

    async def many(s: Any) -> None:
        for n in range(130):
            await store_aff.add_commission(s, values={
                "key": f"t:{n}", "affiliate_id": aff.id, "customer_user_id": None,
                "kind": "rebill", "receipt": f"R{n:07d}", "transaction_time": at,
                "due_at": at + timedelta(days=7), "payment_amount": Decimal("19.95"),
                "rate": Decimal("0.30"), "amount": Decimal("5.99"), "reverses_id": None,
                "flagged": False, "note": "", "created_at": at,
            })  # fmt: skip

    cb.db(many)
    _login(cb, "busy@example.com")
    page = cb.env.get("/affiliate").text
    assert page.count("<tr><td>") == 100 and 'id="more-entries"' in page
    assert "R0000129" in page and "R0000029" not in page  # the newest first
    assert 'id="balance-payable">$778.70<' in page  # all 130 × 5.99, October's: payable
