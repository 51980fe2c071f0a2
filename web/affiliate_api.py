"""The affiliate program in the JSON API (bearer token, like the rest of /api/v1), for
affiliates' own scripts: join (``POST /api/v1/affiliate``), membership, balance and payouts
(``GET /api/v1/affiliate``) and the per-day statistics of a period
(``GET /api/v1/affiliate/stats?from=YYYY-MM-DD&to=YYYY-MM-DD``, the rows of the statistics
page). Amounts are strings in USD (``"8.70"``: no float ever rounds a cent). Errors are
``{"error", "message"[, "fields"]}``. Listed in the OpenAPI document through
:data:`OPERATIONS`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from affiliates import messages, program, rules
from store import affiliate_stats as stats_store
from store import affiliates as store_aff
from web import openapi
from web.affiliate import referral_url
from web.affiliate_stats import Overview, PeriodError, overview, parse_period
from web.settings_page import user_id

V1 = "/api/v1"
NOT_MEMBER = "You are not a member of the affiliate program: join with POST /api/v1/affiliate."
Money = str  # "8.70": a decimal amount in USD, two places


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


class AffiliateJoinIn(BaseModel):
    """Joining the program: the same four answers as the Affiliate page's form."""

    model_config = ConfigDict(extra="forbid", strict=True)

    paypal_email: str = Field(max_length=320, description="where the payouts go (PayPal)")
    website: str = Field(default="", max_length=500, description="optional, https://…")
    adult: bool = Field(description="must be true: you are 18 or older")
    accept_terms: bool = Field(description="must be true: you accept the program terms")


class AffiliateBalanceOut(BaseModel):
    pending: Money = Field(
        description="earned, in the refund window or this month: not payable yet"
    )
    payable: Money = Field(description="paid on the next payout date when ≥ the minimum; may be "
                           "negative after a refund of a paid commission")  # fmt: skip
    paid: Money = Field(description="paid out so far")


class AffiliatePayoutOut(BaseModel):
    date: str = Field(description="YYYY-MM-DD")
    amount: Money
    status: str
    reference: str


class AffiliateOut(BaseModel):
    ref_id: str
    status: str = Field(description="active | refused | revoked | blocked")
    referral_url: str
    paypal_email: str
    website: str
    currency: str = Field(description="always USD")
    balance: AffiliateBalanceOut
    payout_minimum: Money
    next_payout_date: str = Field(description="YYYY-MM-DD: the 10th or 25th, or the next "
                                  "business day after a weekend or holiday")  # fmt: skip
    payouts: list[AffiliatePayoutOut] = Field(description="every payout made, newest first")


class AffiliateDayOut(BaseModel):
    date: str = Field(description="a UTC day, YYYY-MM-DD ('total' in the totals)")
    visits: int
    unique_visits: int
    signups: int
    sales: int = Field(description="first purchases and upsells")
    sales_amount: Money
    rebills: int
    rebills_amount: Money
    reversals: int = Field(description="refunds and chargebacks of earlier payments")
    reversals_amount: Money = Field(description="the commission they took back (≤ 0)")
    profit: Money = Field(description="the day's commission, reversals included")


class AffiliateStatsOut(BaseModel):
    from_: str = Field(alias="from", description="YYYY-MM-DD, included")
    to: str = Field(description="YYYY-MM-DD, included")
    currency: str
    days: list[AffiliateDayOut] = Field(description="every day of the period, oldest first")
    totals: AffiliateDayOut


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def _day_json(label: str, d: stats_store.DayStats) -> dict[str, Any]:
    return {
        "date": label, "visits": d.visits, "unique_visits": d.unique_visits,
        "signups": d.signups, "sales": d.sales, "sales_amount": _money(d.sales_amount),
        "rebills": d.rebills, "rebills_amount": _money(d.rebills_amount),
        "reversals": d.reversals, "reversals_amount": _money(d.reversals_amount),
        "profit": _money(d.profit),
    }  # fmt: skip


def _affiliate_json(request: Request, view: Overview) -> dict[str, Any]:
    a, b = view.affiliate, view.balance
    return {
        "ref_id": a.ref_id,
        "status": a.status,
        "referral_url": referral_url(request, a.ref_id),
        "paypal_email": a.paypal_email,
        "website": a.website,
        "currency": "USD",
        "balance": {
            "pending": _money(b.pending),
            "payable": _money(b.payable),
            "paid": _money(b.paid),
        },
        "payout_minimum": _money(request.app.state.settings.payout_minimum),
        "next_payout_date": view.next_payout.isoformat(),
        "payouts": [
            {
                "date": p.paid_on.isoformat(),
                "amount": _money(p.amount),
                "status": p.status,
                "reference": p.reference,
            }
            for p in view.payouts
        ],
    }


async def _member(request: Request) -> store_aff.Affiliate | None:
    async with request.app.state.sessions() as session:
        return await store_aff.get_by_user(session, user_id=user_id(request))


async def _today_view(request: Request, affiliate: store_aff.Affiliate) -> Overview:
    today = datetime.now(UTC).date()
    return await overview(request, affiliate, today, today)


async def get_affiliate(request: Request) -> Response:
    affiliate = await _member(request)
    if affiliate is None:
        return _error(404, "not_member", NOT_MEMBER)
    return JSONResponse(_affiliate_json(request, await _today_view(request, affiliate)))


async def join_affiliate(request: Request) -> Response:
    try:
        body = AffiliateJoinIn.model_validate(await request.json())
    except ValidationError as exc:
        fields = {
            ".".join(str(p) for p in e["loc"]) or "body": e["msg"]
            for e in exc.errors(include_url=False, include_input=False)
        }
        return _error(422, "invalid_fields", "Fix the fields listed in 'fields'.", fields=fields)
    except ValueError:
        return _error(400, "invalid_json", "The request body is not JSON.")
    problems = rules.join_problems(
        adult=body.adult, accept_terms=body.accept_terms, paypal_email=body.paypal_email,
        website=body.website,
    )  # fmt: skip
    if problems:
        return _error(422, "invalid_fields", "Fix the fields listed in 'fields'.", fields=problems)
    async with request.app.state.sessions() as session:
        try:
            affiliate = await program.join(
                session, user_id=user_id(request), paypal_email=body.paypal_email,
                website=body.website,
            )  # fmt: skip
        except program.AlreadyMember:
            return _error(409, "already_member", messages.ALREADY_MEMBER)
    view = await _today_view(request, affiliate)
    return JSONResponse(_affiliate_json(request, view), status_code=201)


async def get_stats(request: Request) -> Response:
    affiliate = await _member(request)
    if affiliate is None:
        return _error(404, "not_member", NOT_MEMBER)
    try:
        start, end = parse_period(
            request.query_params.get("from"), request.query_params.get("to"),
            today=datetime.now(UTC).date(),
        )  # fmt: skip
    except PeriodError as exc:
        return _error(400, "invalid_query", str(exc))
    view = await overview(request, affiliate, start, end)
    s = view.stats
    return JSONResponse({
        "from": s.start.isoformat(), "to": s.end.isoformat(), "currency": "USD",
        "days": [_day_json(d.day.isoformat(), d) for d in s.days],
        "totals": _day_json("total", s.totals),
    })  # fmt: skip


_ERRORS = {
    400: "Bad request (invalid_json; invalid_query: from/to are not YYYY-MM-DD, in the wrong "
    "order or more than 731 days apart)",
    401: "No valid API token (unauthenticated)",
    404: "You are not a member of the affiliate program (not_member)",
    409: "You are a member already (already_member)",
    422: "Invalid fields (invalid_fields), with a message per field: adult and accept_terms "
    "must be true, paypal_email an e-mail address, website empty or https://…",
    429: "Too many calls (rate_limited): wait the Retry-After seconds",
}

OPERATIONS = [
    openapi.Operation("GET", "/affiliate", get_affiliate,
                      "Your affiliate membership: REF ID, link, balance, next payout, payouts",
                      response=AffiliateOut, errors=(404,), error_text=_ERRORS),
    openapi.Operation("POST", "/affiliate", join_affiliate,
                      "Join the affiliate program (18 or older, terms accepted, PayPal e-mail)",
                      body=AffiliateJoinIn, response=AffiliateOut, status=201,
                      errors=(400, 409, 422), error_text=_ERRORS),
    openapi.Operation("GET", "/affiliate/stats", get_stats,
                      "Your statistics per UTC day of a period (?from=YYYY-MM-DD&to=YYYY-MM-DD; "
                      "the last 30 days by default), with totals",
                      response=AffiliateStatsOut, query=("from", "to"), errors=(400, 404),
                      error_text=_ERRORS),
]  # fmt: skip

routes = [Route(V1 + op.path, op.endpoint, methods=[op.method]) for op in OPERATIONS]
