"""What plans and credits say to people, in plain English, in one place: form and API messages,
the ledger's comments, the Billing page's words. Each is marked with ``N_()`` for the catalogue
(``pybabel extract``, see README "Languages"); the JSON API, the CLI and the ledger keep them in
English, pages show them in their language (``web.engine_messages`` recognises a stored or raised
one by its ``{placeholders}``, ``web.billing`` translates the page's words)."""

from __future__ import annotations

from ccbb.marks import N_

NO_CREDITS = N_(
    "You have no scan credits left: buy a plan or a credit pack on the Billing page, then "
    "start the scan again."
)
NO_CREDITS_LINK = N_("Go to Billing")
TOO_MANY_ACTIVE = N_(
    "You already have {active} scans queued or running (at most {cap} at once): wait for one "
    "to finish (or cancel one), then start this one."
)
INSUFFICIENT = N_(
    "Not enough scan credits: {balance} left, {needed} needed. Buy credits or a plan on the "
    "Billing page."
)
CHECKOUT_NOT_CONFIGURED = N_(
    "Checkout is not configured on this server yet. Ask the operator to add credits to your "
    "account, or come back later."
)
UNKNOWN_SKU = N_("There is no plan or pack “{sku}”: choose one on the Billing page.")

# ledger comments (stored in English; the Billing history shows them in its language)
SCAN_SPENT = N_("Scan #{scan_id} of {site}")
SCAN_REFUND = N_("Refund: scan #{scan_id} of {site} {why}")
REFUND_CANCELLED = N_("cancelled before it started")
REFUND_FAILED = N_("failed before checking any product")
SIGNUP_CREDITS = N_("Welcome credits")
DEMO_CREDITS = N_("Demo credits")
ADMIN_GRANT = N_("Added by support")
ADMIN_REVOKE = N_("Removed by support")
CONSUMED = N_("Used through the API")

# the Billing page
PLAN_NONE = N_("No plan")
PLAN_STATUS = {
    "none": "",
    "active": N_("renews on {date}"),
    "cancelled": N_("cancelled: ends on {date}"),
    "ended": N_("ended on {date}"),
    "past_due": N_("payment due since {date}"),
}
NEXT_CREDITS = N_("{credits} credits on {date}, when your {plan} plan renews")
NO_NEXT_CREDITS = N_("No credits are due: buy a plan for monthly credits, or a pack.")
BUY = N_("Buy")
CHANGE = N_("Change to this plan")
CURRENT = N_("Your plan")
