"""The mails of a ClickBank purchase, in the buyer's language: the payment receipt (one per
payment: a sale or a rebill) and the invitation to set a password (a buyer without an account
got one made by the purchase). Each function returns the subject, the text part and the HTML
part (:class:`notify.messages.Parts`); links are absolute, made from ``CCBB_PUBLIC_URL``.

Their sentences are in the web app's catalogue (``web/locale``, French in ``fr``), translated
for the ``locale`` given (``web.i18n.speaking``), whatever language the caller runs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html import escape

from notify.messages import PRODUCT, Parts
from web import i18n
from web.i18n import _


def language_of(user_locale: str | None, order_language: str | None) -> str:
    """The account's language, else the one the buyer used on ClickBank's order form
    (``orderLanguage``: ``EN``, ``FR``…), else English."""
    return i18n.known(user_locale) or i18n.known((order_language or "").lower()) or i18n.DEFAULT


@dataclass(frozen=True, slots=True)
class Line:
    """One product of the payment, as the catalogue sells it."""

    name: str
    price: Decimal  # the catalogue's price (USD), times the quantity
    credits: int


def _page(paragraphs: list[str], link: tuple[str, str] | None = None) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if link:
        body += f'<p><a href="{escape(link[1])}">{escape(link[0])}</a></p>'
    return (
        '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.4">'
        f'{body}<p style="color: #666">— {PRODUCT}</p></body></html>'
    )


def receipt(
    *,
    locale: str | None,
    receipt_no: str,
    renewal: bool,
    when: datetime,
    lines: list[Line],
    balance: int,
    plan_until: datetime | None,
    billing_link: str,
) -> Parts:
    with i18n.speaking(locale):
        names = ", ".join(line.name for line in lines)
        subject = (
            _("Your %(product)s receipt: %(what)s") % {"product": PRODUCT, "what": names}
            if not renewal
            else _("Your %(product)s renewal receipt: %(what)s")
            % {"product": PRODUCT, "what": names}
        )
        intro = _("Thank you for your payment.") if not renewal else _("Your plan was renewed.")
        facts = [
            _("Receipt: %(receipt)s (ClickBank), %(day)s")
            % {"receipt": receipt_no, "day": i18n.day(when)},
        ]
        items = [
            _("%(name)s — %(price)s — %(credits)s scan credits")
            % {"name": line.name, "price": i18n.money(line.price), "credits": line.credits}
            for line in lines
        ]
        after = [_("Your balance now: %(balance)s credits.") % {"balance": i18n.number(balance)}]
        if plan_until is not None:
            after.append(_("Your plan runs until %(day)s.") % {"day": i18n.day(plan_until)})
        statement = _(
            "ClickBank, our retailer, took the payment: it appears on your statement as "
            "CLKBANK*COM, and ClickBank sends its own receipt too."
        )
        refunds = _(
            "Refunds: within 7 days of creating your account, or later if you never started a "
            "scan, from the Billing page."
        )
        link_text = _("Your plan and payments")
        text = "\n".join(
            [intro, "", *facts, "", *(f"- {i}" for i in items), "", *after, "", statement,
             refunds, "", _("Your plan and payments: %(link)s") % {"link": billing_link}, ""]
        )  # fmt: skip
        html = _page(
            [escape(intro), *map(escape, facts),
             "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>",
             *map(escape, after), escape(statement), escape(refunds)],
            (link_text, billing_link),
        )  # fmt: skip
        return Parts(subject, text, html)


def invitation(*, locale: str | None, link: str, days: int) -> Parts:
    with i18n.speaking(locale):
        intro = _(
            "Your ClickBank purchase made you an account at %(product)s, under this address."
        ) % {"product": PRODUCT}
        how = _(
            "Choose your password to log in and use your credits (the link works once, within "
            "%(days)s days):"
        ) % {"days": days}
        later = _("Once it has expired, use 'Forgot your password?' on the login page.")
        link_text = _("Set my password")
        return Parts(
            _("Set your %(product)s password") % {"product": PRODUCT},
            f"{intro}\n\n{how}\n\n{link}\n\n{later}\n",
            _page([escape(intro), escape(how), escape(later)], (link_text, link)),
        )
