"""Affiliate payout runs against the PayPal sandbox (a real local server), on a real SQLite
database: amounts exact to the cent, previous months only, the $50 minimum and carry-over, a
negative balance paid back first, failed and unclaimed items back in the balance, dry runs, a
run killed mid-way (SIGKILL of a real `ccbb payouts run`) and run again paying each affiliate
exactly once, the CLI and the worker's daily job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

import pytest

from affiliates.payouts import RunIncomplete, RunReport, run_payouts
from affiliates.paypal_payouts import PaypalPayouts
from affiliates.rules import new_ref_id
from ccbb.sandbox.paypal import RunningPaypal, running_paypal
from ccbb.settings import Settings
from store import affiliates as store_aff
from store import payouts as store_pay
from store import users as store_users
from store.db import make_engine, session_factory
from store.migrate import upgrade
from tests.sandbox_thread import serve_in_thread

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "ccbb-test-client"
SECRET = "pp-secret-never-shown"
DEC_10 = date(2026, 12, 10)  # a Thursday
JAN_11 = date(2027, 1, 11)  # the 10th is a Sunday
_keys = count(1)
BACKENDS = ["sqlite", "postgresql"]


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


@dataclass
class World:
    settings: Settings
    paypal: RunningPaypal
    env: dict[str, str]

    def db(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            engine = make_engine(self.settings.sqlalchemy_url)
            try:
                async with session_factory(engine)() as session:
                    return await work(session)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def run(self, day: date, *, dry_run: bool = False) -> RunReport:
        async def work(session: Any) -> RunReport:
            async with PaypalPayouts.from_settings(self.settings) as client:
                return await run_payouts(
                    session, client, day=day, settings=self.settings, dry_run=dry_run
                )

        return self.db(work)

    def member(self, email: str) -> store_aff.Affiliate:
        async def work(s: Any) -> store_aff.Affiliate:
            user = await store_users.create_user(s, email=email, password_hash="x")
            ref = new_ref_id()
            return await store_aff.create_affiliate(
                s, user_id=user.id, ref_id=ref, paypal_email=f"pp-{email}", website=""
            )

        return self.db(work)

    def earn(
        self, aff: store_aff.Affiliate, amount: str, when: str, *, hold_days: int = 7,
        reverses: int | None = None,
    ) -> int:  # fmt: skip
        """A commission (or, with ``reverses``, the reversal of one) recorded as the INS path
        records it; its id."""
        key = f"test:{next(_keys)}"

        async def work(s: Any) -> int:
            t = at(when)
            await store_aff.add_commission(s, values={
                "key": key, "affiliate_id": aff.id, "customer_user_id": None,
                "kind": store_aff.REVERSAL if reverses else store_aff.SALE, "receipt": key[-8:],
                "transaction_time": t, "due_at": t + timedelta(days=0 if reverses else hold_days),
                "payment_amount": Decimal(amount) / Decimal("0.30"), "rate": Decimal("0.30"),
                "amount": Decimal(amount), "reverses_id": reverses, "flagged": False, "note": "",
                "created_at": t,
            })  # fmt: skip
            rows = await store_aff.commissions_of(s, affiliate_id=aff.id)
            return int(next(r.id for r in rows if r.key == key))

        return self.db(work)

    def payouts(self, aff: store_aff.Affiliate) -> list[store_pay.PayoutView]:
        return self.db(lambda s: store_pay.payouts_of(s, affiliate_id=aff.id))

    def balance(self, aff: store_aff.Affiliate, when: datetime) -> Any:
        return self.db(lambda s: store_pay.balance_of(s, affiliate_id=aff.id, now=when))

    def paid_items(self) -> list[tuple[str, str, str]]:
        """Every item PayPal received: (sender_batch_id, receiver, value)."""
        return [
            (b["sender_batch_id"], i["receiver"], i["value"])
            for b in self.paypal.state.record()
            for i in b["items"]
        ]


@pytest.fixture(params=["sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """SQLite by default; ``@pytest.mark.parametrize("world", BACKENDS, indirect=True)`` runs
    a test on PostgreSQL too (a fresh schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'payouts.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_schemas")()
    with serve_in_thread(lambda: running_paypal(CLIENT_ID, SECRET), "the PayPal sandbox") as pp:
        env = {
            "CCBB_DATA_DIR": str(tmp_path), "DATABASE_URL": url,
            "CCBB_PAYPAL_API_BASE": pp.url, "CCBB_PAYPAL_CLIENT_ID": CLIENT_ID,
            "CCBB_PAYPAL_CLIENT_SECRET": SECRET, "CCBB_PAYPAL_TIMEOUT": "5",
        }  # fmt: skip
        settings = Settings(**env)  # type: ignore[arg-type]
        upgrade(settings.sqlalchemy_url)
        yield World(settings, pp, env)


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_a_payout_date_pays_previous_months_balances_of_50_dollars_or_more(world: World) -> None:
    ann = world.member("ann@example.com")  # 30.00 + 25.01 in November: paid 55.01
    bob = world.member("bob@example.com")  # 49.99: under the minimum, carried over
    cat = world.member("cat@example.com")  # November's 60.00 paid; December's 40.00 is not
    dan = world.member("dan@example.com")  # 50.00 exactly, still in the refund window on the 10th
    eve = world.member("eve@example.com")  # revoked: not paid
    world.earn(ann, "30.00", "2026-11-03")
    world.earn(ann, "25.01", "2026-11-28")  # due on Dec 5th: payable on the 10th
    world.earn(bob, "49.99", "2026-11-15")
    world.earn(cat, "60.00", "2026-10-31")
    world.earn(cat, "40.00", "2026-12-02")
    world.earn(dan, "50.00", "2026-11-30", hold_days=14)  # due Dec 14th
    world.earn(eve, "80.00", "2026-11-02")
    world.db(lambda s: store_aff.set_status(s, ref_id=eve.ref_id, status=store_aff.REVOKED))

    report = world.run(DEC_10)
    assert sorted((line.receiver, line.amount) for line in report.paid) == [
        ("pp-ann@example.com", Decimal("55.01")), ("pp-cat@example.com", Decimal("60.00")),
    ]  # fmt: skip
    assert sorted((line.receiver, line.amount) for line in report.carried) == [
        ("pp-bob@example.com", Decimal("49.99")),
    ]  # Dan's 50.00 is still in its refund window: nothing payable, not listed
    assert report.total == Decimal("115.01") and report.statuses == {"SUCCESS": 2}
    assert sorted(world.paid_items()) == [
        ("ccbb-payout-2026-12-10", "pp-ann@example.com", "55.01"),
        ("ccbb-payout-2026-12-10", "pp-cat@example.com", "60.00"),
    ]
    [view] = world.payouts(ann)
    assert (view.payout_date, view.amount, view.status, view.returned) == (
        DEC_10, Decimal("55.01"), "SUCCESS", Decimal("0.00"),
    )  # fmt: skip
    assert view.payout_batch_id == world.paypal.state.record()[0]["payout_batch_id"]
    after = world.balance(cat, at("2026-12-11"))
    assert (after.pending, after.payable, after.paid) == (
        Decimal("40.00"), Decimal("0.00"), Decimal("60.00"),
    )  # fmt: skip
    # the same date again pays nobody again, and calls PayPal no more (the batch is settled)
    calls = world.paypal.state.create_calls
    again = world.run(DEC_10)
    assert again.resumed and world.paypal.state.create_calls == calls
    assert len(world.paid_items()) == 2
    # the next date pays Bob once December's commissions make 50 (with November's 49.99)
    world.earn(bob, "0.01", "2026-12-01")
    world.earn(dan, "3.00", "2026-12-01")
    report = world.run(JAN_11)
    # (and Dan, out of the window now: 50.00 + 3.00); Cat's December 40.00 carries over
    assert sorted((line.receiver, line.amount) for line in report.paid) == [
        ("pp-bob@example.com", Decimal("50.00")), ("pp-dan@example.com", Decimal("53.00")),
    ]  # fmt: skip
    assert [(c.receiver, c.amount) for c in report.carried] == [
        ("pp-cat@example.com", Decimal("40.00"))
    ]
    assert ("ccbb-payout-2027-01-11", "pp-dan@example.com", "53.00") in world.paid_items()
    assert world.balance(ann, at("2027-01-12")).paid == Decimal("55.01")


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_a_negative_balance_is_paid_back_before_anything_more_is_paid(world: World) -> None:
    ann = world.member("ann@example.com")
    sale = world.earn(ann, "80.00", "2026-11-05")
    assert [line.amount for line in world.run(DEC_10).paid] == [Decimal("80.00")]
    # the sale is refunded after the payout: the balance goes negative
    world.earn(ann, "-80.00", "2026-12-12", reverses=sale)
    assert world.balance(ann, at("2026-12-13")).payable == Decimal("-80.00")
    world.earn(ann, "100.00", "2026-12-05")
    # on December 25th the December commission is not payable yet (this month's)
    assert world.run(date(2026, 12, 25)).paid == []
    # January 11th: 100.00 - 80.00 = 20.00, under the minimum: carried over
    report = world.run(JAN_11)
    assert report.paid == [] and [c.amount for c in report.carried] == [Decimal("20.00")]
    world.earn(ann, "45.00", "2026-12-20")
    # a new date pays 100 + 45 - 80 = 65.00 (January 25th; the 11th's batch was empty)
    report = world.run(date(2027, 1, 25))
    assert [line.amount for line in report.paid] == [Decimal("65.00")]
    assert [i[2] for i in world.paid_items()] == ["80.00", "65.00"]
    final = world.balance(ann, at("2027-02-01"))
    assert (final.payable, final.paid) == (Decimal("0.00"), Decimal("145.00"))


def test_a_refund_just_before_the_payout_date_is_not_paid(world: World) -> None:
    ann = world.member("ann@example.com")
    sale = world.earn(ann, "70.00", "2026-11-05")
    world.earn(ann, "55.00", "2026-11-06")
    world.earn(ann, "-70.00", "2026-12-08", reverses=sale)  # this month, of last month's sale
    assert [line.amount for line in world.run(DEC_10).paid] == [Decimal("55.00")]


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_failed_and_unclaimed_items_come_back_to_the_balance_once(world: World) -> None:
    ann = world.member("ann@example.com")
    bob = world.member("bob@example.com")
    cat = world.member("cat@example.com")
    for aff in (ann, bob, cat):
        world.earn(aff, "61.50", "2026-11-10")
    world.paypal.state.faults.receivers = {
        "pp-bob@example.com": "FAILED", "pp-cat@example.com": "UNCLAIMED"
    }  # fmt: skip
    world.paypal.state.faults.pending_reads = 1  # the first read sees every item PENDING
    first = world.run(DEC_10)
    assert first.statuses == {"PENDING": 3} and first.returned == Decimal("0.00")
    assert [v.status for v in world.payouts(bob)] == ["PENDING"]
    # read back again (the next run, a day later): final statuses; the unclaimed one is
    # cancelled (PayPal gives the money back: RETURNED), the failed one is back too
    second = world.run(DEC_10)
    assert second.statuses == {"SUCCESS": 1, "FAILED": 1, "RETURNED": 1}
    assert second.returned == Decimal("123.00")
    assert [i["status"] for i in world.paypal.state.record()[0]["items"]] == [
        "SUCCESS", "FAILED", "RETURNED",
    ]  # fmt: skip
    [b] = world.payouts(bob)
    [c] = world.payouts(cat)
    assert (b.status, b.returned) == ("FAILED", Decimal("61.50")) and "LOCKED" in b.detail
    assert (c.status, c.returned) == ("RETURNED", Decimal("61.50"))
    for aff in (bob, cat):
        bal = world.balance(aff, at("2026-12-12"))
        assert (bal.payable, bal.paid) == (Decimal("61.50"), Decimal("0.00"))
    assert world.balance(ann, at("2026-12-12")).paid == Decimal("61.50")
    # reading it back again gives nothing back twice
    assert world.run(DEC_10).returned == Decimal("0.00")
    # the next payout date pays them again, once (Bob's address fixed meanwhile)
    world.paypal.state.faults.receivers = {}
    report = world.run(date(2026, 12, 28))  # the 25th is Christmas, then a weekend... Monday 28
    assert sorted(line.amount for line in report.paid) == [Decimal("61.50")] * 2
    assert len(world.paid_items()) == 5


def test_a_dry_run_pays_nothing_and_writes_nothing(world: World) -> None:
    ann = world.member("ann@example.com")
    world.earn(ann, "75.25", "2026-11-10")
    report = world.run(DEC_10, dry_run=True)
    assert [(line.receiver, line.amount) for line in report.paid] == [
        ("pp-ann@example.com", Decimal("75.25"))
    ]
    assert world.paypal.state.create_calls == 0 and world.paypal.state.token_calls == 0
    assert world.db(lambda s: store_pay.batch_for_date(s, payout_date=DEC_10)) is None
    assert world.payouts(ann) == []
    assert [line.amount for line in world.run(DEC_10).paid] == [Decimal("75.25")]


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_paypal_failing_the_whole_call_then_answering_pays_once(world: World) -> None:
    ann = world.member("ann@example.com")
    world.earn(ann, "99.99", "2026-11-10")
    world.paypal.state.faults.fail_posts = 1  # 500, nothing made
    with pytest.raises(RunIncomplete):
        world.run(DEC_10)
    assert world.paypal.state.record() == []
    assert [v.status for v in world.payouts(ann)] == ["NEW"]  # recorded, not sent
    world.paypal.state.faults.lose_answers = 1  # made, but the answer is a 500
    with pytest.raises(RunIncomplete):
        world.run(DEC_10)
    assert len(world.paid_items()) == 1
    report = world.run(DEC_10)  # PayPal refuses the repeat and names the batch: read back
    assert report.statuses == {"SUCCESS": 1} and report.resumed
    assert world.paid_items() == [("ccbb-payout-2026-12-10", "pp-ann@example.com", "99.99")]
    assert world.paypal.state.create_calls == 3


def _cli(world: World, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccbb.cli", "payouts", "run", *args],
        cwd=ROOT, env={**os.environ, **world.env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_held(world: World, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while world.paypal.state.held == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached PayPal"
        time.sleep(0.02)


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
@pytest.mark.parametrize("where", ["before the POST", "after the POST"])
def test_a_run_killed_mid_way_and_run_again_pays_each_affiliate_exactly_once(
    world: World, where: str
) -> None:
    ann = world.member("ann@example.com")
    bob = world.member("bob@example.com")
    world.earn(ann, "50.00", "2026-11-10")
    world.earn(bob, "123.45", "2026-11-11")
    faults = world.paypal.state.faults
    if where == "before the POST":
        faults.hold_tokens = 30.0  # the items are recorded; the token request hangs
    else:
        faults.hold_posts = 30.0  # PayPal made the batch; its answer hangs
    proc = _cli(world, "--date", "2026-12-10")
    _wait_held(world, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    made = world.paypal.state.record()
    assert len(made) == (0 if where == "before the POST" else 1)
    assert {v.status for p in (ann, bob) for v in world.payouts(p)} == {"NEW"}
    faults.hold_tokens = faults.hold_posts = 0.0
    out = _cli(world, "--date", "2026-12-10").communicate(timeout=60)
    assert "resumed" in out[0], out
    assert "PayPal batch" in out[0] and "2 SUCCESS" in out[0], out
    assert sorted(world.paid_items()) == [
        ("ccbb-payout-2026-12-10", "pp-ann@example.com", "50.00"),
        ("ccbb-payout-2026-12-10", "pp-bob@example.com", "123.45"),
    ]
    assert [v.status for v in world.payouts(bob)] == ["SUCCESS"]
    # and once more: nothing more is paid
    _cli(world, "--date", "2026-12-10").communicate(timeout=60)
    assert len(world.paid_items()) == 2
    assert world.balance(bob, at("2026-12-11")).paid == Decimal("123.45")


def test_the_cli_refuses_a_day_that_is_not_a_payout_date_and_dry_runs(world: World) -> None:
    ann = world.member("ann@example.com")
    world.earn(ann, "64.10", "2026-11-10")
    out, err = _cli(world, "--date", "2026-12-09").communicate(timeout=60)
    assert "2026-12-09 is not a payout date" in err and "2026-12-10" in err
    proc = _cli(world, "--date", "2026-12-10", "--dry-run")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"would pay {ann.ref_id}  pp-ann@example.com  64.10 USD" in out
    assert "total would pay: 64.10 USD to 1 affiliate(s)" in out
    assert world.paypal.state.create_calls == 0
    proc = _cli(world, "--date", "2026-12-10")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"paid      {ann.ref_id}  pp-ann@example.com  64.10 USD" in out
    assert SECRET not in out + err
    assert world.paid_items() == [("ccbb-payout-2026-12-10", "pp-ann@example.com", "64.10")]
    bad = _cli(world, "--date", "12/10/2026")
    assert bad.wait(60) == 2


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_the_cli_lists_the_payouts_with_paypal_s_status_and_what_came_back(world: World) -> None:
    ann = world.member("ann@example.com")
    bob = world.member("bob@example.com")
    for aff in (ann, bob):
        world.earn(aff, "61.50", "2026-11-10")
    world.paypal.state.faults.receivers = {"pp-bob@example.com": "FAILED"}

    def listing(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ccbb.cli", "payouts", "list", *args], cwd=ROOT,
            env={**os.environ, **world.env}, text=True, capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
        return done.stdout

    assert listing("--since", "2026-12-01") == "no payout since 2026-12-01\n"
    world.run(DEC_10)
    out = listing("--since", "2026-12-01")
    lines = out.splitlines()
    assert lines[0].startswith("payout 2026-12-10 (batch ccbb-payout-2026-12-10, PayPal batch ")
    assert lines[1] == f"  SUCCESS   {ann.ref_id}  pp-ann@example.com  61.50 USD"
    assert lines[2].startswith(
        f"  FAILED    {bob.ref_id}  pp-bob@example.com  61.50 USD, 61.50 USD back to the balance ("
    )
    assert lines[3] == "total sent: 123.00 USD to 2 payout(s); back to the balances: 61.50 USD"
    assert listing("--since", "2026-12-11") == "no payout since 2026-12-11\n"
    assert "not a date" in subprocess.run(
        [sys.executable, "-m", "ccbb.cli", "payouts", "list", "--since", "10/12/2026"], cwd=ROOT,
        env={**os.environ, **world.env}, text=True, capture_output=True, timeout=60,
    ).stderr  # fmt: skip


def test_paypal_not_set_up_pays_nothing_and_records_nothing(world: World) -> None:
    ann = world.member("ann@example.com")
    world.earn(ann, "64.10", "2026-11-10")
    world.settings = world.settings.model_copy(update={"paypal_client_id": ""})
    report = world.run(DEC_10)
    assert "not set up" in " ".join(report.notes)
    assert world.payouts(ann) == [] and world.paypal.state.create_calls == 0


def test_the_worker_queues_a_day_s_run_once_and_runs_it(world: World, test_redis_url: str) -> None:
    from arq import create_pool

    from ccbb.payout_jobs import payout_run_job, payouts_tick, run_job_id
    from ccbb.worker import WorkerSettings, redis_settings

    ann = world.member("ann@example.com")
    world.earn(ann, "88.00", "2026-11-10")
    assert any(getattr(c, "name", "") == "cron:payouts_tick" for c in WorkerSettings.cron_jobs)

    async def go() -> tuple[list[str | None], str, str]:
        redis = await create_pool(redis_settings(test_redis_url), default_queue_name="t:payouts")
        engine = make_engine(world.settings.sqlalchemy_url)
        try:
            await redis.delete(f"arq:job:{run_job_id(DEC_10)}", f"arq:result:{run_job_id(DEC_10)}")
            ctx = {"redis": redis, "settings": world.settings,
                   "sessions": session_factory(engine),
                   "clock": lambda: datetime(2026, 12, 10, 6, 0, tzinfo=UTC)}  # fmt: skip
            # three workers tick: one job for the day
            queued = [await payouts_tick(ctx) for _ in range(3)]
            done = await payout_run_job(ctx, "2026-12-10")
            other = await payout_run_job(
                {**ctx, "clock": lambda: datetime(2026, 12, 11, 6, tzinfo=UTC)}, "2026-12-11"
            )
            await redis.delete(f"arq:job:{run_job_id(DEC_10)}", f"arq:result:{run_job_id(DEC_10)}")
            return queued, done, other
        finally:
            await engine.dispose()
            await redis.aclose()

    queued, done, other = asyncio.run(go())
    assert queued == [run_job_id(DEC_10), None, None]
    assert done == "2026-12-10: 1 paid, 88.00 USD, 0 carried over"
    assert other == "2026-12-11: not a payout date"
    assert world.paid_items() == [("ccbb-payout-2026-12-10", "pp-ann@example.com", "88.00")]


def test_the_affiliate_page_shows_every_payout_made(world: World, test_redis_url: str) -> None:
    import redis
    from starlette.testclient import TestClient

    from tests.test_affiliates import join, signup
    from web.app import create_app

    with redis.Redis.from_url(test_redis_url) as r:
        for key in r.scan_iter("ccbb:signup:*"):
            r.delete(key)
    settings = world.settings.model_copy(update={"redis_url": test_redis_url})
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        signup(client, "earner@example.com")
        assert join(client, paypal_email="pp-earner@example.com", adult="yes",
                    accept_terms="yes").status_code == 200  # fmt: skip
        page = client.get("/affiliate").text
        assert 'id="payouts"' in page and "No payout yet." in page
        aff = world.db(lambda s: store_pay.active_affiliates(s))[0]
        world.earn(aff, "57.30", "2026-11-10")
        world.earn(aff, "52.00", "2026-11-12")
        world.run(DEC_10)
        world.paypal.state.faults.receivers = {"pp-earner@example.com": "FAILED"}
        world.earn(aff, "51.00", "2026-12-01")
        world.run(JAN_11)
        page = client.get("/affiliate").text
        table = page.split('id="payout-table"', 1)[1].split("</table>", 1)[0]
        rows = table.split("<tr>")[2:]
        assert len(rows) == 2  # newest first
        assert "$51.00" in rows[0] and "Failed: back in your balance" in rows[0]
        assert "$109.30" in rows[1] and "Paid" in rows[1]
        batch = world.paypal.state.record()[0]["payout_batch_id"]
        assert batch in rows[1]
        assert 'id="balance-paid">$109.30<' in page  # the failed 51.00 came back
        assert world.balance(aff, at("2027-01-12")).payable == Decimal("51.00")
        french = client.get("/affiliate?lang=fr").text
        assert "Paiements" in french and "Échec : de retour dans votre solde" in french
        assert SECRET not in page + french


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_two_runs_of_one_date_at_once_pay_once(world: World) -> None:
    """The worker's job and an operator's `ccbb payouts run` on the same date, at the same time."""
    for n in range(5):
        world.earn(world.member(f"m{n}@example.com"), f"{50 + n}.25", "2026-11-10")
    world.paypal.state.faults.hold_posts = 1.0  # both runs get to PayPal before either hears
    procs = [_cli(world, "--date", "2026-12-10") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(v for _, _, v in world.paid_items()) == [
        "50.25", "51.25", "52.25", "53.25", "54.25"
    ]  # fmt: skip
    assert len(world.paypal.state.record()) == 1


def test_three_real_arq_workers_starting_on_a_payout_date_pay_once(
    world: World, test_redis_url: str
) -> None:
    """Three arq workers (real Redis, burst mode) each tick at start: the day's job is queued
    under one id and runs once."""
    from arq import cron, func
    from arq.worker import Worker

    from ccbb.payout_jobs import payout_run_job, payouts_tick, run_job_id
    from ccbb.worker import redis_settings

    ann = world.member("ann@example.com")
    world.earn(ann, "77.70", "2026-11-10")
    queue = f"t:payouts:{os.getpid()}"

    async def go() -> tuple[list[int], Any]:
        from arq import create_pool
        from arq.jobs import Job

        engine = make_engine(world.settings.sqlalchemy_url)
        redis = await create_pool(redis_settings(test_redis_url), default_queue_name=queue)
        for key in (f"arq:result:{run_job_id(DEC_10)}", f"arq:job:{run_job_id(DEC_10)}"):
            await redis.delete(key)

        async def startup(ctx: dict[str, Any]) -> None:
            ctx.update(settings=world.settings, sessions=session_factory(engine),
                       clock=lambda: datetime(2026, 12, 10, 6, 0, tzinfo=UTC))  # fmt: skip

        workers = [
            Worker(
                functions=[func(payout_run_job, max_tries=3)],
                cron_jobs=[
                    cron(payouts_tick, hour={6}, minute={0}, second={0}, run_at_startup=True)
                ],
                on_startup=startup,
                queue_name=queue,
                burst=True,
                poll_delay=0.05,
                redis_pool=redis,
                handle_signals=False,
                keep_result=60,
            )
            for _ in range(3)
        ]
        try:
            await asyncio.gather(*(w.main() for w in workers))
            info = await Job(run_job_id(DEC_10), redis).result_info()
            return [w.jobs_complete for w in workers], info
        finally:
            for key in (f"arq:result:{run_job_id(DEC_10)}", f"arq:job:{run_job_id(DEC_10)}"):
                await redis.delete(key)
            for w in workers:
                await w.close()
            await redis.aclose()
            await engine.dispose()

    done, info = asyncio.run(go())
    assert info is not None and info.success and info.job_try == 1
    assert info.result == "2026-12-10: 1 paid, 77.70 USD, 0 carried over"
    assert sum(done) >= 2  # the ticks (one per distinct start time) and the one run
    assert world.paid_items() == [("ccbb-payout-2026-12-10", "pp-ann@example.com", "77.70")]
    assert len(world.paypal.state.record()) == 1 and world.paypal.state.create_calls == 1


def test_an_earlier_batch_that_cannot_be_read_back_does_not_stop_the_next_date(
    world: World,
) -> None:
    ann = world.member("ann@example.com")
    world.earn(ann, "60.00", "2026-11-10")
    world.paypal.state.faults.pending_reads = 5
    assert world.run(DEC_10).statuses == {"PENDING": 1}
    world.paypal.state.reset()  # PayPal no longer knows that batch (404 on reading it)
    world.earn(ann, "70.00", "2026-11-20")
    report = world.run(date(2026, 12, 28))
    assert "the batch of 2026-12-10 was not read back" in " ".join(report.notes)
    assert [line.amount for line in report.paid] == [Decimal("70.00")]
    assert world.paid_items() == [("ccbb-payout-2026-12-28", "pp-ann@example.com", "70.00")]
    assert [v.status for v in world.payouts(ann)] == ["SUCCESS", "PENDING"]
