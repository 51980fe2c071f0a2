"""ClickBank in the web app: the INS endpoint, the checkout redirect (a pay link made for the
signed-in user), our PitchPlus upsell pages, the thank-you page, and Billing's refund, cancel
and change-plan buttons.

``POST /clickbank/ins`` does the least it can while ClickBank waits (it wants a 2xx within 3 s):
decrypt and check, keep the raw event (one statement, ``web.ins_store``; a redelivery only
counts), queue its
processing (``ccbb.clickbank_jobs``), answer 200. A body that does not decrypt into a
notification of our vendor gets 400 and leaves only a counter in Redis and a log line without
personal data.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from billing import clickbank_ins as ins
from billing import clickbank_links as links
from billing import invitations
from billing.clickbank_api import ClickbankApi, ClickbankApiError, ticket_id
from billing.refund_rule import refund_allowed
from billing.upsell_flow import load_flows
from ccbb.clickbank_jobs import JOB_NAME, job_id
from ccbb.settings import Settings
from store import clickbank as store_cb
from store import credits as store_credits
from store import users as store_users
from store.models import utcnow
from web import headers
from web.i18n import N_, Translated, current, day, ngettext, number
from web.i18n import money as i18n_money
from web.templating import render

log = logging.getLogger(__name__)

REFUSED_COUNTER = "ccbb:clickbank:ins-refused"
# where Billing's buttons come back (the credits' Billing page may include this one's parts)
BILLING_PAGE = "/billing/payments"

# every user-facing sentence of this module, in one place (translated when looked up)
TEXT = Translated(
    {
        "order_placed": N_("Your order is placed. One more offer before you go:"),
        "per_period": N_("per month, renewed until you cancel"),
        "consent": N_(
            "I understand this is a subscription: {price} is charged every month until I cancel, "
            "and I accept these recurring billing terms."
        ),
        "accept": N_("Add to my order"),
        "decline": N_("No thanks, skip this offer"),
        "no_offer": N_("This offer does not exist. Your order is complete."),
        "not_set_up": N_("Payments are not set up on this server yet."),
        "use_change": N_("You have a plan already: use 'Change to {name}' below to switch to it."),
        "unknown_plan": N_("There is no plan or pack called {sku}."),
        "not_for_sale": N_("{name} cannot be bought online."),
        "thanks": N_("Thank you for your purchase"),
        "bought": N_("You bought {name} (receipt {receipt})."),
        "waiting": N_("ClickBank is confirming your payment; this page updates by itself."),
        "credited": N_("{credits} credits added to your account."),
        "balance": N_("Your balance: {balance} credits."),
        "invited": N_("We sent {email} a link to set your password."),
        "to_dashboard": N_("Go to your dashboard"),
        "to_login": N_("Log in"),
        "invalid": N_("We could not confirm this purchase"),
        "invalid_detail": N_(
            "This link's proof of purchase (cbpop) does not check out, so nothing was added to "
            "any account. Use the link of ClickBank's confirmation page or e-mail, or write to us "
            "with your receipt number."
        ),
        "refund_filed": N_(
            "Your refund request for {receipt} was sent to ClickBank. Your credits for it are "
            "taken back when ClickBank confirms the refund."
        ),
        "refund_refused": N_(
            "Refunds are possible within 7 days of creating your account, or later if you never "
            "started a scan."
        ),
        "refund_twice": N_("A refund for {receipt} was already requested."),
        "not_yours": N_("This payment is not on your account."),
        "cancel_filed": N_("Your plan will not renew. It stays active until {end}."),
        "no_plan": N_("You have no plan that renews."),
        "change_filed": N_(
            "ClickBank is changing your plan to {name}; this page shows it once done."
        ),
        "welcome_title": N_("Set your password"),
        "welcome_intro": N_("Your purchase created an account. Choose a password to log in."),
        "welcome_invalid": N_(
            "This link is no longer valid: it was used or it expired. Use 'Log in' to reach your "
            "account, or ask us for a new link."
        ),
        "new_password": N_("New password"),
        "payments_title": N_("Plan and payments"),
        "plan_none": N_("You have no plan."),
        "plan_active": N_("Your plan: {name}, renews on {end}."),
        "plan_cancelled": N_("Your plan: {name}, does not renew; active until {end}."),
        "plan_ended": N_("Your plan ended."),
        "balance_line": N_("Credits: {balance}."),
        "cancel_button": N_("Cancel renewals"),
        "plans_title": N_("Plans"),
        "packs_title": N_("Credit packs"),
        "credits_month": N_("credits a month"),
        "per_month": N_("a month"),
        "current": N_("your plan"),
        "change_button": N_("Change to {name}"),
        "buy_plan": N_("Buy {name}"),
        "buy_pack": N_("Buy"),
        "history_title": N_("Payments"),
        "no_payments": N_("No payments yet."),
        "col_date": N_("Date"),
        "col_what": N_("What"),
        "col_receipt": N_("Receipt"),
        "col_amount": N_("Amount"),
        "col_credits": N_("Credits"),
        "refund_button": N_("Ask for a refund"),
        "refund_asked": N_("refund asked"),
        "refunded": N_("refunded"),
        "kind_SALE": N_("Purchase"),
        "kind_BILL": N_("Renewal"),
        "kind_RFND": N_("Refund"),
        "kind_CGBK": N_("Chargeback"),
        "kind_INSF": N_("Payment returned"),
        "set_password": N_("Set my password"),
        "period_end": N_("the end of the period"),
    }
)


def configured(settings: Settings) -> bool:
    return bool(settings.clickbank_vendor and settings.clickbank_secret)


# ---- POST /clickbank/ins ----------------------------------------------------------------


async def ins_endpoint(request: Request) -> Response:
    state = request.app.state
    settings: Settings = state.settings
    if not configured(settings):
        # 404 as for every feature not set up here (ClickBank retries any non-2xx answer:
        # nothing is lost while the operator sets the keys)
        log.error("ClickBank notification received but CCBB_CLICKBANK_VENDOR/SECRET_KEY unset")
        return PlainTextResponse("not configured", status_code=404)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > ins.MAX_BODY:
        return await _refused(request, "body too large")
    body = await request.body()
    try:
        n, raw = ins.read_notification(
            body, secret=settings.clickbank_secret, vendor=settings.clickbank_vendor
        )
    except ins.InsRefused as exc:
        return await _refused(request, str(exc))
    values: dict[str, Any] = {
        "key": n.key,
        "transaction_type": n.transaction_type,
        "receipt": n.receipt,
        "base_receipt": n.base_receipt,
        "role": n.role,
        "transaction_time": n.transaction_time,
        "raw": raw,
        "amount": n.total_account_amount,
        "currency": n.currency,
    }
    started = time.perf_counter()
    received = await state.ins_store.record(values)  # one statement, one commit: web.ins_store
    stored = time.perf_counter()
    if received.new or received.state in (store_cb.PENDING, store_cb.WAITING, store_cb.FAILED):
        await state.redis.enqueue_job(
            JOB_NAME,
            received.event_id,
            _job_id=job_id(received.event_id, n.key, received.deliveries),
        )
    queued = time.perf_counter()
    # where the answer's time went (the benchmark reads it; browsers' tools show it)
    timing = f"store;dur={(stored - started) * 1000:.2f}, queue;dur={(queued - stored) * 1000:.2f}"
    return PlainTextResponse("OK", headers={"Server-Timing": timing})


async def _refused(request: Request, reason: str) -> Response:
    await request.app.state.redis.incr(REFUSED_COUNTER)
    client = request.client.host if request.client else "?"
    log.warning("ClickBank notification refused from %s: %s", client, reason)
    return PlainTextResponse("not a ClickBank notification", status_code=400)


# ---- checkout: /billing/checkout/{sku} ---------------------------------------------------


def pay_link_for(settings: Settings, item: Any, reference: str) -> str:
    flows = load_flows()
    flow = next((f for f in flows.values() if item.sku in f.start), None)
    return links.pay_link(
        settings.clickbank_pay_base,
        vendor=settings.clickbank_vendor,
        item=item.clickbank_item,
        reference=reference,
        flow_id=flow.clickbank_flow_id if flow else None,
        skin=flow.skin if flow else None,
        tracking="billing",
    )


async def checkout(request: Request) -> Response:
    """A fresh single-purpose reference for this user and product, then ClickBank's order
    form (its pay link carries the reference back to us in the notification)."""
    from billing.catalogue import load_catalogue

    settings: Settings = request.app.state.settings
    sku = request.path_params["sku"]
    item = load_catalogue().get(sku)
    if item is None:
        return _billing_redirect(error=TEXT["unknown_plan"].format(sku=sku))
    if not configured(settings):
        return _billing_redirect(error=TEXT["not_set_up"])
    if not item.clickbank_item:
        return _billing_redirect(error=TEXT["not_for_sale"].format(name=item.name))
    async with request.app.state.sessions() as session:
        account = await store_credits.get_account(session, user_id=request.scope["user"].id)
    has_plan = account is not None and account.plan_status in ("active", "cancelled")
    if item.kind == "plan" and has_plan and account is not None and account.plan_sku:
        # a second subscription is not a change: ClickBank changes the one there is
        return _billing_redirect(message=TEXT["use_change"].format(name=item.name))
    reference = links.new_reference()
    async with request.app.state.sessions() as session:
        await store_cb.create_checkout(
            session, reference=reference, user_id=request.scope["user"].id, sku=sku
        )
    return RedirectResponse(pay_link_for(settings, item, reference), status_code=303)


def _billing_redirect(*, message: str | None = None, error: str | None = None) -> Response:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in (("message", message), ("error", error)) if v})
    return RedirectResponse(f"{BILLING_PAGE}{'?' + query if query else ''}", status_code=303)


# ---- the upsell pages -------------------------------------------------------------------


def item_name(item: Any) -> str:
    """What pages call a plan or a pack: a plan by its name (Starter, Pro…, the same in every
    language), a pack by its credits in the page's language (the catalogue's English name,
    "10 scan credits", is what the API and ClickBank show)."""
    if item.kind == "pack":
        return ngettext("%(n)s scan credit", "%(n)s scan credits", item.credits) % {
            "n": number(item.credits)
        }
    return str(item.name)


def money(amount: Decimal, currency: str) -> str:
    """An amount as the page's language writes it (``$19.00``, ``19,00 $``)."""
    return i18n_money(amount) if currency == "USD" else f"{number(amount)} {currency}"


async def upsell_page(request: Request) -> Response:
    """One offer of a flow: one product, its price in plain sight, "Add to my order" (a GET
    form to ClickBank's pay link: cbskin before cbur, cbf passed through; a subscription's
    consent box is required by the browser itself, no script) with the decline link beside."""
    from billing.catalogue import load_catalogue

    settings: Settings = request.app.state.settings
    flow = load_flows().get(request.path_params["flow"])
    offer = flow.offer(request.path_params["step"]) if flow else None
    product = load_catalogue().get(offer.sku) if offer else None
    if flow is None or offer is None or product is None or not product.clickbank_item:
        return render(request, "clickbank_thank_you.html",
                      {"heading": TEXT["no_offer"], "lines": [], "credits": None}, 404)  # fmt: skip
    cbf = request.query_params.get("cbf", "")
    item = product.clickbank_item
    accept = links.upsell_params(item=item, accept=True, cbf=cbf, skin=flow.skin)
    decline = links.upsell_link(
        settings.clickbank_pay_base, vendor=settings.clickbank_vendor, item=item,
        accept=False, cbf=cbf, skin=flow.skin,
    )  # fmt: skip
    pay_base = links.pay_base(settings.clickbank_pay_base, settings.clickbank_vendor)
    context = {
        "offer": offer,
        "product": product,
        "product_name": item_name(product),
        "words": dict(zip(("headline", "text"), offer.words(current()), strict=True)),
        "price": money(product.price, product.currency),
        "pay_base": pay_base,
        "accept_params": accept,
        "decline_url": decline,
        "text": TEXT,
    }
    # the accept button is a form to ClickBank's order form: the default policy's
    # "form-action 'self'" would make the browser refuse to send it
    policy = headers.csp(form_targets=links.form_origins(pay_base))
    return render(
        request, "clickbank_upsell.html", context, headers={"Content-Security-Policy": policy}
    )


# ---- the thank-you page ------------------------------------------------------------------


async def thank_you(request: Request) -> Response:
    from billing.catalogue import load_catalogue

    settings: Settings = request.app.state.settings
    params = {k: v for k, v in request.query_params.items()}
    if not configured(settings) or not links.cbpop_valid(settings.clickbank_secret, params):
        bad: dict[str, Any] = {
            "heading": TEXT["invalid"], "lines": [TEXT["invalid_detail"]], "credits": None,
            "state": "invalid",
        }  # fmt: skip
        return render(request, "clickbank_thank_you.html", bad, 400)
    receipt = params["cbreceipt"]
    product = load_catalogue().by_clickbank_item(params["item"])
    name = item_name(product) if product else f"item {params['item']}"
    lines = [TEXT["bought"].format(name=name, receipt=receipt)]
    async with request.app.state.sessions() as session:
        event = await store_cb.sale_event(session, receipt=receipt)
        user = request.scope.get("user")
        done = event is not None and event.state == store_cb.DONE
        ctx: dict[str, Any] = {"heading": TEXT["thanks"], "credits": None, "refresh": None}
        if not done:
            lines.append(TEXT["waiting"])
            ctx.update(state="waiting", refresh=3)
        else:
            assert event is not None
            ctx.update(state="done", credits=event.credits or 0)
            ctx["credits_text"] = TEXT["credited"].format(credits=number(event.credits or 0))
            if user is not None and user.id == event.user_id:
                balance = await store_credits.balance(session, user_id=user.id)
                lines.append(TEXT["balance"].format(balance=number(balance)))
                ctx["link"] = {"href": "/", "text": TEXT["to_dashboard"]}
            else:
                ctx["link"] = {"href": "/login", "text": TEXT["to_login"]}
    ctx["lines"] = lines
    return render(request, "clickbank_thank_you.html", ctx)


# ---- the invitation (an account made by a notification) ------------------------------------


async def welcome(request: Request) -> Response:
    from web.auth import hash_password, password_problem

    found = invitations.read_token(request.app.state.signing_secret, request.path_params["token"])
    async with request.app.state.sessions() as session:
        user = await store_users.get_user(session, user_id=found[0]) if found else None
        valid = user is not None and found is not None and user.password_hash[-16:] == found[1]
        if not valid or request.method == "GET":
            return render(request, "clickbank_welcome.html", {"valid": valid, "text": TEXT})
        assert user is not None
        form = await request.form()
        password = str(form.get("password", ""))
        if problem := password_problem(password):
            ctx = {"valid": True, "text": TEXT, "problem": problem}
            return render(request, "clickbank_welcome.html", ctx, 400)
        user.password_hash = hash_password(password)
        session.add(user)
        await session.commit()
    return RedirectResponse("/login?welcome=1", status_code=303)


# ---- Billing's buttons: refund, cancel, change plan -----------------------------------------


def _api(settings: Settings) -> ClickbankApi:
    key = settings.clickbank_api_key
    return ClickbankApi(settings.clickbank_api_base, key.get_secret_value() if key else "")


async def refund(request: Request) -> Response:
    user = request.scope["user"]
    form = await request.form()
    receipt = str(form.get("receipt", "")).strip()
    async with request.app.state.sessions() as session:
        payment = await store_cb.payment_event(session, receipt=receipt)
        if payment is None or payment.user_id != user.id:
            return _billing_redirect(error=TEXT["not_yours"])
        fresh = await store_users.get_user(session, user_id=user.id)  # not a cached copy
        started = await store_cb.scan_ever_started(session, user_id=user.id)
        created = fresh.created_at if fresh else user.created_at
        if not refund_allowed(account_created=created, now=utcnow(), scan_started=started):
            return _billing_redirect(error=TEXT["refund_refused"])
        if await store_cb.get_ticket(session, receipt=receipt, kind="refund") is not None:
            return _billing_redirect(error=TEXT["refund_twice"].format(receipt=receipt))
        try:
            answer = await _api(request.app.state.settings).refund(
                receipt, comment="Refund asked from the Billing page"
            )
        except ClickbankApiError as exc:
            return _billing_redirect(error=str(exc))
        await store_cb.add_ticket(
            session, user_id=user.id, receipt=receipt, kind="refund",
            ticket_id=ticket_id(answer),
        )  # fmt: skip
    return _billing_redirect(message=TEXT["refund_filed"].format(receipt=receipt))


async def _plan_order(session: Any, user_id: int) -> store_cb.ClickbankEvent | None:
    """The first payment of the user's current plan (the order its renewals belong to)."""
    from billing.catalogue import load_catalogue

    account = await store_credits.get_account(session, user_id=user_id)
    if account is None or not account.plan_sku or account.plan_status != "active":
        return None
    plans = [p.sku for p in load_catalogue().plans]
    return await store_cb.plan_order(session, user_id=user_id, plan_skus=plans)


async def cancel(request: Request) -> Response:
    user = request.scope["user"]
    async with request.app.state.sessions() as session:
        order = await _plan_order(session, user.id)
        account = await store_credits.get_account(session, user_id=user.id)
        if order is None or account is None or not account.renews:
            return _billing_redirect(error=TEXT["no_plan"])
        try:
            answer = await _api(request.app.state.settings).cancel(
                order.base_receipt, comment="Cancelled from the Billing page"
            )
        except ClickbankApiError as exc:
            return _billing_redirect(error=str(exc))
        await store_cb.add_ticket(
            session, user_id=user.id, receipt=order.base_receipt,
            kind=f"cancel-{order.transaction_time:%Y%m%d%H%M%S}",
            ticket_id=ticket_id(answer),
        )  # fmt: skip
        end = getattr(account, "plan_period_end", None)
    return _billing_redirect(
        message=TEXT["cancel_filed"].format(end=day(end) if end else TEXT["period_end"])
    )


async def change_plan(request: Request) -> Response:
    from billing.catalogue import load_catalogue

    user = request.scope["user"]
    catalogue = load_catalogue()
    new = catalogue.get(request.path_params["sku"])
    if new is None or new.kind != "plan" or not new.clickbank_item:
        return _billing_redirect(error=TEXT["unknown_plan"].format(sku=request.path_params["sku"]))
    async with request.app.state.sessions() as session:
        order = await _plan_order(session, user.id)
        if order is None or order.sku is None:
            return await checkout(request)  # no plan yet: buying one is the change
        old = catalogue.get(order.sku)
        if old is None or not old.clickbank_item:
            return _billing_redirect(error=TEXT["no_plan"])
        try:
            await _api(request.app.state.settings).change_product(
                order.base_receipt, old_item=old.clickbank_item, new_item=new.clickbank_item
            )
        except ClickbankApiError as exc:
            return _billing_redirect(error=str(exc))
    return _billing_redirect(message=TEXT["change_filed"].format(name=new.name))


async def payments_page(request: Request) -> Response:
    """The user's plan (cancel, change), what they can buy, and their payments (refund, when
    the rule allows)."""
    from billing.catalogue import load_catalogue

    user = request.scope["user"]
    catalogue = load_catalogue()
    async with request.app.state.sessions() as session:
        account = await store_credits.get_account(session, user_id=user.id)
        balance = await store_credits.balance(session, user_id=user.id)
        events = await store_cb.payments_of(session, user_id=user.id)
        tickets = {t.receipt for t in await store_cb.tickets_of(session, user_id=user.id)
                   if t.kind == "refund"}  # fmt: skip
        started = await store_cb.scan_ever_started(session, user_id=user.id)
        fresh = await store_users.get_user(session, user_id=user.id)
    created = fresh.created_at if fresh else user.created_at
    refundable = refund_allowed(account_created=created, now=utcnow(), scan_started=started)
    reversed_ = {e.receipt for e in events if e.transaction_type in ("RFND", "CGBK", "INSF")}
    sku = account.plan_sku if account else None
    plan = catalogue.get(sku) if sku else None
    end = day(account.period_end) if account and account.period_end else "?"
    status = account.plan_status if account else "none"
    if plan is not None and status == "active":
        plan_line = TEXT["plan_active"].format(name=plan.name, end=end)
    elif plan is not None and status == "cancelled":
        plan_line = TEXT["plan_cancelled"].format(name=plan.name, end=end)
    else:
        plan_line = TEXT["plan_ended" if status == "ended" else "plan_none"]
    payments = []
    for e in events:
        product = catalogue.get(e.sku) if e.sku else None
        paid = e.transaction_type in ("SALE", "BILL")
        note = ""
        if e.receipt in tickets and e.receipt not in reversed_ and paid:
            note = TEXT["refund_asked"]
        elif e.receipt in reversed_ and paid:
            note = TEXT["refunded"]
        payments.append({
            "receipt": e.receipt, "type": e.transaction_type,
            "date": day(e.transaction_time),
            "what": f"{TEXT.get('kind_' + e.transaction_type, e.transaction_type)}"
                    f"{': ' + item_name(product) if product else ''}",
            "amount": money(e.amount, e.currency or "USD") if e.amount is not None else "",
            "credits": number(e.credits) if e.credits is not None else "…",
            "can_refund": paid and refundable and not note and e.state == store_cb.DONE,
            "note": note,
        })  # fmt: skip
    plans = [{"sku": p.sku, "name": p.name, "credits": p.credits, "current": p.sku == sku
              and status in ("active", "cancelled"), "price_text": money(p.price, p.currency)}
             for p in catalogue.plans]  # fmt: skip
    packs = [{"sku": p.sku, "name": item_name(p), "price_text": money(p.price, p.currency)}
             for p in catalogue.packs]  # fmt: skip
    context = {
        "text": TEXT, "plan_line": plan_line, "balance": balance, "plans": plans,
        "packs": packs, "payments": payments, "refundable": refundable,
        "has_plan": plan is not None and status in ("active", "cancelled"),
        "account_renews": bool(account and account.renews and status == "active"),
        "message": request.query_params.get("message"), "error": request.query_params.get("error"),
    }  # fmt: skip
    return render(request, "clickbank_payments.html", context)


PUBLIC_PATHS = ("/clickbank/",)

routes = [
    Route("/clickbank/ins", ins_endpoint, methods=["POST"]),
    Route("/clickbank/thank-you", thank_you),
    Route("/clickbank/upsell/{flow}/{step}", upsell_page),
    Route("/clickbank/welcome/{token}", welcome, methods=["GET", "POST"]),
    Route("/billing/payments", payments_page),
    Route("/billing/refund", refund, methods=["POST"]),
    Route("/billing/cancel", cancel, methods=["POST"]),
    Route("/billing/change/{sku}", change_plan, methods=["POST"]),
]
