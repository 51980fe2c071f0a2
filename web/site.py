"""The public site: home, pricing, FAQ, terms, refunds, privacy, affiliate terms. Server-rendered
pages readable without JavaScript, in English and French (web.i18n). ``/`` is the home page
for a visitor and the dashboard for a logged-in user."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from web import scans
from web.charts import donut
from web.i18n import N_, _, number, share, status_word
from web.templating import render

REFUND_DAYS = 7
# the affiliate program (FAQ): what the affiliate terms page promises
COMMISSION_PERCENT = 30
COOKIE_DAYS = 90
PAYOUT_THRESHOLD = Decimal("50")  # paid on the 10th and the 25th (the pages say so)
TERMS_UPDATED = date(2026, 12, 1)  # of the terms and the privacy policy

# the sample report of the home page: what a scan of a small affiliate blog finds
SAMPLE_COUNTS = {"available": 171, "removed": 12, "out_of_stock": 9, "error": 2}
SAMPLE_COLORS = ("#16a34a", "#dc2626", "#d97706", "#64748b")
SAMPLE_ROWS = (
    ("Anker PowerCore 10000", "B0194WDVHI", "removed", "", "https://amzn.to/3xYz9Qp", 14),
    # the stock as Amazon's API states it, in the page's language (amazon.fr speaks French)
    ("Logitech MX Master 3S", "B09HM94VDS", "out_of_stock", N_("Currently unavailable."),
     "https://monblog.fr/go/mx-master", 6),
    ("Kindle Paperwhite", "B08KTZ8249", "available", N_("In Stock"),
     "https://www.amazon.fr/dp/B08KTZ8249?tag=monblog-21", 3),
)  # fmt: skip


def plans(request: Request) -> list[Any]:
    """The plans on sale (the plans catalogue the app loaded: billing.catalogue); none while
    credits are off: the pricing page then says plans are coming."""
    settings = request.app.state.settings
    catalogue = getattr(request.app.state, "catalogue", None)
    if catalogue is None or not getattr(settings, "credits_enabled", True):
        return []
    return list(catalogue.plans)


def _ctx() -> dict[str, object]:
    return {
        "refund_days": REFUND_DAYS,
        "commission_percent": COMMISSION_PERCENT,
        "cookie_days": COOKIE_DAYS,
        "payout_threshold": PAYOUT_THRESHOLD,
        "updated": TERMS_UPDATED,
    }


async def home(request: Request) -> Response:
    if request.scope.get("user") is not None:
        return await scans.dashboard(request)
    total = sum(SAMPLE_COUNTS.values())
    counts = {status_word(k): v for k, v in SAMPLE_COUNTS.items()}
    chart = donut(
        counts,
        SAMPLE_COLORS,
        title=_("Products by status"),
        units=(_("product"), _("products")),
        legend=share,
        number=number,
    )
    sample = {
        "urls_scanned": 1719,
        "total_products": total,
        "total_links": 2304,
        "unique_links": 486,
        "chart": chart,
        "rows": [
            {"name": n, "asin": a, "status": s, "stock": _(st) if st else "", "href": h, "pages": p}
            for n, a, s, st, h, p in SAMPLE_ROWS
        ],
    }
    return render(request, "site/home.html", {**_ctx(), "sample": sample})


async def pricing(request: Request) -> Response:
    return render(request, "site/pricing.html", {**_ctx(), "plans": plans(request)})


async def faq(request: Request) -> Response:
    return render(request, "site/faq.html", _ctx())


async def terms(request: Request) -> Response:
    return render(request, "site/terms.html", _ctx())


async def refunds(request: Request) -> Response:
    return render(request, "site/refunds.html", _ctx())


async def privacy(request: Request) -> Response:
    return render(request, "site/privacy.html", _ctx())


async def affiliate_terms(request: Request) -> Response:
    return render(request, "site/affiliate_terms.html", _ctx())


# the public pages, in the order of the footer (path, title for the links)
PAGES = (
    ("/pricing", N_("Pricing")),
    ("/faq", N_("FAQ")),
    ("/terms", N_("Terms of service")),
    ("/refunds", N_("Refund policy")),
    ("/privacy", N_("Privacy")),
    ("/affiliate-terms", N_("Affiliate program")),
)
PUBLIC_PAGES = frozenset({"/", *(path for path, _title in PAGES)})

routes = [
    Route("/", home),
    Route("/pricing", pricing),
    Route("/faq", faq),
    Route("/terms", terms),
    Route("/refunds", refunds),
    Route("/privacy", privacy),
    Route("/affiliate-terms", affiliate_terms),
]
