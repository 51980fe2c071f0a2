"""The Billing page: the user's plan, credits left, when the next credits arrive, the ledger's
history in words, and the plans and packs to buy or change to. Hidden (404) with
``CCBB_CREDITS=off``. The buttons lead to ``/billing/checkout/{sku}``: until a payment
provider is configured, that page says so (an operator grants credits from the CLI or API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from billing import messages
from billing.catalogue import Catalogue, CatalogueItem
from store import credits as store_credits
from store.credits import CreditAccount, LedgerEntry
from web.settings_page import user_id
from web.templating import render

HISTORY_PAGE = 50
KIND_WORDS = {
    "scan": "Scan",
    "scan_refund": "Refund",
    "purchase": "Purchase",
    "grant": "Credits added",
    "revoke": "Credits removed",
    "consume": "Used through the API",
    "plan": "Plan credits",
    "demo": "Demo credits",
}


def _date(value: datetime | None) -> str:
    return value.strftime("%d %b %Y") if value else ""


def plan_words(account: CreditAccount | None, catalogue: Catalogue) -> dict[str, Any]:
    """What the page says of the plan and the next credits (pure)."""
    sku = account.plan_sku if account else None
    plan = catalogue.get(sku) if sku else None
    status = account.plan_status if account else "none"
    if plan is None or status == "none":
        return {"name": messages.PLAN_NONE, "status": "", "next": messages.NO_NEXT_CREDITS,
                "sku": None}  # fmt: skip
    date = _date(account.period_end if account else None)
    next_words = messages.NO_NEXT_CREDITS
    if status == "active" and account is not None and account.renews and account.period_end:
        next_words = messages.NEXT_CREDITS.format(credits=plan.credits, date=date, plan=plan.name)
    live = account is not None and account.live_plan is not None
    return {
        "name": plan.name,
        "status": messages.PLAN_STATUS.get(status, status).format(date=date) if date else status,
        "next": next_words,
        "sku": plan.sku if live else None,
    }


def entry_words(entry: LedgerEntry) -> dict[str, Any]:
    sign = "+" if entry.delta > 0 else ("−" if entry.delta < 0 else "")
    return {
        "date": entry.created_at.strftime("%d %b %Y %H:%M UTC"),
        "what": KIND_WORDS.get(entry.kind, entry.kind.replace("_", " ").capitalize()),
        "comment": entry.comment,
        "change": f"{sign}{abs(entry.delta)}",
        "positive": entry.delta > 0,
        "balance": entry.balance_after,
        "shortfall": entry.shortfall,
    }


def _offer(item: CatalogueItem, current: str | None) -> dict[str, Any]:
    per = " / month" if item.recurring else ""
    pages = f", scans of up to {item.max_pages:,} pages" if item.max_pages else ""
    return {
        "sku": item.sku,
        "name": item.name,
        "price": f"${item.price:.2f}{per}" if item.currency == "USD" else
                 f"{item.price:.2f} {item.currency}{per}",
        "what": f"{item.credits} scan credits{' every month' if item.recurring else ''}{pages}",
        "current": item.sku == current,
        "button": messages.CURRENT if item.sku == current else (
            messages.CHANGE if item.recurring and current else messages.BUY),
    }  # fmt: skip


def _enabled(request: Request) -> None:
    if not request.app.state.settings.credits_enabled:
        raise HTTPException(404, "Not Found")


async def billing(request: Request) -> Response:
    _enabled(request)
    try:
        page = max(1, min(int(request.query_params.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    catalogue: Catalogue = request.app.state.catalogue
    async with request.app.state.sessions() as session:
        account = await store_credits.get_account(session, user_id=user_id(request))
        entries = await store_credits.history(
            session, user_id=user_id(request), limit=HISTORY_PAGE + 1,
            offset=(page - 1) * HISTORY_PAGE,
        )  # fmt: skip
    plan = plan_words(account, catalogue)
    ctx = {
        "balance": account.balance if account else 0,
        "plan": plan,
        "history": [entry_words(e) for e in entries[:HISTORY_PAGE]],
        "page": page,
        "more": len(entries) > HISTORY_PAGE,
        "plans": [_offer(p, plan["sku"]) for p in catalogue.plans],
        "packs": [_offer(p, None) for p in catalogue.packs],
        # the header shows the same, freshly read
        "credits": account.balance if account else 0,
    }
    return render(request, "billing.html", ctx)


async def checkout(request: Request) -> Response:
    """Where a Buy button leads. The ClickBank checkout replaces this page."""
    _enabled(request)
    item = request.app.state.catalogue.get(request.path_params["sku"])
    if item is None:
        raise HTTPException(404, messages.UNKNOWN_SKU.format(sku=request.path_params["sku"][:64]))
    ctx = {"item": _offer(item, None), "message_text": messages.CHECKOUT_NOT_CONFIGURED}
    return render(request, "checkout.html", ctx)


routes = [
    Route("/billing", billing),
    Route("/billing/checkout/{sku}", checkout),
]
