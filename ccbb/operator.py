"""Operator commands (called by ``ccbb.cli``): ``ccbb credits grant|revoke|show`` and ``ccbb
user token``. Each prints what it did in one line (the token, once, on standard output, for a
script to read) and exits 0; 1 when it cannot (no such user, not enough credits, database
unreachable), with the reason on standard error."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from billing import messages
from ccbb.services import ServiceUnavailable, prepare_database
from ccbb.settings import get_settings
from store import credits as store_credits
from store import tokens as store_tokens
from store import users as store_users
from store.db import make_engine, session_factory

T = TypeVar("T")


class OperatorError(Exception):
    """What the operator must fix; printed as one line, exit code 1."""


def add_parsers(sub: Any, user_sub: Any) -> None:
    """``credits …`` under the top-level commands, ``token`` under ``user``."""
    credits = sub.add_parser("credits", help="grant, revoke or show a user's scan credits")
    csub = credits.add_subparsers(dest="credits_command", required=True)
    for name, text in (("grant", "add credits"), ("revoke", "take credits away")):
        cmd = csub.add_parser(name, help=f"{text} (one ledger entry, shown in their Billing)")
        cmd.add_argument("email")
        cmd.add_argument("amount", type=int, metavar="N")
        cmd.add_argument("--comment", help="what the user reads in their Billing history")
        cmd.add_argument(
            "--key",
            help="idempotency key: the same key again changes nothing (for scripts that retry)",
        )
        if name == "revoke":
            cmd.add_argument("--partial", action="store_true",
                             help="take what there is when the balance is short")  # fmt: skip
    show = csub.add_parser("show", help="a user's balance, plan and latest ledger entries")
    show.add_argument("email")
    show.add_argument("--limit", type=int, default=20)
    token = user_sub.add_parser("token", help="make a personal API token (printed once)")
    token.add_argument("email")
    token.add_argument("--name", required=True, help="what the token is for, e.g. 'backups'")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "credits":
            return _run(_credits(args))
        return _run(_token(args.email, args.name))
    except OperatorError as exc:
        sys.stderr.write(f"ccbb: {exc}\n")
        return 1


def _run(work: Callable[[Any], Awaitable[int]]) -> int:
    settings = get_settings()
    try:
        prepare_database(settings)
    except ServiceUnavailable as exc:
        raise OperatorError(str(exc)) from None

    async def go() -> int:
        engine = make_engine(settings.sqlalchemy_url)
        try:
            async with session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def _user_id(session: Any, email: str) -> int:
    user = await store_users.get_user_by_email(session, email=email)
    if user is None or user.id is None:
        raise OperatorError(f"no user {email!r}: check the e-mail (ccbb user create makes one)")
    return user.id


def _credits(args: argparse.Namespace) -> Callable[[Any], Awaitable[int]]:
    async def work(session: Any) -> int:
        user_id = await _user_id(session, args.email)
        if args.credits_command == "show":
            return await _show(session, user_id, args.email, args.limit)
        if not 1 <= args.amount <= store_credits.MAX_AMOUNT:
            raise OperatorError(f"N must be from 1 to {store_credits.MAX_AMOUNT:,}")
        key = f"admin:{args.key}" if args.key else f"admin:{uuid.uuid4().hex}"
        if args.credits_command == "grant":
            entry = await store_credits.grant(
                session, user_id=user_id, amount=args.amount, kind="grant", source="admin",
                comment=args.comment or messages.ADMIN_GRANT, idempotency_key=key,
            )  # fmt: skip
        else:
            try:
                entry = await store_credits.revoke(
                    session, user_id=user_id, amount=args.amount, kind="revoke",
                    source="admin", comment=args.comment or messages.ADMIN_REVOKE,
                    idempotency_key=key, partial=args.partial,
                )  # fmt: skip
            except store_credits.InsufficientCredits as exc:
                raise OperatorError(
                    f"{args.email} has {exc.balance} credits, not {exc.needed}: nothing was "
                    "revoked (--partial takes what there is)"
                ) from None
        short = f", {entry.shortfall} could not be taken (balance short)" if entry.shortfall else ""
        sys.stdout.write(
            f"{args.email}: {entry.delta:+d} credits (entry #{entry.id}){short}; balance "
            f"{entry.balance_after}\n"
        )
        return 0

    return work


async def _show(session: Any, user_id: int, email: str, limit: int) -> int:
    account = await store_credits.get_account(session, user_id=user_id)
    balance = account.balance if account else 0
    plan = "no plan"
    if account and account.plan_sku:
        plan = f"plan {account.plan_sku} ({account.plan_status}"
        plan += f", until {account.period_end:%Y-%m-%d}" if account.period_end else ""
        plan += ", renews)" if account.renews else ")"
    out = [f"{email}: {balance} credits, {plan}"]
    for e in await store_credits.history(session, user_id=user_id, limit=limit, offset=0):
        short = f" (short {e.shortfall})" if e.shortfall else ""
        out.append(
            f"  #{e.id} {e.created_at:%Y-%m-%d %H:%M} {e.delta:+d} → {e.balance_after}"
            f"{short}  {e.kind}/{e.source}  {e.comment}"
            + (f"  [{e.external_id}]" if e.external_id else "")
        )
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _token(email: str, name: str) -> Callable[[Any], Awaitable[int]]:
    async def work(session: Any) -> int:
        user_id = await _user_id(session, email)
        if not name.strip() or len(name) > 100:
            raise OperatorError("--name must be 1 to 100 characters")
        _, token = await store_tokens.create_token(session, user_id=user_id, name=name)
        sys.stderr.write(f"ccbb: a new API token for {email} ({name}); it is shown only now:\n")
        sys.stdout.write(token + "\n")
        return 0

    return work
