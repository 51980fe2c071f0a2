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
from web import clickbank, engine_messages, i18n
from web.i18n import N_, _, ngettext
from web.settings_page import user_id
from web.templating import render

HISTORY_PAGE = 50
KIND_WORDS = {
    "scan": N_("Scan"),
    "scan_refund": N_("Refund"),
    "purchase": N_("Purchase"),
    "grant": N_("Credits added"),
    "revoke": N_("Credits removed"),
    "consume": N_("Used through the API"),
    "plan": N_("Plan credits"),
    "demo": N_("Demo credits"),
}


def _date(value: datetime | None) -> str:
    return i18n.day(value) if value else ""


def plan_words(account: CreditAccount | None, catalogue: Catalogue) -> dict[str, Any]:
    """What the page says of the plan and the next credits (pure)."""
    sku = account.plan_sku if account else None
    plan = catalogue.get(sku) if sku else None
    status = account.plan_status if account else "none"
    if plan is None or status == "none":
        return {"name": _(messages.PLAN_NONE), "status": "", "next": _(messages.NO_NEXT_CREDITS),
                "sku": None}  # fmt: skip
    date = _date(account.period_end if account else None)
    next_words = _(messages.NO_NEXT_CREDITS)
    if status == "active" and account is not None and account.renews and account.period_end:
        next_words = _(messages.NEXT_CREDITS).format(
            credits=i18n.number(plan.credits), date=date, plan=plan.name
        )
    live = account is not None and account.live_plan is not None
    status_words = messages.PLAN_STATUS.get(status, "")
    return {
        "name": plan.name,
        "status": _(status_words).format(date=date) if date and status_words else status,
        "next": next_words,
        "sku": plan.sku if live else None,
    }


def entry_words(entry: LedgerEntry) -> dict[str, Any]:
    sign = "+" if entry.delta > 0 else ("−" if entry.delta < 0 else "")
    return {
        "date": i18n.moment(entry.created_at),
        "what": _(KIND_WORDS[entry.kind])
        if entry.kind in KIND_WORDS
        else entry.kind.replace("_", " ").capitalize(),
        "comment": engine_messages.translate(entry.comment),
        "change": f"{sign}{i18n.number(abs(entry.delta))}",
        "positive": entry.delta > 0,
        "balance": entry.balance_after,
        "shortfall": entry.shortfall,
    }


def _offer(item: CatalogueItem, current: str | None) -> dict[str, Any]:
    price = (
        i18n.money(item.price)
        if item.currency == "USD"
        else (f"{i18n.number(item.price)} {item.currency}")
    )
    values = {"n": i18n.number(item.credits), "pages": i18n.number(item.max_pages or 0)}
    if item.recurring:
        what = (
            ngettext(
                "%(n)s scan credit every month", "%(n)s scan credits every month", item.credits
            )
            % values
        )
    else:
        what = ngettext("%(n)s scan credit", "%(n)s scan credits", item.credits) % values
    if item.max_pages:
        what = _("%(credits)s, scans of up to %(pages)s pages") % {**values, "credits": what}
    return {
        "sku": item.sku,
        "name": clickbank.item_name(item),
        "price": _("%(price)s / month") % {"price": price} if item.recurring else price,
        "what": what,
        "current": item.sku == current,
        "button": _(messages.CURRENT if item.sku == current else (
            messages.CHANGE if item.recurring and current else messages.BUY)),
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
    """Where a Buy button leads: ClickBank's order form, through a pay link made for this user
    (web.clickbank.checkout); a page saying so while ClickBank is not set up."""
    _enabled(request)
    item = request.app.state.catalogue.get(request.path_params["sku"])
    if item is None:
        sku = request.path_params["sku"][:64]
        raise HTTPException(404, _(messages.UNKNOWN_SKU).format(sku=sku))
    if clickbank.configured(request.app.state.settings):
        return await clickbank.checkout(request)
    ctx = {"item": _offer(item, None), "message_text": _(messages.CHECKOUT_NOT_CONFIGURED)}
    return render(request, "checkout.html", ctx)


routes = [
    Route("/billing", billing),
    Route("/billing/checkout/{sku}", checkout),
]
