"""The affiliate program: joining, the referral link (visits, unique visits, the first-landing
cookie), attribution of sign-ups (90 days, first landing wins, only new customers, revoked
members), self-referral flagged, and the operator's commands. Real app, SQLite and Redis."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.testclient import TestClient

from affiliates import messages, program, rules
from ccbb import affiliates_cli
from ccbb.settings import Settings
from store import affiliates as store_aff
from store import credits as store_credits
from store import users as store_users
from store.db import make_engine, session_factory
from store.migrate import upgrade
from web import affiliate
from web.app import create_app, session_secret

T = TypeVar("T")
PASSWORD = "a long enough password"
FLUSH = 0.05  # the web process writes the link's visits this often (web.visit_counter)


@pytest.fixture
def app_settings(tmp_path: Path, test_redis_url: str) -> Settings:
    url = f"sqlite:///{tmp_path / 'aff.sqlite3'}"
    settings = Settings(CCBB_DATA_DIR=tmp_path, DATABASE_URL=url, REDIS_URL=test_redis_url,  # type: ignore[call-arg]
                        CCBB_PUBLIC_URL="https://ccbb.example",
                        CCBB_AFFILIATE_VISIT_FLUSH_SECONDS=FLUSH)  # fmt: skip
    upgrade(settings.sqlalchemy_url)
    import redis

    # each test signs up several accounts from one address: start under the sign-up throttle
    with redis.Redis.from_url(test_redis_url) as r:
        for key in r.scan_iter("ccbb:signup:*"):
            r.delete(key)
    return settings


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), base_url="http://testserver") as c:
        yield c


def db(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def token(client: TestClient, path: str) -> str:
    assert client.get(path).status_code == 200
    return client.cookies["csrftoken"]


def signup(client: TestClient, email: str) -> None:
    t = token(client, "/signup")
    r = client.post("/signup", data={"email": email, "password": PASSWORD, "csrftoken": t},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text


def join(client: TestClient, **form: str) -> Any:
    t = token(client, "/affiliate")
    return client.post("/affiliate", data={"csrftoken": t, **form})


def new_affiliate(client: TestClient, settings: Settings, email: str) -> store_aff.Affiliate:
    """A member (signed up and joined), then logged out, cookies gone."""
    signup(client, email)
    r = join(client, paypal_email=f"pp-{email}", adult="yes", accept_terms="yes")
    assert r.status_code == 200 and messages.JOINED in r.text
    user = db(settings, lambda s: store_users.get_user_by_email(s, email=email))
    assert user is not None
    found = db(settings, lambda s: store_aff.get_by_user(s, user_id=user.id))
    assert found is not None
    client.cookies.clear()
    return found


def visits(settings: Settings, affiliate: store_aff.Affiliate) -> tuple[int, int]:
    """The link's counters in the database, once the web process has written them."""
    time.sleep(FLUSH * 6)
    today = datetime.now(UTC).date()
    rows = db(settings, lambda s: store_aff.visit_days(
        s, affiliate_id=affiliate.id, start=today - timedelta(days=1), end=today))  # fmt: skip
    return sum(r.visits for r in rows), sum(r.unique_visits for r in rows)


def referral(settings: Settings, email: str) -> store_aff.AffiliateReferral | None:
    user = db(settings, lambda s: store_users.get_user_by_email(s, email=email))
    assert user is not None
    return db(settings, lambda s: store_aff.referral_of(s, user_id=user.id))


# ---- pure rules --------------------------------------------------------------------------


def test_ref_ids_are_short_random_and_say_nothing_of_the_account() -> None:
    ids = {rules.new_ref_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(rules.REF_RE.match(i) and not i.isdigit() for i in ids)
    sample = next(iter(ids))
    assert rules.normalize_ref(sample.lower()) == sample
    assert rules.normalize_ref("1") is None and rules.normalize_ref("../etc/passwd") is None


def test_landing_cookie_is_signed_and_the_window_is_90_days_to_the_second() -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    cookie = rules.landing_cookie("k", rules.Landing("ABCDEFGHJK", at, 7))
    assert rules.read_landing("k", cookie) == rules.Landing("ABCDEFGHJK", at, 7)
    assert rules.read_landing("other key", cookie) is None
    assert rules.read_landing("k", cookie.replace("ABCDEFGHJK", "ZZZZZZZZZZ")) is None
    assert rules.read_landing("k", None) is None
    end = at + timedelta(days=90)
    assert rules.within_window(at, end)
    assert not rules.within_window(at, end + timedelta(seconds=1))
    assert not rules.within_window(at, at - timedelta(seconds=1))


def test_visitor_hash_is_keyed_and_holds_no_address() -> None:
    day = date(2026, 12, 1)
    h = rules.visitor_hash("k", ip="203.0.113.9", user_agent="UA", day=day)
    assert "203.0.113.9" not in h
    assert h == rules.visitor_hash("k", ip="203.0.113.9", user_agent="UA", day=day)
    assert h != rules.visitor_hash("k2", ip="203.0.113.9", user_agent="UA", day=day)
    assert h != rules.visitor_hash("k", ip="203.0.113.9", user_agent="UA", day=date(2026, 12, 2))


def test_self_referral_reasons() -> None:
    base = dict(affiliate_user_id=1, affiliate_email="a@x.io", paypal_email="pay@x.io",
                user_id=2, user_email="b@x.io", landing_user_id=None)  # fmt: skip
    assert rules.self_referral(**base) is None  # type: ignore[arg-type]
    assert rules.self_referral(**{**base, "user_id": 1}) == messages.SELF_SAME_ACCOUNT  # type: ignore[arg-type]
    assert rules.self_referral(**{**base, "user_email": "PAY@x.io"}) == messages.SELF_SAME_EMAIL  # type: ignore[arg-type]
    assert rules.self_referral(**{**base, "landing_user_id": 1}) == messages.SELF_SAME_BROWSER  # type: ignore[arg-type]


# ---- joining -----------------------------------------------------------------------------


def test_joining_needs_age_terms_and_a_paypal_address(
    client: TestClient, app_settings: Settings
) -> None:
    signup(client, "joiner@example.com")
    r = join(client, paypal_email="not an address", website="ftp:/x")
    assert r.status_code == 400
    for text in (messages.NOT_ADULT, messages.NO_TERMS, messages.BAD_PAYPAL, messages.BAD_WEBSITE):
        assert text in r.text
    assert 'value="not an address"' in r.text  # nothing typed is lost
    user = db(app_settings, lambda s: store_users.get_user_by_email(s, email="joiner@example.com"))
    assert user is not None
    assert db(app_settings, lambda s: store_aff.get_by_user(s, user_id=user.id)) is None

    r = join(client, paypal_email="me@paypal.example", website="https://my.blog",
             adult="yes", accept_terms="yes")  # fmt: skip
    assert r.status_code == 200 and messages.JOINED in r.text
    found = db(app_settings, lambda s: store_aff.get_by_user(s, user_id=user.id))
    assert found is not None and found.ref_id != str(user.id) and rules.REF_RE.match(found.ref_id)
    assert f"https://ccbb.example/?ref={found.ref_id}" in r.text
    again = join(client, paypal_email="other@paypal.example", adult="yes", accept_terms="yes")
    assert messages.ALREADY_MEMBER in again.text
    assert client.get("/affiliate").text.count(found.ref_id) >= 2


# ---- the link ----------------------------------------------------------------------------


def test_link_counts_visits_and_unique_visitors_and_lands_on_signup(
    client: TestClient, app_settings: Settings
) -> None:
    aff = new_affiliate(client, app_settings, "aff1@example.com")
    r = client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert rules.COOKIE in r.cookies
    r = client.get(f"/?ref={aff.ref_id.lower()}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert visits(app_settings, aff) == (2, 1)
    client.get(
        f"/r/{aff.ref_id}", headers={"user-agent": "another browser"}, follow_redirects=False
    )
    assert visits(app_settings, aff) == (3, 2)


def test_unknown_and_revoked_ref_ids_land_normally_and_count_nothing(
    client: TestClient, app_settings: Settings
) -> None:
    aff = new_affiliate(client, app_settings, "aff2@example.com")
    r = client.get("/r/ZZZZZZZZZZ", follow_redirects=False)
    assert r.status_code == 303 and rules.COOKIE not in r.cookies
    r = client.get("/?ref=nonsense", follow_redirects=False)
    assert r.status_code == 303 and rules.COOKIE not in r.cookies
    args = argparse.Namespace(affiliates_command="revoke", ref_id=aff.ref_id, reason="spam")
    assert asyncio.run(affiliates_cli._run(args, app_settings.sqlalchemy_url)) == 0
    r = client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    assert r.status_code == 303 and rules.COOKIE not in r.cookies
    assert visits(app_settings, aff) == (0, 0)
    signup(client, "after-revoke@example.com")
    assert referral(app_settings, "after-revoke@example.com") is None


def test_first_landing_wins_and_the_signup_is_attributed_for_good(
    client: TestClient, app_settings: Settings
) -> None:
    first = new_affiliate(client, app_settings, "first@example.com")
    second = new_affiliate(client, app_settings, "second@example.com")
    client.get(f"/r/{first.ref_id}", follow_redirects=False)
    r = client.get(f"/r/{second.ref_id}", follow_redirects=False)
    assert rules.COOKIE not in r.cookies  # not overwritten
    assert visits(app_settings, second) == (1, 1)  # the visit still counts
    signup(client, "customer@example.com")
    ref = referral(app_settings, "customer@example.com")
    assert ref is not None and ref.affiliate_id == first.id and not ref.self_referral
    # a sign-up without any landing is nobody's
    client.cookies.clear()
    signup(client, "walk-in@example.com")
    assert referral(app_settings, "walk-in@example.com") is None


@pytest.mark.parametrize(("age", "attributed"), [
    (timedelta(days=90) - timedelta(seconds=30), True),
    (timedelta(days=90) + timedelta(seconds=1), False),
])  # fmt: skip
def test_a_signup_counts_within_90_days_of_the_landing(
    client: TestClient, app_settings: Settings, age: timedelta, attributed: bool
) -> None:
    aff = new_affiliate(client, app_settings, "old@example.com")
    landed = datetime.now(UTC) - age
    secret = session_secret(app_settings)
    client.cookies.set(
        rules.COOKIE, rules.landing_cookie(secret, rules.Landing(aff.ref_id, landed))
    )
    signup(client, "late@example.com")
    assert (referral(app_settings, "late@example.com") is not None) is attributed


def test_self_referrals_are_recorded_flagged(client: TestClient, app_settings: Settings) -> None:
    signup(client, "selfie@example.com")
    join(client, paypal_email="selfie-pay@example.com", adult="yes", accept_terms="yes")
    user = db(app_settings, lambda s: store_users.get_user_by_email(s, email="selfie@example.com"))
    assert user is not None
    aff = db(app_settings, lambda s: store_aff.get_by_user(s, user_id=user.id))
    assert aff is not None
    # the affiliate's own browser, logged in, follows the link, then opens a second account
    client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    t = token(client, "/")
    client.post("/logout", data={"csrftoken": t}, follow_redirects=False)
    signup(client, "second-me@example.com")
    ref = referral(app_settings, "second-me@example.com")
    assert ref is not None and ref.self_referral and ref.flag_reason == messages.SELF_SAME_BROWSER
    # a fresh browser, signing up with the affiliate's PayPal address
    client.cookies.clear()
    client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    signup(client, "selfie-pay@example.com")
    ref = referral(app_settings, "selfie-pay@example.com")
    assert ref is not None and ref.self_referral and ref.flag_reason == messages.SELF_SAME_EMAIL
    members = db(app_settings, lambda s: store_aff.list_members(s))
    assert [(m.referrals, m.flagged) for m in members] == [(2, 2)]


def test_an_account_that_paid_before_is_never_attributed(app_settings: Settings) -> None:
    async def work(session: Any) -> Any:
        owner = await store_users.create_user(session, email="o@example.com", password_hash="x")
        aff = await program.join(session, user_id=owner.id, paypal_email="o@pp.io", website="")
        buyer = await store_users.create_user(session, email="b@example.com", password_hash="x")
        await store_credits.grant(
            session, user_id=buyer.id, amount=10, kind="purchase", source="clickbank",
            comment="pack", idempotency_key="clickbank:ABCD1234:1",
        )  # fmt: skip
        landing = rules.Landing(aff.ref_id, datetime.now(UTC) - timedelta(days=1))
        paid = await program.attribute_signup(
            session, user=buyer, landing=landing, now=datetime.now(UTC)
        )
        fresh = await store_users.create_user(session, email="f@example.com", password_hash="x")
        new = await program.attribute_signup(
            session, user=fresh, landing=landing, now=datetime.now(UTC)
        )
        again = await program.attribute_signup(
            session, user=fresh, landing=landing, now=datetime.now(UTC)
        )
        return paid, new, again

    paid, new, again = db(app_settings, work)
    assert paid is None and new is not None and again is None


def test_operator_lists_refuses_and_reinstates(
    client: TestClient, app_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    aff = new_affiliate(client, app_settings, "listed@example.com")
    url = app_settings.sqlalchemy_url

    def cli(command: str, ref_id: str = "", status: str | None = None) -> int:
        args = argparse.Namespace(affiliates_command=command, ref_id=ref_id, reason="r",
                                  status=status)  # fmt: skip
        return asyncio.run(affiliates_cli._run(args, url))

    assert cli("list") == 0
    out = capsys.readouterr().out
    assert aff.ref_id in out and "active" in out and "listed@example.com" in out
    assert cli("refuse", aff.ref_id.lower()) == 0
    assert cli("refuse", "NOPE") == 1
    assert "no affiliate has the REF ID NOPE" in capsys.readouterr().err
    client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    assert visits(app_settings, aff) == (0, 0)
    assert cli("reinstate", aff.ref_id) == 0
    time.sleep(affiliate.REF_CACHE_SECONDS)  # the link's answer for a REF ID lives a second
    client.get(f"/r/{aff.ref_id}", follow_redirects=False)
    assert visits(app_settings, aff) == (1, 1)
