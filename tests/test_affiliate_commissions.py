"""Commissions from real INS notifications (encrypted as ClickBank does, POSTed to the real
endpoint, applied by a real arq worker): a sale, three rebills, an upsell, a refund, a
chargeback, replays; amounts exact to the cent (half-up); self-referral pays nothing."""

# ruff: noqa: F811  (the cb fixture is imported from test_clickbank_ins)
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from affiliates import commissions as cm
from affiliates import program
from store import affiliates as store_aff
from store import users as store_users
from tests.clickbank_fixtures import notification
from tests.test_clickbank_ins import CB, PACK, STARTER, cb, sale  # noqa: F401
from tests.test_web_scans import PASSWORD


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


def _referred_signup(cb: CB, ref_id: str, email: str, *, clear: bool = True) -> int:
    if clear:
        cb.env.client.cookies.clear()
    cb.env.get(f"/r/{ref_id}", follow_redirects=False)
    cb.env.get("/signup")
    r = cb.env.post("/signup", {"email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    user = cb.db(lambda s: store_users.get_user_by_email(s, email=email))
    return int(user.id)


def _entries(cb: CB, aff: store_aff.Affiliate) -> list[store_aff.AffiliateCommission]:
    return list(cb.db(lambda s: store_aff.commissions_of(s, affiliate_id=aff.id)))


def test_rounding_is_half_up_to_the_cent() -> None:
    rate = Decimal("0.30")
    assert cm.commission(Decimal("19.95"), rate) == Decimal("5.99")  # 5.985: half-up
    assert cm.commission(Decimal("9.95"), rate) == Decimal("2.99")  # 2.985
    assert cm.commission(Decimal("29.00"), rate) == Decimal("8.70")
    assert cm.commission(Decimal("0.01"), rate) == Decimal("0.00")
    assert cm.reversal(Decimal("5.99"), Decimal("0"), rate) == Decimal("-5.99")
    assert cm.reversal(Decimal("5.99"), Decimal("10.00"), rate) == Decimal("-3.00")
    assert cm.reversal(Decimal("5.99"), Decimal("50.00"), rate) == Decimal("-5.99")


def test_every_payment_of_a_referred_customer_earns_30_percent_and_reversals_take_it_back(
    cb: CB,
) -> None:
    aff = _join(cb, "earner@example.com")
    customer = _referred_signup(cb, aff.ref_id, "customer@example.com")
    ref = cb.checkout(customer)
    t = iter(f"2026-11-{d:02d}T10:00:00+00:00" for d in range(1, 30))
    first = sale(ref, time=next(t))
    cb.ins(first)
    for n in (1, 2, 3):
        cb.ins(notification("BILL", receipt=f"ABCD1234-B00{n}", item=STARTER, recurring=True,
                            amount="19.95", time=next(t)))  # fmt: skip
    upsell = {"upsellOriginalReceipt": "ABCD1234", "upsellFlowId": 1, "upsellSession": "S",
              "upsellPath": "pack"}  # fmt: skip
    cb.ins(notification("SALE", receipt="UPSL0001", item=PACK, line_type="UPSELL",
                        upsell=upsell, amount="9.95", time=next(t)))  # fmt: skip
    cb.work()
    cb.ins(first)  # a replay
    cb.work()
    rows = _entries(cb, aff)
    assert sorted((r.kind, r.receipt, r.amount) for r in rows) == [
        ("rebill", "ABCD1234-B001", Decimal("5.99")),
        ("rebill", "ABCD1234-B002", Decimal("5.99")),
        ("rebill", "ABCD1234-B003", Decimal("5.99")),
        ("sale", "ABCD1234", Decimal("8.70")),
        ("upsell", "UPSL0001", Decimal("2.99")),
    ]
    cb.ins(notification("RFND", receipt="ABCD1234-B003", item=STARTER, recurring=True,
                        amount="-19.95", time=next(t)))  # fmt: skip
    cb.ins(notification("CGBK", receipt="UPSL0001", item=PACK, amount="-9.95", time=next(t)))
    cb.ins(notification("RFND", receipt="UPSL0001", item=PACK, amount="-9.95", time=next(t)))
    cb.work()
    rows = _entries(cb, aff)
    reversals = [r for r in rows if r.kind == "reversal"]
    by_id = {r.id: r for r in rows}
    assert sorted((r.amount, by_id[r.reverses_id].receipt) for r in reversals) == [
        (Decimal("-5.99"), "ABCD1234-B003"),
        (Decimal("-2.99"), "UPSL0001"),  # the RFND after the CGBK reverses nothing more
    ]
    total = sum((r.amount for r in rows), Decimal("0"))
    assert total == Decimal("20.68")
    # the affiliate sees every entry and the (pending) balance on the Affiliate page
    cb.env.client.cookies.clear()
    cb.env.get("/login")
    cb.env.post("/login", {"email": "earner@example.com", "password": PASSWORD})
    page = cb.env.get("/affiliate").text
    assert page.count("<tr><td>") == 7 and "$-5.99" in page and "$8.70" in page
    # November's commissions: pending in November, payable from December (out of the window)
    during = cm.balance(rows, paid=Decimal("0"), now=datetime(2026, 11, 30, tzinfo=UTC))
    assert (during.pending, during.payable) == (Decimal("20.68"), Decimal("0"))
    after = cm.balance(rows, paid=Decimal("0"), now=datetime(2026, 12, 10, tzinfo=UTC))
    assert (after.pending, after.payable) == (Decimal("0"), Decimal("20.68"))
    # a reversal after a payout leaves the balance negative until later commissions pay it
    earned = [r for r in rows if r.kind != "reversal"]
    paid_out = cm.balance(earned, paid=Decimal("29.66"), now=datetime(2026, 12, 10, tzinfo=UTC))
    assert paid_out.payable == Decimal("0.00")
    assert cm.balance(rows, paid=Decimal("29.66"), now=datetime(2026, 12, 10, tzinfo=UTC)
                      ).payable == Decimal("-8.98")  # fmt: skip


def test_revoked_members_earn_no_more_and_self_referral_pays_nothing(cb: CB) -> None:
    aff = _join(cb, "self@example.com")
    # the affiliate's own PayPal address opens the referred account: flagged
    buyer = _referred_signup(cb, aff.ref_id, "pp-self@example.com")
    cb.ins(sale(cb.checkout(buyer), time="2026-11-02T10:00:00+00:00"))
    cb.work()
    [row] = _entries(cb, aff)
    assert row.amount == Decimal("0.00") and row.flagged and row.note

    other = _join(cb, "gone@example.com")
    customer = _referred_signup(cb, other.ref_id, "left@example.com")

    async def revoke(s: Any) -> Any:
        return await store_aff.set_status(s, ref_id=other.ref_id, status=store_aff.REVOKED)

    cb.db(revoke)
    cb.ins(sale(cb.checkout(customer), receipt="WXYZ9876", time="2026-11-03T10:00:00+00:00"))
    cb.work()
    assert _entries(cb, other) == []
    assert program is not None
