"""The mails a processed ClickBank notification sends, queued in the outbox (``notify.email``:
a background job sends them, with retries):

- a **receipt** for each payment (a SALE or a BILL) tied to an account, made from the stored
  event, in the account's language (else the order form's). Its outbox key is the event's own
  idempotency key, so a notification delivered twice, or processed twice (a job run again
  after a crash between the commit and the queueing), is one mail;
- the **invitation** to set a password, for a buyer whose account the purchase made (keyed on
  the account: one invitation per account).

Without an SMTP server (``CCBB_SMTP_HOST`` unset) receipts are not sent and the invitation link
goes to the console log, as before e-mail existed.
"""

from __future__ import annotations

import logging
from typing import Any

from billing import clickbank_effects as fx
from billing import clickbank_ins as ins
from billing import invitations
from billing.catalogue import Catalogue
from notify import payment_mails
from notify.email import Mail, mail_enabled, queue_mail
from store import clickbank as store_cb
from store import credits as store_credits
from store import users as store_users

log = logging.getLogger(__name__)

BILLING_PATH = "/billing/payments"  # the dashboard's plan-and-payments page (web.clickbank)


def receipt_key(event_key: str) -> str:
    return f"receipt:{event_key}"[:200]


async def queue_receipt(ctx: dict[str, Any], event_id: int, catalogue: Catalogue) -> bool:
    """Queue the receipt of event ``event_id`` if it is a processed payment of an account;
    True when a new mail was queued (False: not a payment, or its receipt was queued before)."""
    settings = ctx["settings"]
    if not mail_enabled(settings):
        return False
    async with ctx["sessions"]() as session:
        event = await store_cb.get_event(session, event_id=event_id)
        if (
            event is None
            or event.state != store_cb.DONE
            or event.transaction_type not in fx.PAYMENTS
            or event.user_id is None
        ):
            return False
        user = await store_users.get_user(session, user_id=event.user_id)
        if user is None or user.id is None:
            return False
        n = ins.parse(ins.loads(event.raw), vendor=settings.clickbank_vendor)
        lines = []
        plan = False
        for line in n.line_items:
            item = catalogue.by_clickbank_item(line.item_no)
            if item is None:
                continue
            quantity = max(line.quantity, 1)
            lines.append(
                payment_mails.Line(item.name, item.price * quantity, item.credits * quantity)
            )
            plan = plan or item.kind == "plan"
        if not lines:
            return False
        balance = await store_credits.balance(session, user_id=user.id)
        account = await store_credits.get_account(session, user_id=user.id) if plan else None
        await session.commit()
    parts = payment_mails.receipt(
        locale=payment_mails.language_of(user.locale, n.order_language),
        receipt_no=n.receipt,
        renewal=n.transaction_type == ins.BILL,
        when=n.transaction_time,
        lines=lines,
        balance=balance,
        plan_until=account.period_end if account is not None else None,
        billing_link=settings.public_url.rstrip("/") + BILLING_PATH,
    )
    mail = Mail(receipt_key(event.key), user.email, parts.subject, parts.text, parts.html)
    return await queue_mail(ctx["sessions"], ctx["redis"], mail)


async def queue_invitation(
    ctx: dict[str, Any], *, user_id: int, email: str, link: str, order_language: str | None
) -> bool:
    """Queue the invitation of the account ``user_id`` (once per account)."""
    if not mail_enabled(ctx["settings"]):
        invitations.send_invitation(email=email, link=link)  # the console, without SMTP
        return False
    parts = payment_mails.invitation(
        locale=payment_mails.language_of(None, order_language),
        link=link,
        days=invitations.MAX_AGE // 86400,
    )
    mail = Mail(f"invite:{user_id}", email, parts.subject, parts.text, parts.html)
    return await queue_mail(ctx["sessions"], ctx["redis"], mail)
