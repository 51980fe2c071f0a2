"""``ccbb payouts run [--date YYYY-MM-DD] [--dry-run]``: the affiliate payout run by hand (the
worker runs it every day by itself); ``ccbb payouts list [--since YYYY-MM-DD]``: the payouts
made, with PayPal's status of each. Output in English, one line per affiliate."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ccbb.settings import Settings, get_settings


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: write it YYYY-MM-DD") from None


def add_parsers(sub: Any) -> None:
    pay = sub.add_parser("payouts", help="affiliate payouts through PayPal (run, list)")
    cmds = pay.add_subparsers(dest="payouts_command", required=True)
    run = cmds.add_parser(
        "run",
        help="pay the payable balances of a payout date (the 10th and 25th, or the next "
        "business day); safe to repeat: nothing is paid twice",
    )
    run.add_argument("--date", type=_day, default=None,
                     help="the payout date (default: today, UTC)")  # fmt: skip
    run.add_argument("--dry-run", action="store_true",
                     help="say who would be paid what; pay nothing, write nothing")  # fmt: skip
    ls = cmds.add_parser(
        "list",
        help="the payouts made, each with the last status PayPal gave it (PENDING ones are read "
        "again by the next daily run); reads the database only",
    )
    ls.add_argument("--since", type=_day, default=None,
                    help="the first payout date to show (default: 90 days ago)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from affiliates.payout_dates import is_payout_date, next_payout_date
    from ccbb.services import ServiceUnavailable, prepare_database

    settings = get_settings()
    if args.payouts_command == "list":
        since = args.since or datetime.now(UTC).date() - timedelta(days=90)
        try:
            prepare_database(settings)
        except ServiceUnavailable as exc:
            sys.stderr.write(f"ccbb: {exc}\n")
            return 1
        return asyncio.run(_list(settings, since))
    day = args.date or datetime.now(UTC).date()
    if args.date is not None and not is_payout_date(day, settings.payout_country):
        sys.stderr.write(
            f"ccbb payouts run: {day} is not a payout date (the next one is "
            f"{next_payout_date(day, settings.payout_country)}; payouts are on the 10th and the "
            f"25th, or the next business day in {settings.payout_country})\n"
        )
        return 2
    try:
        prepare_database(settings)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return asyncio.run(_run(settings, day, args.dry_run))


async def _run(settings: Settings, day: date, dry_run: bool) -> int:
    from affiliates.payouts import RunIncomplete, run_payouts
    from affiliates.paypal_payouts import PaypalPayouts
    from store.db import make_engine, session_factory

    engine = make_engine(settings.sqlalchemy_url)
    out = sys.stdout
    try:
        async with (
            PaypalPayouts.from_settings(settings) as client,
            session_factory(engine)() as session,
        ):
            report = await run_payouts(session, client, day=day, settings=settings, dry_run=dry_run)
    except RunIncomplete as exc:
        sys.stderr.write(f"ccbb payouts run: incomplete: {exc}\n")
        return 1
    finally:
        await engine.dispose()
    if not report.payout_day:
        for note in report.notes:
            out.write(f"{note}: nothing to pay\n")
        return 0
    verb = "would pay" if dry_run else "paid"
    head = f"payout {report.payout_date} (batch {report.sender_batch_id})"
    if report.resumed:
        head += ", recorded by an earlier run: resumed"
    out.write(head + "\n")
    for line in report.paid:
        out.write(f"  {verb:<9} {line.ref_id}  {line.receiver}  {line.amount} USD\n")
    for line in report.carried:
        out.write(f"  carried   {line.ref_id}  {line.receiver}  {line.amount} USD "
                  f"(under {settings.payout_minimum} USD)\n")  # fmt: skip
    out.write(f"total {verb}: {report.total} USD to {len(report.paid)} affiliate(s)\n")
    if report.paypal_batch_id:
        seen = ", ".join(f"{n} {s}" for s, n in sorted(report.statuses.items())) or "none yet"
        out.write(f"PayPal batch {report.paypal_batch_id}: {seen}\n")
    if report.returned:
        out.write(f"back to the balances (failed, unclaimed or returned): {report.returned} USD\n")
    for note in report.notes:
        out.write(note + "\n")
    return 0


async def _list(settings: Settings, since: date) -> int:
    from store.db import make_engine, session_factory
    from store.payouts import payouts_since

    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with session_factory(engine)() as session:
            views = await payouts_since(session, since=since)
    finally:
        await engine.dispose()
    out = sys.stdout
    if not views:
        out.write(f"no payout since {since}\n")
        return 0
    day = None
    for view in views:
        if view.payout_date != day:
            day = view.payout_date
            paypal = f"PayPal batch {view.payout_batch_id}" if view.payout_batch_id else "not sent"
            out.write(f"payout {day} (batch {view.sender_batch_id}, {paypal})\n")
        line = f"  {view.status:<9} {view.ref_id}  {view.receiver}  {view.amount} USD"
        if view.returned:
            line += f", {view.returned} USD back to the balance"
        if view.detail:
            line += f" ({view.detail})"
        out.write(line + "\n")
    sent = sum((v.amount for v in views), Decimal("0.00"))
    back = sum((v.returned for v in views), Decimal("0.00"))
    out.write(
        f"total sent: {sent} USD to {len(views)} payout(s); back to the balances: {back} USD\n"
    )
    return 0
