"""The affiliate program on the web: the referral link (``/r/REFID`` and ``/?ref=REFID``) and
the Affiliate page (join, your link)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from affiliates import commissions, messages, payout_dates, program, promo, rules
from store import affiliate_stats as stats_store
from store import affiliates as store_aff
from store import payouts as store_pay
from store.models import User
from web import engine_messages
from web.i18n import N_, Translated, _
from web.templating import render

log = logging.getLogger(__name__)

UNIQUE_KEY = "ccbb:aff:uv:{}:{}"  # a Redis set of the day's visitor hashes, kept 2 days
LANDING_PAGE = "/"  # the public home page (the dashboard once logged in)


def referral_url(request: Request, ref_id: str) -> str:
    base = request.app.state.settings.public_url.rstrip("/")
    return f"{base}/?ref={ref_id}"


REF_CACHE_SECONDS = 1.0  # a REF ID's answer is reused this long (a revocation shows after it)
REF_CACHE_MAX = 10_000
_ref_cache: dict[str, tuple[float, int | None]] = {}


async def _landing_affiliate(request: Request, ref: str) -> int | None:
    """The id of the active member whose REF ID ``ref`` is: one indexed read (web.reads), its
    answer kept a second in the process (a popular link is clicked many times a second)."""
    ref_id = rules.normalize_ref(ref)
    if ref_id is None:
        return None
    now = time.monotonic()
    hit = _ref_cache.get(ref_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = await request.app.state.reads.rows(store_aff.ACTIVE_BY_REF, {"ref_id": ref_id})
    active = bool(found) and found[0]["status"] == store_aff.ACTIVE
    answer = int(found[0]["id"]) if active else None
    if len(_ref_cache) >= REF_CACHE_MAX:
        _ref_cache.clear()
    _ref_cache[ref_id] = (now + REF_CACHE_SECONDS, answer)
    return answer


async def _land(request: Request, ref: str) -> Response:
    """The referral link, kept cheap (the link affiliates paste everywhere): one read of the
    REF ID, one Redis round trip for the unique visitor, the counters gathered in memory
    (web.visit_counter) — no database write per click."""
    state = request.app.state
    now = datetime.now(UTC)
    current = request.scope.get("user")  # set by web.app.AuthGate, which runs before
    session_user = current.id if current is not None else None
    target = "/" if isinstance(session_user, int) else LANDING_PAGE
    response = RedirectResponse(target, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    affiliate_id = await _landing_affiliate(request, ref)
    if affiliate_id is None:
        return response  # unknown or revoked: land normally, count nothing
    ref_id = rules.normalize_ref(ref) or ""
    ip = request.client.host if request.client else ""
    visitor = rules.visitor_hash(
        state.signing_secret, ip=ip, user_agent=request.headers.get("user-agent", ""),
        day=now.date(),
    )  # fmt: skip
    key = UNIQUE_KEY.format(ref_id, now.date().isoformat())
    async with state.redis.pipeline(transaction=False) as pipe:
        pipe.sadd(key, visitor)
        pipe.expire(key, 2 * 86400)
        added, _ = await pipe.execute()
    state.visits.add(affiliate_id=affiliate_id, day=now.date(), unique=bool(added))
    earlier = rules.read_landing(state.signing_secret, request.cookies.get(rules.COOKIE))
    if earlier is not None and rules.within_window(earlier.landed_at, now):
        return response  # the first landing wins
    landing = rules.Landing(ref_id, now, session_user if isinstance(session_user, int) else None)
    response.set_cookie(
        rules.COOKIE, rules.landing_cookie(state.signing_secret, landing),
        max_age=rules.COOKIE_MAX_AGE, httponly=True, samesite="lax",
        secure=state.settings.secure_cookies,
    )  # fmt: skip
    return response


async def referral_link(request: Request) -> Response:
    return await _land(request, str(request.path_params["ref"]))


class ReferralLinks:
    """``/r/REFID`` and ``/?ref=REFID``, answered here, before the routing (inside the login
    gate, which lets ``/`` and ``/r/`` through and says who is logged in): the link skips the
    walk through every route and the language middleware, which a redirect does not need."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            ref = None
            if path.startswith("/r/") and "/" not in path[3:]:
                ref = path[3:]
            elif path == "/" and b"ref=" in scope["query_string"]:
                ref = Request(scope, receive).query_params.get("ref")
            if ref:
                response = await _land(Request(scope, receive), ref)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def attribute_signup(request: Request, user: User) -> None:
    """Called by the sign-up: the account goes to the affiliate whose link it came from."""
    state = request.app.state
    landing = rules.read_landing(state.signing_secret, request.cookies.get(rules.COOKIE))
    if landing is None:
        return
    async with state.sessions() as session:
        await program.attribute_signup(session, user=user, landing=landing, now=datetime.now(UTC))


RECENT_ENTRIES = 100  # the commissions the page lists (all of them: the statistics' CSV)


@dataclass(frozen=True)
class Account:
    entries: list[store_aff.AffiliateCommission]  # the latest, newest first
    count: int  # of all entries
    balance: commissions.Balance
    payouts: list[store_pay.PayoutView]  # every payout made, newest first


async def _account(session: AsyncSession, affiliate: store_aff.Affiliate | None) -> Account | None:
    """A member's balance (summed in SQL), latest commissions and payouts."""
    if affiliate is None or affiliate.id is None:
        return None
    entries, count = await store_aff.recent_commissions(
        session, affiliate_id=affiliate.id, limit=RECENT_ENTRIES
    )
    payouts = await store_pay.payouts_of(session, affiliate_id=affiliate.id)
    balance = await stats_store.balance(
        session, affiliate_id=affiliate.id, paid=await store_pay.paid_of(
            session, affiliate_id=affiliate.id), now=datetime.now(UTC),
    )  # fmt: skip
    return Account(entries, count, balance, payouts)


async def affiliate_page(request: Request) -> Response:
    user = request.scope["user"]
    state = request.app.state
    async with state.sessions() as session:
        affiliate = await store_aff.get_by_user(session, user_id=user.id)
        account = await _account(session, affiliate)
    if request.method == "GET":
        return _page(request, affiliate, account=account)
    if affiliate is not None:
        return _page(request, affiliate, message=_(messages.ALREADY_MEMBER), account=account)
    form = await request.form()
    values = {
        "paypal_email": str(form.get("paypal_email", "")).strip(),
        "website": str(form.get("website", "")).strip(),
    }
    errors = rules.join_problems(
        adult=form.get("adult") == "yes", accept_terms=form.get("accept_terms") == "yes",
        **values,
    )  # fmt: skip
    if errors:
        return _page(request, None, errors=errors, values=values, status_code=400)
    async with state.sessions() as session:
        try:
            affiliate = await program.join(session, user_id=user.id, **values)
        except program.AlreadyMember:
            affiliate = await store_aff.get_by_user(session, user_id=user.id)
    return _page(request, affiliate, message=_(messages.JOINED))


KIND_WORDS = Translated(
    {
        store_aff.SALE: N_("Sale"),
        store_aff.UPSELL: N_("Upsell"),
        store_aff.REBILL: N_("Renewal"),
        store_aff.REVERSAL: N_("Reversal"),
    }
)
REVERSED_BY = Translated(
    {"RFND": N_("Refund"), "CGBK": N_("Chargeback"), "INSF": N_("Payment returned")}
)


def commission_note(entry: store_aff.AffiliateCommission) -> str:
    """A commission's note (stored in English) in the page's language."""
    if entry.kind == store_aff.REVERSAL:
        kind, sep, receipt = entry.note.partition(" of ")
        if sep:
            words = REVERSED_BY.get(kind, kind)
            return _(messages.REVERSAL_NOTE).format(kind=words, receipt=receipt)
    return engine_messages.translate(entry.note)


def _page(
    request: Request,
    affiliate: store_aff.Affiliate | None,
    *,
    message: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
    account: Account | None = None,
) -> Response:
    settings = request.app.state.settings
    now = datetime.now(UTC)
    status_note = None
    if affiliate is not None and affiliate.status == store_aff.REFUSED:
        status_note = _(messages.REFUSED)
    elif affiliate is not None and affiliate.status == store_aff.REVOKED:
        status_note = _(messages.REVOKED)
    elif affiliate is not None and affiliate.status == store_aff.BLOCKED:
        status_note = _(messages.BLOCKED)
    ctx = {
        "affiliate": affiliate,
        "link": referral_url(request, affiliate.ref_id) if affiliate else None,
        "status_note": status_note,
        "message": message,
        "errors": errors or {},
        "values": values or {},
        "entries": account.entries if account else [],
        "entry_count": account.count if account else 0,
        "balance": account.balance if account else commissions.Balance(*(Decimal("0.00"),) * 3),
        "payouts": account.payouts if account else [],  # every payout made, newest first
        "next_payout": payout_dates.next_payout_date(now.date(), settings.payout_country),
        "minimum": settings.payout_minimum,
        "kind_words": KIND_WORDS,
        "note": commission_note,
        "promo": _promo(request, affiliate),
    }
    return render(request, "affiliate.html", ctx, status_code)


def _promo(request: Request, affiliate: store_aff.Affiliate | None) -> dict[str, Any]:
    """The promotional material of an active member, per language (web.templates
    _affiliate_promo.html shows it as HTML to copy)."""
    if affiliate is None or affiliate.status != store_aff.ACTIVE:
        return {}
    link = referral_url(request, affiliate.ref_id)
    base = request.app.state.settings.public_url
    return {
        lang: promo.material(link=link, base_url=base, language=lang) for lang in promo.LANGUAGES
    }


routes = [
    Route("/r/{ref}", referral_link),
    Route("/affiliate", affiliate_page, methods=["GET", "POST"]),
]
PUBLIC_PATHS = ("/r/",)
