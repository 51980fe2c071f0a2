"""``ccbb``: the command line. A stable contract: scripts call it, so options are only added.

Exit codes: 0 the scan completed (whatever the products' statuses), 1 the scan could not be done
(one line says why and what to do), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ccbb.local_scan import scan_site
from scanner import event_loop
from scanner.amazon_urls import TAG_RE, marketplace_for_country
from scanner.net import BadConnectTo, NetworkPolicy, parse_connect_to
from scanner.page_workers import peak_rss_mb
from scanner.report import csv_rows, iter_csv, iter_json, to_text
from scanner.scan import ScanFailed, ScanReport
from scanner.settings import AmazonAccess, CrawlLimits, ScanConfig, default_page_workers
from scanner.urls import BadSiteUrl, cloak_prefix, is_bare_domain, site_url

DEMO_MIN_PAGES = 4


class UsageError(Exception):
    """Bad input: the message says what to give instead. Exit code 2."""


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--country", default="US", help="Amazon country of the credential (US, UK, DE…)")
    p.add_argument("--tag", help="your partner tag (tracking ID), e.g. yourname-20")
    p.add_argument("--credential-id", help="Creators API Credential ID (or CCBB_CREDENTIAL_ID)")
    p.add_argument(
        "--credential-secret",
        help="Creators API Credential Secret (prefer CCBB_CREDENTIAL_SECRET: a command line "
        "is visible to other users of the machine)",
    )
    p.add_argument("--credential-version", help="2.1, 2.2, 2.3, 3.1, 3.2 or 3.3 (default 2.1)")
    p.add_argument(
        "--cloak", action="append", default=[], metavar="PREFIX",
        help="URL prefix of your cloaked links, e.g. https://site.com/go/ (repeatable)",
    )  # fmt: skip
    p.add_argument("--max-pages", type=int, default=CrawlLimits.max_pages, metavar="N",
                   help="the page budget (default %(default)s)")  # fmt: skip
    p.add_argument("--tps", type=float, default=1.0, help="API requests per second allowed")
    p.add_argument("--concurrency", type=int, default=CrawlLimits.per_host_concurrency,
                   help="requests in flight to the site")  # fmt: skip
    p.add_argument(
        "--page-workers", type=int, default=None, metavar="N",
        help="processes fetching and parsing pages (default: one per core, at most 4; 0: none)",
    )  # fmt: skip
    p.add_argument("--api-host", default=AmazonAccess.api_host, metavar="URL",
                   help="another Creators API endpoint (the sandbox, for tests)")  # fmt: skip
    p.add_argument("--auth-endpoint", metavar="URL",
                   help="the token endpoint that goes with --api-host")  # fmt: skip
    p.add_argument(
        "--connect-to", action="append", default=[], metavar="HOST:PORT:HOST2:PORT2",
        help="like curl's: a request for HOST:PORT connects to HOST2:PORT2 (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--allow-private-network", action="store_true",
        help="allow connections to private and loopback addresses (tests, demos, intranets)",
    )  # fmt: skip
    p.add_argument("--format", choices=("text", "json", "csv"), default="text",
                   help="the report: text (default), json or csv")  # fmt: skip
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the report to this file instead of stdout")  # fmt: skip
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--verbose", "-v", action="store_true", help="log what the crawler does")


def _add_compare_options(p: argparse.ArgumentParser) -> None:
    from ccbb.compare import FAIL_ON

    p.add_argument(
        "--compare",
        metavar="PREVIOUS.json",
        help="also print what changed since this earlier report (--format json)",
    )
    p.add_argument("--fail-on", choices=FAIL_ON,
                   help="with --compare: exit 3 when a product newly broke (for CI)")  # fmt: skip


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clickclickbankbank")
    except PackageNotFoundError:
        return "unknown"


# commands whose parsers are all in this module: for them the others' parsers are not built, as
# those import the database layer (SQLAlchemy, Alembic, Redis: ~0.5 s of a scan's start-up)
SCAN_COMMANDS = frozenset({"scan", "demo"})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``ccbb`` parser; with ``command`` one of :data:`SCAN_COMMANDS`, without the commands
    defined in other modules (the parse of that command is the same)."""
    parser = argparse.ArgumentParser(
        prog="ccbb", description="ClickClickBankBank: find and check every Amazon link of a site."
    )
    parser.add_argument("--version", action="version", version=f"ccbb {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="scan a site and print the report")
    scan.add_argument("site", metavar="SITE_URL")
    _add_scan_options(scan)
    _add_compare_options(scan)
    demo = sub.add_parser("demo", help="scan the bundled demo site against the bundled sandbox")
    demo.add_argument(
        "--pages", type=int, default=60,
        help=f"pages of the demo site (at least {DEMO_MIN_PAGES}, default 60)",
    )  # fmt: skip
    demo.add_argument("--format", choices=("text", "json", "csv"), default="text")
    demo.add_argument("--output", "-o")
    demo.add_argument("--quiet", "-q", action="store_true")
    demo.add_argument("--verbose", "-v", action="store_true")
    sub.add_parser("sandbox-amazon", help="serve the sandbox Creators API (see --help)")
    sub.add_parser(
        "worker",
        help="run a background worker (scans queued from the web); without REDIS_URL it starts "
        "or joins the embedded Redis of the data directory, without DATABASE_URL it uses SQLite",
    )
    sub.add_parser("migrate", help="bring the database schema up to date (production: once)")
    for name, text in (
        ("web", "serve the dashboard"),
        ("run", "the dashboard and a worker together (embedded Redis and SQLite by default)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, default=8000)
        if name == "run":
            cmd.add_argument("--demo", action="store_true",
                             help="also serve the demo site and the sandbox Amazon API, with a "
                             "demo account (no Amazon account needed)")  # fmt: skip
    if command in SCAN_COMMANDS:
        return parser
    from ccbb import clickbank_cli

    clickbank_cli.add_parsers(sub)
    from ccbb import affiliates_cli

    affiliates_cli.add_parsers(sub)
    from ccbb import payouts_cli

    payouts_cli.add_parsers(sub)
    sub.add_parser("sandbox-paypal", help="serve the sandbox PayPal Payouts API (see --help)")
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command")
    create = user.add_parser("create", help="create a user (the first admin, say)")
    create.add_argument("email")
    create.add_argument("--password-stdin", action="store_true", required=True,
                        help="read the password from standard input")  # fmt: skip
    create.add_argument("--admin", action="store_true")
    _add_operator_commands(sub, user)
    return parser


def _add_operator_commands(sub: Any, user: Any) -> None:
    """``ccbb credits grant|revoke|show`` and ``ccbb user token`` (see ccbb.operator)."""
    from ccbb import operator

    operator.add_parsers(sub, user)


def scan_inputs(args: argparse.Namespace, env: dict[str, str]) -> tuple[ScanConfig, AmazonAccess]:
    """Validate every option; raise UsageError with what to do."""
    try:
        site = site_url(args.site)
    except BadSiteUrl as exc:
        raise UsageError(str(exc)) from None
    marketplace = marketplace_for_country(args.country)
    if marketplace is None:
        raise UsageError(f"unknown --country {args.country!r}: use a code such as US, UK, DE, FR")
    if not args.tag:
        raise UsageError("give --tag: your partner tag (tracking ID), such as yourname-20")
    if not TAG_RE.match(args.tag):
        raise UsageError(f"--tag {args.tag!r} does not look like a tracking ID such as yourname-20")
    if args.max_pages < 1:
        raise UsageError("--max-pages must be at least 1")
    if not args.tps > 0:
        raise UsageError("--tps must be greater than 0 (new Associates accounts get 1)")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    try:
        connect_to = parse_connect_to(args.connect_to)
    except BadConnectTo as exc:
        raise UsageError(str(exc)) from None
    prefixes = []
    for raw in args.cloak:
        try:
            prefix = site_url(raw)
        except BadSiteUrl as exc:
            raise UsageError(f"--cloak: {exc}") from None
        prefixes.append(cloak_prefix(prefix))
    workers = default_page_workers() if args.page_workers is None else args.page_workers
    if workers < 0:
        raise UsageError("--page-workers must be 0 or more")
    # the credentials last: a typo in another option is reported before the user goes for them
    credential_id = args.credential_id or env.get("CCBB_CREDENTIAL_ID", "")
    secret = args.credential_secret or env.get("CCBB_CREDENTIAL_SECRET", "")
    version = args.credential_version or env.get("CCBB_CREDENTIAL_VERSION", "") or "2.1"
    if not credential_id or not secret:
        raise UsageError(
            "Amazon credentials are needed: give --credential-id and --credential-secret, or set "
            "CCBB_CREDENTIAL_ID and CCBB_CREDENTIAL_SECRET"
        )
    limits = CrawlLimits(
        max_pages=args.max_pages, per_host_concurrency=args.concurrency, page_workers=workers
    )
    config = ScanConfig(
        site=site,
        marketplace=marketplace,
        partner_tag=args.tag,
        cloak_prefixes=tuple(prefixes),
        limits=limits,
        network=NetworkPolicy(allow_private=args.allow_private_network, connect_to=connect_to),
        http_fallback=is_bare_domain(args.site),
    )
    access = AmazonAccess(
        credential_id=credential_id,
        credential_secret=secret,
        version=version,
        partner_tag=args.tag,
        marketplace=marketplace,
        api_host=args.api_host,
        auth_endpoint=args.auth_endpoint,
        tps=args.tps,
    )
    return config, access


def _peak_memory() -> dict[str, float]:
    """Peak resident memory in MB of this process (its page workers' is in the report)."""
    return {"peak_rss_mb": peak_rss_mb()}


def write_report(report: ScanReport, fmt: str, output: str | None) -> None:
    """Stream the report to ``output`` (stdout when None): large reports never sit in memory."""
    with (
        open(output, "w", encoding="utf-8", newline="")
        if output
        else contextlib.nullcontext(sys.stdout)
    ) as out:
        if fmt == "json":
            for chunk in iter_json(report, _peak_memory):
                out.write(chunk)
        elif fmt == "csv":
            for chunk in iter_csv(csv_rows(report)):
                out.write(chunk)
        else:
            out.write(to_text(report))


def _cmd_scan(args: argparse.Namespace) -> int:
    from ccbb import compare

    config, access = scan_inputs(args, dict(os.environ))
    if args.output:
        _check_writable(args.output)
    if args.fail_on and not args.compare:
        raise UsageError("--fail-on needs --compare PREVIOUS.json (the report to compare with)")
    previous = None
    if args.compare:  # read before scanning: a bad file is told at once, not after the scan
        try:
            previous = compare.load_previous(args.compare)
            compare.check_same_site(args.compare, previous, config.site, config.marketplace)
        except compare.CompareError as exc:
            raise UsageError(str(exc)) from None
    # this process ends with the scan: what it holds by now (its modules) is never garbage, and
    # the collector's full passes need not walk it again and again
    gc.freeze()
    report = event_loop.run(
        scan_site(config, access, show_progress=not args.quiet, concurrency=args.concurrency)
    )
    write_report(report, args.format, args.output)
    if previous is None:
        return 0
    changes, text = compare.changes_since(previous, report)
    # a JSON or CSV report on stdout stays parseable: the changes go to stderr then
    out = sys.stderr if args.format != "text" and not args.output else sys.stdout
    out.write(("\n" if out is sys.stdout and not args.output else "") + text)
    return compare.exit_code(changes, args.fail_on)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ccbb.demo import run_demo

    if args.pages < DEMO_MIN_PAGES:
        raise UsageError(
            f"--pages must be at least {DEMO_MIN_PAGES} (home, about, a category, an article)"
        )
    if args.output:
        _check_writable(args.output)
    report = asyncio.run(run_demo(pages=args.pages, show_progress=not args.quiet))
    write_report(report, args.format, args.output)
    return 0


def _check_writable(output: str) -> None:
    parent = Path(output).resolve().parent
    if not parent.is_dir():
        raise UsageError(f"--output {output}: the folder {parent} does not exist")


def main(argv: Sequence[str] | None = None) -> int:
    as_program = argv is None  # the ``ccbb`` command itself, not a caller in Python
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox-amazon"]:
        from ccbb.sandbox.amazon_api import main as sandbox_main

        return sandbox_main(argv[1:])
    if argv[:1] == ["sandbox-clickbank"]:
        from ccbb.sandbox.clickbank import main as clickbank_sandbox_main

        return clickbank_sandbox_main(argv[1:])
    if argv[:1] == ["sandbox-paypal"]:
        from ccbb.sandbox.paypal import main as paypal_sandbox_main

        return paypal_sandbox_main(argv[1:])
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args, unknown = parser.parse_known_args(argv)
    command = _command_parser(parser, args.command)
    if unknown:  # said by the command's own parser, with its usage (not the top-level one)
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "scan":
            code = _cmd_scan(args)
            if as_program:
                _end_now(code)
            return code
        if args.command == "demo":
            return _cmd_demo(args)
        if args.command == "worker":
            from ccbb.services import run_worker

            return run_worker()
        if args.command == "migrate":
            from ccbb.services import migrate

            return migrate()
        if args.command in ("web", "run"):
            from ccbb import services

            if args.command == "web":
                return services.run_web(args.host, args.port)
            return services.run_all(args.host, args.port, demo=args.demo)
        if args.command == "clickbank":
            from ccbb import clickbank_cli

            return clickbank_cli.run(args)
        if args.command == "affiliates":
            from ccbb import affiliates_cli

            return affiliates_cli.run(args)
        if args.command == "payouts":
            from ccbb import payouts_cli

            return payouts_cli.run(args)
        if args.command == "user" and args.user_command == "create":
            from ccbb.services import create_user

            password = sys.stdin.readline().rstrip("\n")
            return create_user(args.email, password, admin=args.admin)
        if args.command == "credits" or (args.command == "user" and args.user_command == "token"):
            from ccbb import operator

            return operator.run(args)
    except UsageError as exc:
        command.exit(2, f"{command.prog}: error: {exc}\n")
    except BrokenPipeError:
        # the reader stopped (`ccbb scan … | head`): end quietly, the way the Python
        # documentation says (signal module, "Note on SIGPIPE"): stdout goes to devnull so
        # the interpreter's last flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except ScanFailed as exc:
        sys.stderr.write(f"ccbb: scan failed: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ccbb: interrupted\n")
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


def _end_now(code: int) -> NoReturn:
    """End the ``ccbb scan`` process once its report is written, without tearing down its heap:
    freeing a large scan's objects one by one at interpreter exit took 0.3–1.5 s (measured on the
    5,000-page benchmark, more on a busy machine), longer than writing the report. Nothing is
    left to clean up by then (the page workers, sessions and files are closed); what is still
    buffered is flushed first."""
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped reading (`| head`): end quietly, as below
        code = 1
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The sub-parser of ``command`` (``ccbb scan``'s, say), for its usage in error messages."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser | None = action.choices.get(command)
            if found is not None:
                return found
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
