"""``ccbb affiliates list|refuse|revoke|block|reinstate``: the operator's view of the affiliate
program (members, their referrals and the self-referrals flagged)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ccbb.settings import get_settings
from store import affiliates as store_aff
from store.db import make_engine, session_factory


def add_parsers(sub: Any) -> None:
    aff = sub.add_parser("affiliates", help="affiliate program members (list, refuse, revoke)")
    cmds = aff.add_subparsers(dest="affiliates_command", required=True)
    listing = cmds.add_parser("list", help="every member with referrals and flags")
    listing.add_argument("--status", choices=store_aff.STATUSES)
    for name, text in (
        ("refuse", "refuse an application (the link earns nothing)"),
        ("revoke", "end a membership (no future commissions)"),
        ("block", "block a member for self-referral (no commission, balance not paid)"),
        ("reinstate", "make a refused, revoked or blocked member active again"),
    ):
        cmd = cmds.add_parser(name, help=text)
        cmd.add_argument("ref_id", metavar="REFID")
        cmd.add_argument("--reason", default="", help="kept with the decision")


def run(args: argparse.Namespace) -> int:
    from ccbb.services import ServiceUnavailable, prepare_database

    settings = get_settings()
    try:
        prepare_database(settings)
    except ServiceUnavailable as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1
    return asyncio.run(_run(args, settings.sqlalchemy_url))


async def _run(args: argparse.Namespace, url: str) -> int:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session:
            if args.affiliates_command == "list":
                members = await store_aff.list_members(session, status=args.status)
                for m in members:
                    a = m.affiliate
                    flags = f", {m.flagged} self-referral(s) flagged" if m.flagged else ""
                    sys.stdout.write(
                        f"{a.ref_id}  {a.status:<8} {m.email}  PayPal {a.paypal_email}  "
                        f"joined {a.joined_at:%Y-%m-%d}  {m.referrals} referral(s){flags}\n"
                    )
                if not members:
                    sys.stdout.write("no affiliates\n")
                return 0
            status = {
                "refuse": store_aff.REFUSED,
                "revoke": store_aff.REVOKED,
                "block": store_aff.BLOCKED,
                "reinstate": store_aff.ACTIVE,
            }[args.affiliates_command]
            found = await store_aff.set_status(
                session, ref_id=args.ref_id.strip().upper(), status=status, reason=args.reason
            )
            if found is None:
                sys.stderr.write(
                    f"ccbb: no affiliate has the REF ID {args.ref_id}: see `ccbb affiliates list`\n"
                )
                return 1
            sys.stdout.write(f"{found.ref_id} is now {found.status}\n")
            return 0
    finally:
        await engine.dispose()
