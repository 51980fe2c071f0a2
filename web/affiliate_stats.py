"""The affiliate's statistics page (``/affiliate/stats``) and its CSV (``/affiliate/stats.csv``):
per UTC day of a chosen period (``?from=YYYY-MM-DD&to=YYYY-MM-DD``, the last 30 days by
default) visits, unique visits, sign-ups, sales, sales amount, rebills, rebills amount, what
refunds and chargebacks took back and the profit, with totals; the balance and the next payout
date. Server-rendered, no script. The JSON API (web.affiliate_api) serves the same rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from affiliates import payout_dates
from affiliates.commissions import Balance
from scanner.report import csv_safe
from store import affiliate_stats as stats_store
from store import affiliates as store_aff
from web import i18n
from web.i18n import N_, gettext
from web.templating import render

DEFAULT_DAYS = 30
BAD_DATE = N_("Enter the dates as YYYY-MM-DD, such as 2026-11-01.")
BAD_ORDER = N_("The period ends before it starts: swap the dates.")
TOO_LONG = N_("Choose a period of at most two years (731 days).")
CSV_COLUMNS = (
    "date", "visits", "unique_visits", "signups", "sales", "sales_amount", "rebills",
    "rebills_amount", "reversals", "reversals_amount", "profit",
)  # fmt: skip


class PeriodError(ValueError):
    """A period that cannot be shown; its message is one of the texts above (English)."""


def parse_period(start: str | None, end: str | None, *, today: date) -> tuple[date, date]:
    """The period of ``?from=&to=``: both optional (``to`` defaults to today, ``from`` to 29
    days before ``to``), both days included. Raises :class:`PeriodError`."""
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise PeriodError(BAD_DATE) from None
    if last < first:
        raise PeriodError(BAD_ORDER)
    if (last - first).days + 1 > stats_store.MAX_DAYS:
        raise PeriodError(TOO_LONG)
    return first, last


@dataclass(frozen=True)
class Overview:
    """What the page, the CSV and the API show of one affiliate."""

    affiliate: store_aff.Affiliate
    stats: stats_store.Statistics
    balance: Balance
    next_payout: date
    payouts: list[stats_store.PayoutMade]


async def overview(
    request: Request, affiliate: store_aff.Affiliate, start: date, end: date
) -> Overview:
    state = request.app.state
    assert affiliate.id is not None
    now = datetime.now(UTC)
    async with state.sessions() as session:
        stats = await stats_store.statistics(
            session, affiliate_id=affiliate.id, start=start, end=end
        )
        payouts = await stats_store.payouts_made(session, affiliate_id=affiliate.id)
        balance = await stats_store.balance(
            session,
            affiliate_id=affiliate.id,
            paid=await stats_store.paid_total(session, affiliate_id=affiliate.id),
            now=now,
        )
    next_payout = payout_dates.next_payout_date(now.date(), state.settings.payout_country)
    return Overview(affiliate, stats, balance, next_payout, payouts)


async def _member(request: Request) -> store_aff.Affiliate | None:
    async with request.app.state.sessions() as session:
        return await store_aff.get_by_user(session, user_id=request.scope["user"].id)


async def stats_page(request: Request) -> Response:
    affiliate = await _member(request)
    if affiliate is None:
        return RedirectResponse("/affiliate", status_code=303)
    today = datetime.now(UTC).date()
    raw_from, raw_to = request.query_params.get("from"), request.query_params.get("to")
    try:
        start, end = parse_period(raw_from, raw_to, today=today)
    except PeriodError as exc:
        start, end = parse_period(None, None, today=today)
        view = await overview(request, affiliate, start, end)
        return _render(request, view, error=gettext(str(exc)), raw=(raw_from, raw_to), status=400)
    view = await overview(request, affiliate, start, end)
    return _render(request, view)


def _render(
    request: Request,
    view: Overview,
    *,
    error: str | None = None,
    raw: tuple[str | None, str | None] | None = None,
    status: int = 200,
) -> Response:
    s = view.stats
    ctx = {
        "affiliate": view.affiliate,
        "stats": s,
        "rows": _formatted(reversed(s.days)),  # newest first, as an affiliate reads it
        "totals": _formatted([s.totals])[0],
        "balance": view.balance,
        "next_payout": view.next_payout,
        "payouts": view.payouts,
        "minimum": request.app.state.settings.payout_minimum,
        "period_error": error,
        "from_value": raw[0] if raw else s.start.isoformat(),
        "to_value": raw[1] if raw else s.end.isoformat(),
        "csv_url": f"/affiliate/stats.csv?from={s.start.isoformat()}&to={s.end.isoformat()}",
    }
    return render(request, "affiliate_stats.html", ctx, status)


MONEY_FIELDS = frozenset({"sales_amount", "rebills_amount", "reversals_amount", "profit"})


def _formatted(days: Iterable[stats_store.DayStats]) -> list[dict[str, str]]:
    """The rows as the page shows them, in the language of the request. A year is 3,650
    cells, most of them the same few values (0, $0.00): each is formatted once (Babel's
    formatting is the page's main cost)."""
    seen: dict[tuple[bool, object], str] = {}

    def text(name: str, value: object) -> str:
        key = (name in MONEY_FIELDS, value)
        found = seen.get(key)
        if found is None:
            found = seen[key] = i18n.money(value) if key[0] else i18n.number(value)  # type: ignore[arg-type]
        return found

    return [
        {"iso": d.day.isoformat(), "day": i18n.day(d.day),
         **{name: text(name, getattr(d, name)) for name in stats_store.FIELDS}}
        for d in days
    ]  # fmt: skip


def _cell(value: object) -> str:
    """Numbers and dates as we write them (``-5.99`` stays a number a spreadsheet adds up);
    any text through the report's formula neutraliser (scanner.report.csv_safe)."""
    if isinstance(value, bool):
        return csv_safe(value)
    if isinstance(value, int | Decimal | date):
        return str(value)
    return csv_safe(value)


def stats_csv_text(view: Overview) -> str:
    """The period's rows, oldest first, then a ``total`` row (English column names: a stable
    contract, like the report's CSV)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = [(d.day, d) for d in view.stats.days] + [("total", view.stats.totals)]
    for label, d in rows:
        writer.writerow([_cell(label)] + [_cell(getattr(d, name)) for name in stats_store.FIELDS])
    return buf.getvalue()


async def stats_csv(request: Request) -> Response:
    affiliate = await _member(request)
    if affiliate is None:
        return RedirectResponse("/affiliate", status_code=303)
    try:
        start, end = parse_period(
            request.query_params.get("from"), request.query_params.get("to"),
            today=datetime.now(UTC).date(),
        )  # fmt: skip
    except PeriodError as exc:
        return Response(gettext(str(exc)), status_code=400, media_type="text/plain")
    view = await overview(request, affiliate, start, end)
    name = f"affiliate-{affiliate.ref_id}-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        stats_csv_text(view),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Cache-Control": "no-store"},
    )  # fmt: skip


routes = [
    Route("/affiliate/stats", stats_page),
    Route("/affiliate/stats.csv", stats_csv),
]
