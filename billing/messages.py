"""What plans and credits say to people, in plain English, in one place (for translation
later): form and API messages, the ledger's comments, the Billing page's words."""

from __future__ import annotations

NO_CREDITS = (
    "You have no scan credits left: buy a plan or a credit pack on the Billing page, then "
    "start the scan again."
)
NO_CREDITS_LINK = "Go to Billing"
TOO_MANY_ACTIVE = (
    "You already have {active} scans queued or running (at most {cap} at once): wait for one "
    "to finish (or cancel one), then start this one."
)
INSUFFICIENT = (
    "Not enough scan credits: {balance} left, {needed} needed. Buy credits or a plan on the "
    "Billing page."
)
CHECKOUT_NOT_CONFIGURED = (
    "Checkout is not configured on this server yet. Ask the operator to add credits to your "
    "account, or come back later."
)
UNKNOWN_SKU = "There is no plan or pack “{sku}”: choose one on the Billing page."

# ledger comments (the Billing history shows them as they are)
SCAN_SPENT = "Scan #{scan_id} of {site}"
SCAN_REFUND = "Refund: scan #{scan_id} of {site} {why}"
REFUND_CANCELLED = "cancelled before it started"
REFUND_FAILED = "failed before checking any product"
SIGNUP_CREDITS = "Welcome credits"
DEMO_CREDITS = "Demo credits"
ADMIN_GRANT = "Added by support"
ADMIN_REVOKE = "Removed by support"
CONSUMED = "Used through the API"

# the Billing page
PLAN_NONE = "No plan"
PLAN_STATUS = {
    "none": "",
    "active": "renews on {date}",
    "cancelled": "cancelled: ends on {date}",
    "ended": "ended on {date}",
    "past_due": "payment due since {date}",
}
NEXT_CREDITS = "{credits} credits on {date}, when your {plan} plan renews"
NO_NEXT_CREDITS = "No credits are due: buy a plan for monthly credits, or a pack."
BUY = "Buy"
CHANGE = "Change to this plan"
CURRENT = "Your plan"
