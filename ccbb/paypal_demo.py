"""For ``ccbb run --demo``: the PayPal Payouts sandbox as a process of its own, wired to the app
with fresh demo credentials, and a payout a newcomer can see: the demo account is an affiliate
whose referred customer paid three times in the month before the latest payout date, and that
date's run is made against the sandbox (the Affiliate page lists it, the sandbox's page shows
the batch). Demo data only: the commissions say so in their note."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ccbb.child_processes import free_port, start_and_wait
from ccbb.settings import Settings

DEMO_EMAIL = "demo@example.com"
CUSTOMER_EMAIL = "referred.customer@example.com"
PAYMENTS = (Decimal("59.00"), Decimal("59.00"), Decimal("59.00"))  # a sale, two rebills


def paypal_sandbox(extra_env: dict[str, str] | None = None) -> tuple[dict[str, str], Any]:
    """Start ``ccbb sandbox-paypal``; returns the environment the app and the worker need
    (API base, client id and secret) and the process."""
    port = free_port()
    env = {
        "CCBB_PAYPAL_API_BASE": f"http://127.0.0.1:{port}",
        "CCBB_PAYPAL_CLIENT_ID": "demo-" + secrets.token_hex(8),
        "CCBB_PAYPAL_CLIENT_SECRET": secrets.token_urlsafe(24),
    }
    proc = start_and_wait(
        [sys.executable, "-m", "ccbb.cli", "sandbox-paypal", "--port", str(port)],
        "http://", env={**os.environ, **(extra_env or {}), **env},
    )  # fmt: skip
    return env, proc


def latest_payout_date(today: date, country: str) -> date:
    from affiliates.payout_dates import next_payout_date

    day = today - timedelta(days=40)
    latest = next_payout_date(day, country)
    while (following := next_payout_date(latest + timedelta(days=1), country)) <= today:
        latest = following
    return latest


async def _seed_and_pay(settings: Settings) -> str:
    from affiliates import rules
    from affiliates.commissions import commission
    from affiliates.payouts import RunIncomplete, run_payouts
    from affiliates.paypal_payouts import PaypalPayouts
    from store import affiliates as store_aff
    from store import users
    from store.db import make_engine, session_factory

    day = latest_payout_date(datetime.now(UTC).date(), settings.payout_country)
    first = day.replace(day=1)
    month = (first - timedelta(days=1)).replace(day=1)  # the month before the payout's
    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with session_factory(engine)() as session:
            owner = await users.get_user_by_email(session, email=DEMO_EMAIL)
            if owner is None or owner.id is None:
                return "no demo account"
            affiliate = await store_aff.get_by_user(session, user_id=owner.id)
            if affiliate is None:
                affiliate = await store_aff.create_affiliate(
                    session, user_id=owner.id, ref_id=rules.new_ref_id(),
                    paypal_email=DEMO_EMAIL, website="http://demo.example/",
                )  # fmt: skip
            assert affiliate.id is not None
            customer = await users.get_user_by_email(session, email=CUSTOMER_EMAIL)
            if customer is None:
                from web.auth import hash_password  # a random password nobody knows

                customer = await users.create_user(
                    session, email=CUSTOMER_EMAIL,
                    password_hash=hash_password(secrets.token_urlsafe(24)),
                )  # fmt: skip
                assert customer.id is not None
                await store_aff.add_referral(
                    session, user_id=customer.id, affiliate_id=affiliate.id,
                    landed_at=datetime.combine(month, datetime.min.time(), UTC),
                    self_referral=False,
                )  # fmt: skip
            for n, payment in enumerate(PAYMENTS):
                t = datetime.combine(month + timedelta(days=4 + 7 * n),
                                     datetime.min.time(), UTC) + timedelta(hours=10)  # fmt: skip
                await store_aff.add_commission(session, values={
                    "key": f"demo:{month:%Y-%m}:{n}", "affiliate_id": affiliate.id,
                    "customer_user_id": customer.id,
                    "kind": store_aff.SALE if n == 0 else store_aff.REBILL,
                    "receipt": f"DEMO{month:%m}{n:02d}" + ("" if n == 0 else f"-B00{n}"),
                    "transaction_time": t, "due_at": t + timedelta(days=7),
                    "payment_amount": payment, "rate": settings.affiliate_rate,
                    "amount": commission(payment, settings.affiliate_rate),
                    "reverses_id": None, "flagged": False, "note": "demo data",
                    "created_at": t,
                })  # fmt: skip
            async with PaypalPayouts.from_settings(settings) as client:
                try:
                    report = await run_payouts(session, client, day=day, settings=settings)
                except RunIncomplete as exc:
                    return f"the demo payout did not go through ({exc})"
            return f"the payout of {day} ({report.total} USD to {DEMO_EMAIL})"
    finally:
        await engine.dispose()


def demo_payout(settings: Settings) -> None:
    """Make the demo's payout (once: run again, it finds the batch of that date paid)."""
    what = asyncio.run(_seed_and_pay(settings))
    sys.stderr.write(
        f"ccbb: demo PayPal at {settings.paypal_api_base}/_sandbox/ — demo@example.com is an "
        f"affiliate: its Affiliate page lists {what}; `ccbb payouts run --dry-run` shows "
        "what a payout date would pay\n"
    )
