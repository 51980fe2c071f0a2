"""``ccbb clickbank events``: every ClickBank notification received, with what processing did
(the operator's view); ``ccbb sandbox-clickbank`` lives in :mod:`ccbb.sandbox.clickbank`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ccbb.settings import get_settings
from store import clickbank as store_cb
from store.db import make_engine, session_factory

STATES = (store_cb.PENDING, store_cb.WAITING, store_cb.DONE, store_cb.IGNORED, store_cb.FAILED)


def add_parsers(sub: Any) -> None:
    cb = sub.add_parser("clickbank", help="ClickBank notifications (see `ccbb clickbank events`)")
    cmds = cb.add_subparsers(dest="clickbank_command", required=True)
    events = cmds.add_parser("events", help="the notifications received, newest first")
    events.add_argument("--state", choices=STATES, help="only events in this state")
    events.add_argument("--limit", type=int, default=50)
    sub.add_parser("sandbox-clickbank", help="serve a local ClickBank (see --help)")


def run(args: argparse.Namespace) -> int:
    from ccbb.services import ServiceUnavailable, prepare_database

    settings = get_settings()
    try:
        prepare_database(settings)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1

    async def go() -> list[store_cb.ClickbankEvent]:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                counts = await store_cb.count_by_state(session)
                found = await store_cb.list_events(session, limit=args.limit, state=args.state)
        finally:
            await engine.dispose()
        totals = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        sys.stdout.write(f"ClickBank notifications: {totals}\n")
        return found

    rows = asyncio.run(go())
    for e in rows:
        user = f"user {e.user_id}" if e.user_id else "no account"
        amount = f"{e.amount} {e.currency}" if e.amount is not None else ""
        sys.stdout.write(
            f"#{e.id} {e.received_at:%Y-%m-%d %H:%M:%S} {e.transaction_type:<16} {e.receipt:<14} "
            f"{e.role:<9} {amount:>12}  x{e.deliveries}  {e.state:<8} {user}: {e.outcome or ''}\n"
        )
    return 0
