"""store.affiliate_stats on SQLite and PostgreSQL: entries on each side of UTC midnight land on
their own day, every kind in its column, amounts exact to the cent; the balance in SQL is the
pure split of affiliates.commissions.balance."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from affiliates import commissions as cm
from store import affiliate_stats as stats_store
from store import affiliates as store_aff
from store import users as store_users
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.conftest import _off_loop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ccbb.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_schemas")()
    _off_loop(upgrade, url)
    return url


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (key, kind, transaction time UTC, payment, commission)
ENTRIES = [
    ("a", "sale", "2026-11-02 23:59:59", "29.00", "8.70"),
    ("b", "rebill", "2026-11-03 00:00:00", "19.95", "5.99"),
    ("c", "upsell", "2026-11-03 12:00:00", "9.95", "2.99"),
    ("d", "rebill", "2026-11-03 23:59:59.999999", "19.95", "5.99"),
    ("e", "reversal", "2026-11-04 00:00:00", "-19.95", "-5.99"),
    ("f", "sale", "2026-10-31 23:59:59", "49.00", "14.70"),  # before the period
    ("g", "sale", "2026-12-01 00:00:00", "0.01", "0.00"),  # after it
]


async def _seed(session: Any) -> int:
    owner = await store_users.create_user(session, email="aff@example.com", password_hash="x")
    buyer = await store_users.create_user(session, email="buy@example.com", password_hash="x")
    other = await store_users.create_user(session, email="oth@example.com", password_hash="x")
    aff = await store_aff.create_affiliate(session, user_id=owner.id, ref_id="ABCDEFGHJK",
                                           paypal_email="p@x.example", website="")  # fmt: skip
    rival = await store_aff.create_affiliate(session, user_id=other.id, ref_id="BCDEFGHJKM",
                                             paypal_email="q@x.example", website="")  # fmt: skip
    assert aff.id is not None and rival.id is not None
    for key, kind, at, payment, amount in ENTRIES:
        await store_aff.add_commission(session, values={
            "key": key, "affiliate_id": aff.id, "customer_user_id": buyer.id, "kind": kind,
            "receipt": f"R-{key}", "transaction_time": _t(at), "due_at": _t(at) + timedelta(days=7),
            "payment_amount": Decimal(payment), "rate": Decimal("0.30"), "amount": Decimal(amount),
            "reverses_id": None, "flagged": False, "note": "", "created_at": _t(at),
        })  # fmt: skip
    await store_aff.add_commission(session, values={  # someone else's: never counted here
        "key": "z", "affiliate_id": rival.id, "customer_user_id": None, "kind": "sale",
        "receipt": "R-z", "transaction_time": _t("2026-11-03 10:00:00"),
        "due_at": _t("2026-11-10 10:00:00"), "payment_amount": Decimal("100.00"),
        "rate": Decimal("0.30"), "amount": Decimal("30.00"), "reverses_id": None,
        "flagged": False, "note": "", "created_at": _t("2026-11-03 10:00:00"),
    })  # fmt: skip
    await store_aff.add_referral(session, user_id=buyer.id, affiliate_id=aff.id,
                                 landed_at=_t("2026-11-01 23:00:00"), self_referral=False)  # fmt: skip
    await store_aff.count_visits(session, counts=[
        {"affiliate_id": aff.id, "day": date(2026, 11, 2), "visits": 7, "unique_visits": 5},
        {"affiliate_id": rival.id, "day": date(2026, 11, 2), "visits": 99, "unique_visits": 9},
    ])  # fmt: skip
    await store_aff.count_visits(session, counts=[
        {"affiliate_id": aff.id, "day": date(2026, 11, 2), "visits": 1, "unique_visits": 0},
    ])  # fmt: skip
    return aff.id


async def test_days_totals_and_balance(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            aff_id = await _seed(session)
            # the sign-up's time: set by the store at now; move it to a known day
            ref = (await store_aff.referrals_of(session, affiliate_id=aff_id))[0]
            ref.signed_up_at = _t("2026-11-03 00:00:00")
            session.add(ref)
            await session.commit()
            s = await stats_store.statistics(session, affiliate_id=aff_id,
                                             start=date(2026, 11, 1), end=date(2026, 11, 30))  # fmt: skip
            entries = await store_aff.commissions_of(session, affiliate_id=aff_id)
            balances = {
                now: await stats_store.balance(
                    session, affiliate_id=aff_id, paid=Decimal("3.00"), now=now
                )
                for now in (
                    _t("2026-11-30 12:00:00"),
                    _t("2026-12-01 00:00:00"),
                    _t("2026-12-05 00:00:00"),
                    _t("2027-01-01 00:00:00"),
                )
            }
    finally:
        await engine.dispose()
    assert [d.day for d in s.days] == [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]
    by_day = {d.day.day: d for d in s.days}
    d2, d3, d4 = by_day[2], by_day[3], by_day[4]
    assert (d2.visits, d2.unique_visits, d2.sales, d2.sales_amount, d2.profit) == (
        8, 5, 1, Decimal("29.00"), Decimal("8.70"))  # fmt: skip
    assert (d3.signups, d3.sales, d3.sales_amount, d3.rebills, d3.rebills_amount, d3.profit) == (
        1, 1, Decimal("9.95"), 2, Decimal("39.90"), Decimal("14.97"))  # fmt: skip
    assert (d4.reversals, d4.reversals_amount, d4.profit, d4.sales) == (
        1, Decimal("-5.99"), Decimal("-5.99"), 0)  # fmt: skip
    t = s.totals
    assert (t.visits, t.signups, t.sales, t.rebills, t.reversals) == (8, 1, 2, 2, 1)
    assert (t.sales_amount, t.rebills_amount, t.profit) == (
        Decimal("38.95"), Decimal("39.90"), Decimal("17.68"))  # fmt: skip
    assert sum((d.profit for d in s.days), Decimal("0")) == t.profit
    for now, got in balances.items():
        assert got == cm.balance(entries, paid=Decimal("3.00"), now=now), now
    assert balances[_t("2027-01-01 00:00:00")].payable == Decimal(
        "29.38"
    )  # all 32.38 of it, less 3


async def test_a_period_is_checked(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            with pytest.raises(ValueError, match="ends before"):
                await stats_store.statistics(session, affiliate_id=1, start=date(2026, 2, 1),
                                             end=date(2026, 1, 1))  # fmt: skip
            with pytest.raises(ValueError, match="at most"):
                await stats_store.statistics(session, affiliate_id=1, start=date(2024, 1, 1),
                                             end=date(2026, 1, 2))  # fmt: skip
    finally:
        await engine.dispose()


async def test_a_reversal_counts_where_the_commission_it_reverses_counts(db_url: str) -> None:
    """October's commission is payable in December; its refund on 2 December takes it back from
    the payable part at once (not from the pending part, which would let the payout date pay
    it): the SQL sums agree with commissions.balance, reversal rows included."""
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            aff_id = await _seed(session)
            f = next(e for e in await store_aff.commissions_of(session, affiliate_id=aff_id)
                     if e.key == "f")  # fmt: skip
            await store_aff.add_commission(session, values={
                "key": "f-rfnd", "affiliate_id": aff_id, "customer_user_id": f.customer_user_id,
                "kind": "reversal", "receipt": f.receipt,
                "transaction_time": _t("2026-12-02 09:00:00"),
                "due_at": _t("2026-12-02 09:00:00"), "payment_amount": Decimal("-49.00"),
                "rate": Decimal("0.30"), "amount": Decimal("-14.70"), "reverses_id": f.id,
                "flagged": False, "note": "", "created_at": _t("2026-12-02 09:00:00"),
            })  # fmt: skip
            entries = await store_aff.commissions_of(session, affiliate_id=aff_id)
            now = _t("2026-12-05 00:00:00")
            got = await stats_store.balance(
                session, affiliate_id=aff_id, paid=Decimal("0"), now=now
            )
    finally:
        await engine.dispose()
    assert got == cm.balance(entries, paid=Decimal("0"), now=now)
    # October's 14.70 leaves the payable part (14.70 + November's 17.68), not the pending one
    assert (got.payable, got.pending) == (Decimal("17.68"), Decimal("0.00"))
