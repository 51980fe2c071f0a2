"""``POST /clickbank/ins`` and its job against the real app, a real Redis (arq queue and worker)
and a migrated SQLite database: what each notification does to the ledger, replays,
out-of-order events, refusals that keep nothing, accounts made for new buyers, the thank-you
page and the refund rule. Bodies are encrypted by the test's own ClickBank implementation."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker
from sqlalchemy import update

from billing.clickbank_links import REFERENCE_PARAM, cbpop
from ccbb.clickbank_jobs import clickbank_event_job
from store import clickbank as store_cb
from store import credits as store_credits
from store import users as store_users
from store.db import make_engine, session_factory
from store.models import Scan, User, utcnow
from tests.clickbank_fixtures import SECRET, VENDOR, encrypt_ins, notification
from tests.test_web_scans import PASSWORD, Env, web_env
from web.signing import session_secret

STARTER, PRO, PACK = "1", "2", "4"  # the bundled catalogue's ClickBank items
CLICKBANK_ENV = {"CCBB_CLICKBANK_VENDOR": VENDOR, "CCBB_CLICKBANK_SECRET_KEY": SECRET,
                 "CCBB_SIGNUP_CREDITS": "0"}  # fmt: skip


class CB:
    def __init__(self, env: Env) -> None:
        self.env = env

    def ins(self, payload: dict[str, Any] | bytes) -> Any:
        body = payload if isinstance(payload, bytes) else encrypt_ins(payload)
        return self.env.client.post(
            "/clickbank/ins", content=body, headers={"content-type": "application/json"}
        )

    def db(self, fn: Any) -> Any:
        return self.env.run(self.env._with_session(fn))

    def work(self) -> None:
        """Run an arq worker on the app's queue until it is empty (deferred retries included)."""
        settings = self.env.settings

        async def go() -> None:
            engine = make_engine(settings.sqlalchemy_url)
            pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))

            async def startup(ctx: dict[str, Any]) -> None:
                ctx.update(settings=settings, sessions=session_factory(engine),
                           signing_secret=session_secret(settings))  # fmt: skip

            worker = Worker(
                functions=[clickbank_event_job], redis_pool=pool, queue_name=settings.queue_name,
                burst=True, on_startup=startup, poll_delay=0.05, max_tries=8,
            )  # fmt: skip
            try:
                await worker.main()
            finally:
                await worker.close()
                await engine.dispose()

        asyncio.run(go())

    def events(self) -> list[store_cb.ClickbankEvent]:
        return list(reversed(self.db(lambda s: store_cb.list_events(s, limit=1000))))

    def balance(self, user_id: int) -> int:
        return int(self.db(lambda s: store_credits.balance(s, user_id=user_id)))

    def account(self, user_id: int) -> store_credits.CreditAccount:
        return self.db(lambda s: store_credits.get_account(s, user_id=user_id))

    def ledger(self, user_id: int) -> list[store_credits.LedgerEntry]:
        return list(reversed(self.db(lambda s: store_credits.history(s, user_id=user_id))))

    def checkout(self, user_id: int, sku: str = "plan_starter") -> str:
        ref = f"ref-{sku}-{user_id}-0123456789abcdef"
        self.db(lambda s: store_cb.create_checkout(s, reference=ref, user_id=user_id, sku=sku))
        return ref

    def spend(self, user_id: int, amount: int, key: str) -> None:
        self.db(lambda s: store_credits.revoke(
            s, user_id=user_id, amount=amount, kind="scan", source="scan", comment="a scan",
            idempotency_key=key,
        ))  # fmt: skip


@pytest.fixture
def cb(tmp_path: Path, test_redis_url: str) -> Iterator[CB]:
    with web_env(tmp_path, test_redis_url, **CLICKBANK_ENV) as env:
        yield CB(env)


def sale(ref: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("item", STARTER)
    kw.setdefault("recurring", kw["item"] in (STARTER, PRO))
    return notification("SALE", variables={REFERENCE_PARAM: ref}, **kw)


# ---- the endpoint ------------------------------------------------------------------------


def test_sale_of_a_plan_grants_its_credits_once_and_activates_it(cb: CB) -> None:
    user = cb.env.signup("plan@example.com")
    ref = cb.checkout(user)
    payload = sale(ref, next_payment="2026-12-31T10:00:00+00:00")
    for attempt in (1, 2, 3):  # ClickBank's retries (a new IV each time, attemptCount grows)
        payload["attemptCount"] = attempt
        assert cb.ins(payload).status_code == 200
    cb.work()
    [event] = cb.events()
    assert event.deliveries == 3 and event.state == "done" and event.user_id == user
    assert event.credits == 10 and event.sku == "plan_starter"
    [row] = cb.ledger(user)
    assert (row.delta, row.kind, row.source, row.external_id) == (10, "purchase", "clickbank",
                                                                 "ABCD1234")  # fmt: skip
    assert row.idempotency_key == "clickbank:ABCD1234:1"
    account = cb.account(user)
    assert (account.plan_sku, account.plan_status, account.renews) == (
        "plan_starter",
        "active",
        True,
    )
    assert account.period_end is not None and account.period_end.day == 31
    # a replay after processing changes nothing either
    assert cb.ins(payload).status_code == 200
    cb.work()
    assert cb.balance(user) == 10 and len(cb.ledger(user)) == 1


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b"hello", "not json"),
        (encrypt_ins(notification(), "WRONGKEY1"), "wrong key"),
        (encrypt_ins(notification())[:-40] + b'"}', "truncated"),
        (encrypt_ins("not a notification"), "non-JSON inside"),
        (encrypt_ins(notification(vendor="othervendor")), "wrong vendor"),
    ],
)
def test_refused_bodies_keep_nothing_but_a_counter(
    cb: CB, body: bytes, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = cb.env.signup("victim@example.com")
    caplog.set_level(logging.WARNING)
    r = cb.ins(body)
    assert r.status_code == 400, name
    cb.work()
    assert cb.events() == [] and cb.balance(user) == 0
    assert cb.env.redis.get("ccbb:clickbank:ins-refused") == b"1"
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "ClickBank notification refused" in logged
    assert "buyer@example.com" not in logged and "Ada" not in logged


def test_each_transaction_type_on_the_ledger(cb: CB) -> None:
    user = cb.env.signup("types@example.com")
    ref = cb.checkout(user)
    t = iter(f"2026-12-0{d}T10:00:00+00:00" for d in range(1, 10))
    assert cb.ins(sale(ref, time=next(t))).status_code == 200  # plan: +10
    upsell = {"upsellOriginalReceipt": "ABCD1234", "upsellFlowId": 1, "upsellSession": "S",
              "upsellPath": "pack"}  # fmt: skip
    cb.ins(notification("SALE", receipt="UPSL0001", item=PACK, line_type="UPSELL",
                        upsell=upsell, time=next(t)))  # fmt: skip  # pack: +10 (no reference)
    cb.ins(notification("BILL", receipt="ABCD1234-B002", item=STARTER, recurring=True,
                        time=next(t), next_payment="2027-01-31T10:00:00+00:00"))  # fmt: skip
    cb.ins(notification("TEST", receipt="********", time=next(t)))
    cb.work()
    assert cb.balance(user) == 30
    assert cb.account(user).period_end.month == 1  # type: ignore[union-attr]
    cb.ins(notification("CANCEL-REBILL", item=STARTER, recurring=True, time=next(t)))
    cb.work()
    account = cb.account(user)
    assert (account.plan_status, account.renews) == ("cancelled", False)
    assert account.period_end.month == 1  # type: ignore[union-attr]  # runs to its end
    cb.ins(notification("UNCANCEL-REBILL", item=STARTER, recurring=True, time=next(t)))
    cb.work()
    assert (cb.account(user).plan_status, cb.account(user).renews) == ("active", True)
    cb.ins(notification("SUBSCRIPTION-CHG", item=PRO, recurring=True, time=next(t)))
    cb.work()
    assert cb.account(user).plan_sku == "plan_pro" and cb.balance(user) == 30
    # the user spends 25 of 30; the pack (10) is charged back, then the first sale refunded
    cb.spend(user, 25, "spent")
    cb.ins(notification("CGBK", receipt="UPSL0001", item=PACK, time=next(t)))
    cb.work()
    assert cb.balance(user) == 0
    reversal = cb.ledger(user)[-1]
    assert (reversal.delta, reversal.shortfall, reversal.kind) == (-5, 5, "revoke")
    events = {e.receipt + e.transaction_type: e for e in cb.events()}
    assert "5 already spent" in (events["UPSL0001CGBK"].outcome or "")
    assert events["********TEST"].state == "ignored"
    cb.ins(notification("RFND", item=STARTER, time=next(t)))
    cb.work()
    assert cb.balance(user) == 0
    assert cb.ledger(user)[-1].shortfall == 10
    # the plan was the refunded payment's (the subscription changed to Pro on that order)
    assert cb.account(user).plan_status == "active"
    # an INSF of the same payment after its RFND reverses nothing more
    cb.ins(notification("INSF", item=STARTER, time="2026-12-19T10:00:00+00:00"))
    cb.work()
    assert len([e for e in cb.ledger(user) if e.idempotency_key.startswith("clickbank-rev")]) == 2


def test_refund_of_the_plan_ends_it(cb: CB) -> None:
    user = cb.env.signup("ends@example.com")
    cb.ins(sale(cb.checkout(user)))
    cb.ins(notification("RFND", item=STARTER, recurring=True, time="2026-12-02T10:00:00+00:00"))
    cb.work()
    account = cb.account(user)
    assert cb.balance(user) == 0 and account.plan_status == "ended" and account.plan_sku is None


def test_out_of_order_events_wait_for_their_sale(cb: CB) -> None:
    user = cb.env.signup("late@example.com")
    ref = cb.checkout(user)
    cb.ins(notification("BILL", receipt="ABCD1234-B002", item=STARTER, recurring=True,
                        time="2026-12-02T10:00:00+00:00"))  # fmt: skip
    cb.ins(notification("RFND", receipt="ABCD1234-B002", item=STARTER,
                        time="2026-12-03T10:00:00+00:00"))  # fmt: skip
    # the worker runs: the BILL and the RFND wait for the order's SALE …
    settings = cb.env.settings
    ids = [e.id for e in cb.events()]

    async def drain_once() -> None:
        from ccbb.clickbank_jobs import process_event

        engine = make_engine(settings.sqlalchemy_url)
        ctx = {"settings": settings, "sessions": session_factory(engine),
               "signing_secret": "s", "job_try": 1}  # fmt: skip
        for event_id in ids:
            assert event_id is not None
            await process_event(ctx, event_id)
        await engine.dispose()

    asyncio.run(drain_once())
    assert {e.state for e in cb.events()} == {"waiting"} and cb.balance(user) == 0
    # … which arrives: everything is processed, in order
    cb.ins(sale(ref))
    cb.work()
    assert [e.state for e in cb.events()] == ["done", "done", "done"]
    assert cb.balance(user) == 10  # +10 sale, +10 rebill, -10 rebill refunded
    assert [e.delta for e in cb.ledger(user)] == [10, 10, -10]


def test_buyer_without_account_gets_one_and_an_invitation(
    cb: CB, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cb.ins(notification("SALE", item=PACK, email="New.Buyer@example.com"))
    cb.work()
    user = cb.db(lambda s: store_users.get_user_by_email(s, email="new.buyer@example.com"))
    assert user is not None and cb.balance(user.id) == 10
    logged = "\n".join(r.getMessage() for r in caplog.records)
    link = re.search(r"http://\S+/clickbank/welcome/(\S+)", logged)
    assert link, logged
    path = "/clickbank/welcome/" + link.group(1)
    page = cb.env.client.get(path)
    assert page.status_code == 200 and "Set your password" in page.text
    r = cb.env.post(path, {"password": "short"})
    assert r.status_code == 400
    r = cb.env.post(path, {"password": PASSWORD})
    assert r.status_code == 303
    # the link is spent; the password logs in
    assert "no longer valid" in cb.env.client.get(path).text
    r = cb.env.post("/login", {"email": "new.buyer@example.com", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_an_existing_account_is_found_by_email_without_reference(cb: CB) -> None:
    user = cb.env.signup("buyer@example.com")
    cb.ins(notification("SALE", item=PACK))
    cb.work()
    assert cb.balance(user) == 10


# ---- the thank-you page ---------------------------------------------------------------------


def test_thank_you_waits_for_the_notification_then_shows_the_credits(cb: CB) -> None:
    user = cb.env.signup("thanks@example.com")
    params = {"cbreceipt": "ABCD1234", "time": "1764583200", "item": STARTER,
              "cname": "Ada", "cemail": "thanks@example.com"}  # fmt: skip
    params["cbpop"] = cbpop(SECRET, receipt="ABCD1234", time="1764583200", item=STARTER)
    page = cb.env.client.get("/clickbank/thank-you", params=params)
    assert page.status_code == 200 and 'data-state="waiting"' in page.text
    assert '<meta http-equiv="refresh" content="3">' in page.text and "<script" not in page.text
    assert "Starter" in page.text
    cb.ins(sale(cb.checkout(user)))
    cb.work()
    page = cb.env.client.get("/clickbank/thank-you", params=params)
    assert 'data-state="done"' in page.text and 'data-credits="10"' in page.text
    assert "Your balance: 10 credits." in page.text and "http-equiv" not in page.text


def test_thank_you_with_a_bad_cbpop_says_so_and_grants_nothing(cb: CB) -> None:
    user = cb.env.signup("forger@example.com")
    params = {"cbreceipt": "FAKE0001", "time": "1764583200", "item": STARTER, "cbpop": "ABCDEF12"}
    page = cb.env.client.get("/clickbank/thank-you", params=params)
    assert page.status_code == 400 and "could not confirm this purchase" in page.text
    assert cb.events() == [] and cb.balance(user) == 0


# ---- the refund rule -------------------------------------------------------------------------


def _age_account(cb: CB, user_id: int, days: float) -> None:
    async def go(s: Any) -> None:
        created = utcnow() - timedelta(days=days)
        await s.exec(update(User).where(User.id == user_id).values(created_at=created))  # type: ignore[arg-type]
        await s.commit()

    cb.db(go)


def _started_scan(cb: CB, user_id: int) -> None:
    scan_id = cb.env.make_scan(user_id)

    async def go(s: Any) -> None:
        await s.exec(update(Scan).where(Scan.id == scan_id).values(started_at=utcnow()))  # type: ignore[arg-type]
        await s.commit()

    cb.db(go)


@pytest.mark.parametrize(
    ("days", "scan", "allowed"),
    [(6.9, True, True), (7.0 - 1 / 3600, True, True), (7.0 + 1 / 3600, True, False),
     (8.0, True, False), (8.0, False, True), (30.0, False, True)],
)  # fmt: skip
def test_refund_rule_edges(cb: CB, days: float, scan: bool, allowed: bool) -> None:
    """The server checks again: posting the form without the button changes nothing."""
    from tests.clickbank_sandbox_thread import clickbank_in_thread

    with clickbank_in_thread(ins_url="http://127.0.0.1:9/ins") as sandbox:
        settings = cb.env.settings
        settings.clickbank_api_base = sandbox.url
        settings.clickbank_api_key = _secret(sandbox.state.config.api_key)
        user = cb.env.signup(f"refund{days}{scan}@example.com")
        cb.ins(sale(cb.checkout(user), receipt="RFND0001"))
        cb.work()
        sandbox.add_order("RFND0001", STARTER)
        _age_account(cb, user, days)
        if scan:
            _started_scan(cb, user)
        r = cb.env.post("/billing/refund", {"receipt": "RFND0001"})
        assert r.status_code == 303
        tickets = cb.db(lambda s: store_cb.tickets_of(s, user_id=user))
        assert (len(tickets) == 1) is allowed, r.headers["location"]
        assert sandbox.state.orders["RFND0001"].refunded is allowed


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


# ---- Billing: the payments page, cancel and change through ClickBank's API ----------------------


def test_payments_page_cancel_and_change_go_through_clickbank(cb: CB) -> None:
    from tests.clickbank_sandbox_thread import clickbank_in_thread

    with clickbank_in_thread(ins_url="http://127.0.0.1:9/ins") as sandbox:
        settings = cb.env.settings
        settings.clickbank_api_base = sandbox.url
        settings.clickbank_api_key = _secret(sandbox.state.config.api_key)
        user = cb.env.signup("billing@example.com")
        cb.ins(sale(cb.checkout(user), receipt="SUBS0001"))
        cb.work()
        sandbox.add_order("SUBS0001", STARTER)
        page = cb.env.client.get("/billing/payments")
        assert page.status_code == 200
        assert "Your plan: Starter, renews on" in page.text
        assert 'data-receipt="SUBS0001"' in page.text and "Ask for a refund" in page.text
        assert "Change to Pro" in page.text and "Cancel renewals" in page.text
        r = cb.env.post("/billing/change/plan_pro")
        assert r.status_code == 303 and "changing+your+plan" in r.headers["location"]
        assert sandbox.state.orders["SUBS0001"].item.item_no == PRO
        r = cb.env.post("/billing/cancel")
        assert r.status_code == 303 and "will+not+renew" in r.headers["location"]
        assert sandbox.state.orders["SUBS0001"].cancelled
        # a second cancel is ClickBank's to refuse; what the user sees says so
        r = cb.env.post("/billing/cancel")
        assert "error=" in r.headers["location"]


def test_checkout_makes_a_single_purpose_reference(cb: CB) -> None:
    user = cb.env.signup("ref@example.com")
    first = cb.env.client.get("/billing/checkout/plan_pro", follow_redirects=False)
    second = cb.env.client.get("/billing/checkout/plan_pro", follow_redirects=False)
    assert first.status_code == second.status_code == 303
    a, b = (dict(parse_qsl(urlsplit(r.headers["location"]).query)) for r in (first, second))
    assert a["cbitems"] == PRO and a["cbfid"] == "1" and a["ccref"] != b["ccref"]
    assert len(a["ccref"]) >= 22 and "ref@" not in first.headers["location"]
    checkout = cb.db(lambda s: store_cb.get_checkout(s, reference=a["ccref"]))
    assert checkout.user_id == user and checkout.sku == "plan_pro"
    assert cb.env.client.get("/billing/checkout/nope", follow_redirects=False).status_code == 404
    # with a plan, buying another one is a change, not a second subscription
    cb.ins(sale(a["ccref"], item=PRO))
    cb.work()
    again = cb.env.client.get("/billing/checkout/plan_agency", follow_redirects=False)
    assert again.headers["location"].startswith("/billing/payments?message=You+have+a+plan")
    assert (
        cb.env.client.get("/billing/checkout/credits_10", follow_redirects=False)
        .headers["location"]
        .startswith("http")
    )  # packs can always be bought


def test_operator_sees_every_event_with_its_outcome(cb: CB) -> None:
    import os
    import subprocess
    import sys

    user = cb.env.signup("operator@example.com")
    cb.ins(sale(cb.checkout(user), receipt="OPER0001"))
    cb.ins(sale(cb.checkout(user, "credits_10"), receipt="OPER0001"))  # a redelivery
    cb.ins(notification("SALE", receipt="UNKN0001", item="999", time="2026-12-02T10:00:00+00:00"))
    cb.work()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{cb.env.settings.data_dir / 'ccbb.sqlite3'}",
           "CCBB_DATA_DIR": str(cb.env.settings.data_dir)}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "ccbb.cli", "clickbank", "events"], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "ClickBank notifications: 1 done, 1 failed" in out
    assert re.search(r"SALE\s+OPER0001 .* x2\s+done\s+user \d+: \+10 credits", out), out
    assert "item 999 is not in the catalogue" in out and "buyer@example.com" not in out
    failed = subprocess.run([sys.executable, "-m", "ccbb.cli", "clickbank", "events", "--state",
                             "failed"], env=env, capture_output=True, text=True).stdout  # fmt: skip
    assert "UNKN0001" in failed and "OPER0001" not in failed


def test_the_answer_says_where_its_time_went(cb: CB) -> None:
    user = cb.env.signup("timing@example.com")
    r = cb.ins(sale(cb.checkout(user), receipt="TIME0001"))
    assert r.status_code == 200
    phases = dict(p.strip().split(";dur=") for p in r.headers["server-timing"].split(","))
    assert set(phases) == {"store", "queue"} and all(float(v) >= 0 for v in phases.values())


def test_a_served_app_is_out_of_the_collectors_sight(cb: CB) -> None:
    """A full collection over the ~170,000 objects of a started app paused the web process for
    ~200 ms (docs/benchmarks.md): ``ccbb web`` freezes them once started; an app made in a
    process that makes others (tests) does not."""
    import gc

    from starlette.testclient import TestClient

    from web.app import create_app

    before = gc.get_freeze_count()
    with TestClient(create_app(cb.env.settings)):
        assert gc.get_freeze_count() == before
    try:
        with TestClient(create_app(cb.env.settings, freeze_gc=True)):
            assert gc.get_freeze_count() > before + 50_000
    finally:
        gc.unfreeze()
