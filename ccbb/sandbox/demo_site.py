"""A deterministic fake affiliate website, and a local server for it.

:func:`generate_site` builds, in memory and from a seed, a WordPress-like
review site at ``http://<host>/``: a home page, an about page, category pages
and article pages (some only reachable through the sitemaps), with Amazon
affiliate links of every shape the scanner must understand (DESIGN §3),
decoys it must ignore, ``robots.txt``, nested and gzipped sitemaps, canonical
duplicates, redirects, a 404, a 500 and non-HTML assets. It also builds the
catalogue the sandbox Amazon API serves for its products, and the ground truth
of a scan (:class:`Expected`), counted from the link specs the generator put
in the pages, never by parsing them back.

:func:`create_app` serves a :class:`DemoSite` from pre-rendered bytes, routed by
path, and by ``Host`` for the short-link hosts (``amzn.to``, ``amzn.eu``,
``a.co``), so one local port plays the site and the link shorteners: a client
reaches it through curl-like ``--connect-to HOST:PORT:HOST2:PORT2`` mappings
(:attr:`RunningSite.connect_to`).

``python -m ccbb.sandbox.demo_site --pages N --page-bytes B --port P`` serves a
generated site until killed and prints its URL when ready.

Link shapes (``LinkSpec.shape``): ``dp``, ``dp_fragment`` (``#...``),
``dp_amp`` (``&amp;``), ``dp_wp038`` (``&#038;``), ``dp_region`` (a bare
``&region=``), ``slug``, ``slug_ref``, ``slug_pct`` and ``slug_utf8`` (non-English
slugs), ``gp_product``, ``sitestripe`` (``creativeASIN=``), ``dp_product``,
``gp_aw_d``, ``obidos`` (tag in the path), ``o_asin``, ``paapi`` (an old Product
Advertising API detail-page URL, its query percent-encoded into the path, the tag
inside), ``customer_reviews`` (``/gp/product/customer-reviews/``), ``obidos_detail``
(``/exec/obidos/tg/detail/-/``), ``offer_listing``,
``product_reviews``, ``cart_add`` (``ASIN.1=``), ``query_asin`` (``asin=``),
``upper_host`` (``WWW.AMAZON.COM/DP/``), ``protocol_relative``, ``smile``,
``apex`` (``amazon.com``), ``lowercase_asin``, ``area`` (``<area href>``),
``short`` (``amzn.to``/``amzn.eu``), ``short_aco`` (``a.co/d/``), ``short_chain``
(amzn.to -> a.co -> Amazon), ``cloaked`` / ``cloaked_root`` /
``cloaked_relative`` (one ``/go/`` link spelt three ways), ``cloaked_to_short``
(``/go/`` -> amzn.to -> Amazon), ``recommends`` (a same-site 301 outside
``/go/``), ``cloaked_refresh`` (a ``/go/`` page answering 200 with an immediate
``<meta http-equiv="refresh">`` to Amazon, as static sites cloak), ``refresh_out``
(an ``/out/`` page, outside the cloaking prefix, refreshing and
``location.replace``-ing to an amzn.to link, with a "click here" link),
``widget`` / ``widget_amp`` / ``widget_multi`` (ws-na/ws-eu iframes, the last
one with three ASINs), ``rcm`` and ``rcm_legacy`` (``/e/cm?t=`` iframes).
Marketplaces: www.amazon.com, www.amazon.co.uk, www.amazon.de.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

__all__ = [
    "SHORT_HOSTS",
    "STATUSES",
    "DemoSite",
    "Expected",
    "LinkSpec",
    "Product",
    "Resource",
    "RunningSite",
    "create_app",
    "generate_site",
    "main",
    "running_site",
]

STATUSES: tuple[str, ...] = ("available", "removed", "out_of_stock", "error")
SHORT_HOSTS: tuple[str, ...] = ("amzn.to", "amzn.eu", "a.co")
OTHER_TAG = "other-20"
US = "www.amazon.com"
UK = "www.amazon.co.uk"
DE = "www.amazon.de"

HTML = "text/html; charset=utf-8"
XML = "application/xml; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

# Where the special pages live (paths of the site).
PRIVATE_PATH = "/private/deals/"
NOT_FOUND_PATH = "/old-deals-2019/"
STALE_PATH = "/stale-post/"
ERROR_PATH = "/broken-page/"
OLD_REDIRECT_PATH = "/2019/05/old-post/"
PDF_PATH = "/wp-content/uploads/media-kit.pdf"
IMAGE_PATH = "/wp-content/uploads/2023/05/hero.jpg"
FEED_PATH = "/feed/"
CLOAK_PREFIX = "/go/"
RECOMMENDS_PREFIX = "/recommends/"
REFRESH_PREFIX = "/out/"  # static redirect pages outside the cloaking prefix
POSTS_PER_SITEMAP = 1000


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class _Market:
    domain: str  # "amazon.com"
    code: str  # widget MarketPlace= / region=
    adsystem: str  # "na" | "eu"
    rcm_o: str  # rcm widgets' o=
    language: str
    short_host: str
    short_prefix: str  # path before the code on the short host


_MARKETS: dict[str, _Market] = {
    US: _Market("amazon.com", "US", "na", "1", "en_US", "amzn.to", "/"),
    UK: _Market("amazon.co.uk", "GB", "eu", "2", "en_GB", "amzn.eu", "/d/"),
    DE: _Market("amazon.de", "DE", "eu", "3", "de_DE", "amzn.eu", "/d/"),
}

# What the sandbox API answers for an ASIN ("offer") -> the status a scan
# with credentials for that marketplace must report (DESIGN §2).
_OFFER_STATUS: dict[str, str] = {
    "IN_STOCK": "available",
    "IN_STOCK_SCARCE": "available",
    "PREORDER": "available",
    "LEADTIME": "available",
    "AVAILABLE_DATE": "available",
    "OUT_OF_STOCK": "out_of_stock",
    "UNAVAILABLE": "out_of_stock",
    "NONE": "out_of_stock",  # an item without any offer listing
    "UNKNOWN": "error",
    "ERR_NOT_ACCESSIBLE": "error",
    "ABSENT": "removed",  # not in the catalogue at all
    "ERR_NOT_FOUND": "removed",
}

_OFFER_MESSAGE: dict[str, str] = {
    "IN_STOCK": "In Stock",
    "IN_STOCK_SCARCE": "Only 3 left in stock - order soon.",
    "PREORDER": "This title will be released on September 1, 2026.",
    "LEADTIME": "Usually ships within 2 to 3 weeks.",
    "AVAILABLE_DATE": "This item will be released on October 15, 2026.",
    "OUT_OF_STOCK": "Currently unavailable.",
    "UNAVAILABLE": "We don't know when or if this item will be back in stock.",
    "UNKNOWN": "",
}


@dataclass(frozen=True, slots=True)
class Product:
    """One (marketplace, ASIN) of the site and what the sandbox API says of it."""

    marketplace: str
    asin: str
    title: str
    offer: str  # a key of _OFFER_STATUS
    price: float
    status: str  # what a scan with US-only credentials must report

    @property
    def key(self) -> tuple[str, str]:
        return (self.marketplace, self.asin)


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One Amazon affiliate link as the generator writes it into pages.

    ``href`` is the attribute value exactly as written in the HTML (entities
    and all); ``url`` is the absolute URL a browser makes of it (relative
    reference resolved, entities decoded, host lower-cased, fragment dropped):
    the key of "unique links". ``amazon_url`` is the Amazon URL the link leads
    to (itself for direct links and widgets, the end of the redirects for short
    and cloaked links); ``tag`` is the associate tag the tag audit sees.
    """

    shape: str
    element: str  # "a" | "area" | "iframe"
    href: str
    url: str
    amazon_url: str
    products: tuple[tuple[str, str], ...]
    tag: str | None


@dataclass(frozen=True, slots=True)
class Resource:
    """A pre-rendered answer of the server."""

    status: int
    headers: Mapping[str, str]
    parts: tuple[bytes, ...]

    @property
    def body(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


@dataclass(frozen=True)
class Expected:
    """The ground truth of a complete scan of the site (DESIGN §1 definitions).

    Counted from the link specs the generator rendered, for a scan with the
    site's partner tag and credentials for ``www.amazon.com`` only (products of
    other marketplaces are ``error``):

    - ``scanned_pages``: canonical URLs of the HTML pages answering 200 that
      robots.txt allows (home, about, categories, articles, orphans included);
      the ``?replytocom=N`` duplicates and the AMP, print and ``/?p=N`` views of
      the second article (merged by their canonical URL only) are the same pages
      and add nothing, the about page's stray ``<link rel=canonical>`` in
      ``<body>`` is ignored, and the second article's accented permalink, linked
      raw and percent-encoded in both cases, is one page (keys are
      percent-encoded, upper-case hex);
    - ``links``: each scanned page -> its Amazon links in document order;
      ``total_links`` counts them, ``unique_links`` their distinct ``url``;
    - ``products``: (marketplace, ASIN) -> expected status, for every product
      of a link; ``by_status`` counts them (all four keys always present);
    - ``tag_audit``: ``missing_tag`` and ``other_tag`` link counts;
    - ``failed_pages``: URLs a crawl meets that answer 404/500 (two linked
      from articles, one listed only in ``/sitemap.xml``);
    - ``disallowed_pages``, ``redirect_urls`` (cloaked links, the internal
      301 and the pages that refresh at once to Amazon or a short link),
      ``non_html_urls`` (PDF, JPEG, RSS): met, but not scanned pages.
    """

    urls_scanned: int
    total_links: int
    unique_links: int
    total_products: int
    by_status: dict[str, int]
    tag_audit: dict[str, int]
    products: dict[tuple[str, str], str]
    failed_pages: frozenset[str]
    scanned_pages: frozenset[str]
    links: dict[str, tuple[LinkSpec, ...]]
    disallowed_pages: frozenset[str]
    redirect_urls: frozenset[str]
    non_html_urls: frozenset[str]

    def summary(self) -> dict[str, Any]:
        """The numbers of the scan summary, as plain JSON-able data."""
        return {
            "urls_scanned": self.urls_scanned,
            "total_links": self.total_links,
            "unique_links": self.unique_links,
            "total_products": self.total_products,
            "by_status": dict(self.by_status),
            "tag_audit": dict(self.tag_audit),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-page links, as plain JSON-able data."""
        data = self.summary()
        data["products"] = [
            {"marketplace": m, "asin": a, "status": s}
            for (m, a), s in sorted(self.products.items())
        ]
        data["failed_pages"] = sorted(self.failed_pages)
        data["scanned_pages"] = sorted(self.scanned_pages)
        data["disallowed_pages"] = sorted(self.disallowed_pages)
        data["redirect_urls"] = sorted(self.redirect_urls)
        data["non_html_urls"] = sorted(self.non_html_urls)
        return data


@dataclass
class DemoSite:
    """A generated site: what to serve, what the API knows, what a scan must find."""

    host: str
    base_url: str
    partner_tag: str
    seed: int
    resources: dict[str, Resource]  # by path, for the site's host
    short_links: dict[str, dict[str, Resource]]  # short host -> path -> redirect
    not_found: Resource
    catalogue: dict[str, Any]
    expected: Expected
    products: dict[tuple[str, str], Product]
    cloak_prefixes: tuple[str, ...]
    decoy_asins: frozenset[str] = field(default_factory=frozenset)

    def resolve(self, host: str, path: str) -> Resource:
        """The answer to ``GET path`` sent with ``Host: host`` (the query is ignored unless
        a resource is registered with it, like WordPress' ``/?p=N`` short links)."""
        path = path.split("#", 1)[0]
        table = self.short_links.get(_strip_port(host).lower(), self.resources)
        return table.get(path) or table.get(path.split("?", 1)[0], self.not_found)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


# ----------------------------------------------------------------------- word banks

_BRANDS = (
    "Kitchara", "Voltix", "Nordhaven", "Brightlane", "Solace", "Trailmark", "Aquaro",
    "Pixelon", "Harbor & Pine", "Zentro", "Lumora", "Copperleaf", "Quillon", "Redwave",
    "Mistral", "Oakridge", "Fennick", "Tidewell",
)  # fmt: skip
_ADJECTIVES = (
    "Compact", "Wireless", "Stainless Steel", "Portable", "Ergonomic", "Smart", "Quiet",
    "Heavy-Duty", "Foldable", "Rechargeable", "Waterproof", "Lightweight", "Adjustable",
)  # fmt: skip
_NOUNS = (
    ("espresso machine", "espresso machines"), ("kitchen scale", "kitchen scales"),
    ("air fryer", "air fryers"), ("hiking backpack", "hiking backpacks"),
    ("camping lantern", "camping lanterns"), ("USB-C hub", "USB-C hubs"),
    ("mechanical keyboard", "mechanical keyboards"), ("standing desk", "standing desks"),
    ("office chair", "office chairs"), ("yoga mat", "yoga mats"),
    ("resistance band", "resistance bands"), ("baby monitor", "baby monitors"),
    ("garden hose", "garden hoses"), ("travel pillow", "travel pillows"),
    ("noise-cancelling headphone", "noise-cancelling headphones"),
    ("bluetooth speaker", "bluetooth speakers"), ("gaming mouse", "gaming mice"),
    ("tripod", "tripods"), ("dog harness", "dog harnesses"), ("water filter", "water filters"),
    ("electric toothbrush", "electric toothbrushes"), ("desk lamp", "desk lamps"),
)  # fmt: skip
_CATEGORIES = (
    "kitchen", "outdoor", "tech", "home-office", "fitness", "baby", "garden", "travel",
    "audio", "gaming", "photography", "pets", "health", "lighting",
)  # fmt: skip
_AUTHORS = ("Maya Chen", "Tom Alvarez", "Priya Nair", "Jonas Weber")
_OPENERS = (
    "We spent three weeks testing",
    "After comparing a dozen",
    "Our team put the most popular",
    "Readers keep asking us about",
    "If you are shopping for",
    "We tried the cheapest and the priciest",
)  # fmt: skip
_CLAUSES = (
    "and the differences were bigger than the spec sheets suggest",
    "so you do not have to guess from the marketing photos",
    "with a focus on build quality, noise and long-term value",
    "in a real home rather than a lab",
    "and kept only the ones we would buy again",
    "while keeping an eye on price drops and return policies",
)  # fmt: skip
_LINK_LEADS = (
    "Our top pick is the",
    "If you are on a budget, look at the",
    "The runner-up, the",
    "For small spaces we like the",
    "Upgrade pick:",
    "A reader favourite is the",
    "Also worth a look:",
)  # fmt: skip
_ANCHORS = ("Check price on Amazon", "See it on Amazon", "Buy now", "View deal", "Read reviews")
_PAD_SUBJECTS = (
    "The build quality", "Battery life", "The setup process", "Day-to-day use",
    "The warranty", "Cleaning", "The companion app", "Noise under load", "Customer support",
    "The included accessories", "Long-term reliability", "Value for money",
)  # fmt: skip
_PAD_VERBS = (
    "surprised us", "held up well", "was a mixed bag", "deserves a closer look",
    "is where the cheaper models cut corners", "matters more than you would think",
    "was consistent across our samples", "improved after a firmware update",
)  # fmt: skip
_PAD_TAILS = (
    "especially after the first month of daily use.",
    "which is not something the product page tells you.",
    "and we measured it twice to be sure.",
    "though your mileage may vary with heavier use.",
    "compared with the model it replaces.",
    "when we tested it side by side with the competition.",
    "and that is reflected in our final scores below.",
)  # fmt: skip
_GERMAN_SLUGS = (
    "Küchenwaage-Digital-Edelstahl-Präzise",
    "Wanderrucksack-Wasserdicht-Größe-L",
    "Schreibtischlampe-Dimmbar-Büro",
)
_FRENCH_SLUGS = (
    "Cafetière-Italienne-Inox-6-Tasses",
    "Théière-en-Fonte-Japonaise",
    "Crème-Brûlée-Chalumeau-Cuisine",
)

_ASIN_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CODE_CHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _query(params: Iterable[tuple[str, str | None]]) -> str:
    return "&".join(f"{k}={v}" for k, v in params if v is not None)


def _with_query(url: str, params: Iterable[tuple[str, str | None]]) -> str:
    query = _query(params)
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _encode(decoded: str, mode: str) -> str:
    """The attribute text that a browser decodes back to ``decoded``."""
    if mode == "bare":  # `&name=` is never decoded inside an attribute value
        return decoded
    if mode == "amp":
        return decoded.replace("&", "&amp;")
    if mode == "wp038":  # what WordPress' esc_url() writes
        return decoded.replace("&", "&#038;")
    raise ValueError(mode)


def _spelt(path: str, case: str) -> str:
    """``path`` percent-encoded, its escapes in upper or lower case (WordPress writes lower)."""
    encoded = quote(path)
    if case == "lower":
        encoded = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)
    return encoded


def _browser_url(base_url: str, decoded: str) -> str:
    """Resolve the reference shapes the generator writes, the way a browser does."""
    url = decoded.split("#", 1)[0]
    if url.startswith("//"):
        url = base_url.split(":", 1)[0] + ":" + url
    elif url.startswith("/"):
        url = base_url.rstrip("/") + url
    scheme, rest = url.split("://", 1)
    host, slash, path = rest.partition("/")
    path = quote(path, safe="/%?&=;:,+-._~!$'()*@[]")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


# -------------------------------------------------------------------------- builder


@dataclass
class _Page:
    path: str
    title: str
    kind: str  # "home" | "about" | "category" | "article"
    links: list[LinkSpec] = field(default_factory=list)


class _Builder:
    def __init__(self, *, seed: int, host: str, partner_tag: str) -> None:
        self.rng = random.Random(seed)
        self.host = host
        self.base_url = f"http://{host}/"
        self.tag = partner_tag
        self.resources: dict[str, Resource] = {}
        self.short: dict[str, dict[str, Resource]] = {h: {} for h in SHORT_HOSTS}
        self.redirects: set[str] = set()
        self._asins: set[str] = {"B012345678"}  # the non-Amazon decoy
        self._codes: set[str] = set()
        self._slugs: set[str] = set()
        self.link_ids = 0

    # ---- identifiers

    def asin(self) -> str:
        while True:
            value = "B0" + "".join(self.rng.choices(_ASIN_CHARS, k=8))
            if value not in self._asins and any(c.isalpha() for c in value[2:]):
                self._asins.add(value)
                return value

    def isbn(self, *, check_x: bool = False) -> str:
        while True:
            digits = [self.rng.randrange(10) for _ in range(9)]
            check = (11 - sum((10 - i) * d for i, d in enumerate(digits)) % 11) % 11
            if check_x and check != 10:
                continue
            value = "".join(map(str, digits)) + ("X" if check == 10 else str(check))
            if value not in self._asins:
                self._asins.add(value)
                return value

    def code(self) -> str:
        while True:
            value = "".join(self.rng.choices(_CODE_CHARS, k=7))
            if value not in self._codes:
                self._codes.add(value)
                return value

    def slug(self, title: str) -> str:
        base = _slugify(title)[:40].strip("-") or "product"
        value, n = base, 1
        while value in self._slugs:
            n += 1
            value = f"{base}-{n}"
        self._slugs.add(value)
        return value

    def link_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def title(self) -> str:
        noun = self.rng.choice(_NOUNS)[0]
        return (
            f"{self.rng.choice(_BRANDS)} {self.rng.choice(_ADJECTIVES)} "
            f"{noun.title()} {self.rng.choice('ABCDEFGHKLMRSTX')}{self.rng.randrange(10, 990)}"
        )

    def product(self, marketplace: str, offer: str, *, asin: str | None = None) -> Product:
        status = _OFFER_STATUS[offer] if marketplace == US else "error"
        price = round(self.rng.uniform(8, 400), 2)
        return Product(marketplace, asin or self.asin(), self.title(), offer, price, status)

    # ---- routes

    def redirect(self, table: dict[str, Resource], path: str, status: int, to: str) -> None:
        body = f'<html><body>Moved to <a href="{escape(to)}">here</a>.</body></html>'
        table[path] = Resource(
            status, {"Content-Type": HTML, "Location": to}, (body.encode("utf-8"),)
        )

    def short_link(self, market: _Market, target: str, *, via_aco: bool = False) -> str:
        """Register a short link to ``target`` and return its URL (http, no TLS)."""
        code = self.code()
        host, prefix = ("a.co", "/d/") if via_aco else (market.short_host, market.short_prefix)
        self.redirect(self.short[host], f"{prefix}{code}", 301, target)
        return f"http://{host}{prefix}{code}"

    def site_refresh(self, prefix: str, title: str, target: str, *, script: bool) -> str:
        """A static site's redirect page (200, ``<meta http-equiv="refresh" content="0; …">``,
        with a ``location.replace`` script and a "click here" link when ``script``)."""
        path = f"{prefix}{self.slug(title)}/"
        js = f"<script>window.location.replace({json.dumps(target)});</script>\n" if script else ""
        body = (
            '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n<meta charset="utf-8">\n'
            f"<title>Redirecting&hellip;</title>\n"
            f'<meta http-equiv="refresh" content="0; url={escape(target)}">\n{js}</head>\n'
            f'<body><p><a href="{escape(target)}">Click here if you are not redirected.</a>'
            "</p></body>\n</html>\n"
        )
        self.resources[path] = _ok(HTML, body.encode("utf-8"))
        self.redirects.add(self.base_url.rstrip("/") + path)
        return path

    def site_redirect(self, prefix: str, title: str, target: str, status: int) -> str:
        path = f"{prefix}{self.slug(title)}/"
        self.redirect(self.resources, path, status, target)
        self.redirects.add(self.base_url.rstrip("/") + path)
        return path

    # ---- links

    def spec(
        self,
        shape: str,
        products: Sequence[Product],
        tag: str | None,
        decoded: str,
        *,
        mode: str = "bare",
        element: str = "a",
        amazon_url: str | None = None,
    ) -> LinkSpec:
        url = _browser_url(self.base_url, decoded)
        return LinkSpec(
            shape=shape,
            element=element,
            href=_encode(decoded, mode),
            url=url,
            amazon_url=amazon_url if amazon_url is not None else url,
            products=tuple(p.key for p in products),
            tag=tag,
        )

    def dp_url(self, p: Product, tag: str | None, extra: Sequence[tuple[str, str]] = ()) -> str:
        dom = _MARKETS[p.marketplace].domain
        return _with_query(f"https://www.{dom}/dp/{p.asin}", [*extra, ("tag", tag)])

    def make(self, shape: str, p: Product, tag: str | None) -> LinkSpec:
        """One link of ``shape`` to product ``p`` carrying ``tag``."""
        m = _MARKETS[p.marketplace]
        dom, a, www = m.domain, p.asin, f"https://www.{m.domain}"
        tq = [("tag", tag)]
        if shape == "dp":
            return self.spec(shape, [p], tag, self.dp_url(p, tag))
        if shape == "dp_fragment":
            return self.spec(shape, [p], tag, self.dp_url(p, tag) + "#customerReviews")
        if shape == "dp_amp":
            url = self.dp_url(p, tag, [("th", "1"), ("psc", "1")])
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape == "dp_wp038":
            url = _with_query(
                f"{www}/dp/{a}/", [*tq, ("linkCode", "ll1"), ("language", m.language)]
            )
            return self.spec(shape, [p], tag, url, mode="wp038")
        if shape == "dp_region":  # a bare `&region=` that must stay `&region=`
            url = self.dp_url(p, tag, [("linkCode", "ll1"), ("region", m.code)])
            return self.spec(shape, [p], tag, url)
        if shape == "slug":
            url = _with_query(f"{www}/{_slugify(p.title).title()}/dp/{a}/", tq)
            return self.spec(shape, [p], tag, url)
        if shape == "slug_ref":
            kw = quote(p.title.lower()).replace("%20", "+")
            url = _with_query(
                f"{www}/{_slugify(p.title).title()}/dp/{a}/ref=sr_1_3",
                [("crid", "2M9F0XQ1ZK3B"), ("keywords", kw), ("qid", "1717171717"), *tq],
            )
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape in ("slug_pct", "slug_utf8"):
            slugs = _GERMAN_SLUGS if p.marketplace == DE else _FRENCH_SLUGS
            slug = slugs[ord(a[-1]) % len(slugs)]
            written = quote(slug, safe="-") if shape == "slug_pct" else slug
            return self.spec(shape, [p], tag, _with_query(f"{www}/{written}/dp/{a}", tq))
        if shape == "gp_product":
            return self.spec(shape, [p], tag, _with_query(f"{www}/gp/product/{a}", tq))
        if shape == "sitestripe":  # the classic long SiteStripe text link
            url = _with_query(
                f"{www}/gp/product/{a}/ref=as_li_tl",
                [("ie", "UTF8"), ("camp", "1789"), ("creative", "9325"), ("creativeASIN", a),
                 ("linkCode", "as2"), *tq, ("linkId", self.link_id())],
            )  # fmt: skip
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape == "dp_product":
            return self.spec(shape, [p], tag, _with_query(f"{www}/dp/product/{a}/", tq))
        if shape == "gp_aw_d":
            return self.spec(shape, [p], tag, _with_query(f"{www}/gp/aw/d/{a}/", tq))
        if shape == "obidos":  # the tag is the last path segment
            url = f"http://www.{dom}/exec/obidos/ASIN/{a}" + (f"/{tag}" if tag else "")
            return self.spec(shape, [p], tag, url)
        if shape == "paapi":  # an old API detail-page URL: the query encoded into the path
            query = (
                f"SubscriptionId%3DAKIAIOSFODNN7EXAMPLE%26tag%3D{tag}"
                if tag
                else ("SubscriptionId%3DAKIAIOSFODNN7EXAMPLE")
            )
            query += f"%26linkCode%3Dxm2%26camp%3D2025%26creative%3D165953%26creativeASIN%3D{a}"
            return self.spec(
                shape, [p], tag, f"http://www.{dom}/{self.slug(p.title)}/dp/{a}%3F{query}"
            )
        if shape == "customer_reviews":
            url = _with_query(f"{www}/gp/product/customer-reviews/{a}/ref=cm_cr_dp", tq)
            return self.spec(shape, [p], tag, url)
        if shape == "obidos_detail":
            url = _with_query(f"http://www.{dom}/exec/obidos/tg/detail/-/{a}/qid=1041412", tq)
            return self.spec(shape, [p], tag, url)
        if shape == "o_asin":
            return self.spec(shape, [p], tag, _with_query(f"{www}/o/ASIN/{a}/", tq))
        if shape == "offer_listing":
            url = _with_query(
                f"{www}/gp/offer-listing/{a}/ref=dp_olp_all_mbc",
                [("ie", "UTF8"), ("condition", "all"), *tq],
            )
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape == "product_reviews":
            url = _with_query(
                f"{www}/product-reviews/{a}/ref=cm_cr_dp_d_show_all_btm",
                [("ie", "UTF8"), ("reviewerType", "all_reviews"), *tq],
            )
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape == "cart_add":  # ASIN.1=
            url = _with_query(
                f"{www}/gp/aws/cart/add.html", [("ASIN.1", a), ("Quantity.1", "1"), *tq]
            )
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape == "query_asin":  # asin=
            url = _with_query(f"{www}/review/create-review/", [("ie", "UTF8"), ("asin", a), *tq])
            return self.spec(shape, [p], tag, url, mode="amp")
        if shape == "upper_host":
            url = _with_query(f"https://WWW.{dom.upper()}/DP/{a}", tq)
            return self.spec(shape, [p], tag, url)
        if shape == "protocol_relative":
            return self.spec(shape, [p], tag, _with_query(f"//www.{dom}/dp/{a}/", tq))
        if shape == "smile":
            return self.spec(shape, [p], tag, _with_query(f"https://smile.{dom}/dp/{a}", tq))
        if shape == "apex":
            return self.spec(shape, [p], tag, _with_query(f"https://{dom}/dp/{a}", tq))
        if shape == "lowercase_asin":
            return self.spec(shape, [p], tag, _with_query(f"{www}/dp/{a.lower()}", tq))
        if shape == "area":
            url = _with_query(f"{www}/dp/{a}/ref=as_li_ss_il", [*tq, ("linkCode", "li3")])
            return self.spec(shape, [p], tag, url, element="area", mode="amp")
        if shape in ("short", "short_aco"):
            target = self.dp_url(
                p, tag, [("linkCode", "sl1"), ("linkId", self.link_id()), ("ref_", "as_li_ss_tl")]
            )
            short = self.short_link(m, target, via_aco=shape == "short_aco")
            return self.spec(shape, [p], tag, short, amazon_url=target)
        if shape == "short_chain":  # amzn.to -> a.co -> Amazon
            target = self.dp_url(p, tag, [("linkCode", "sl1"), ("linkId", self.link_id())])
            hop = self.short_link(m, target, via_aco=True)
            code = self.code()
            self.redirect(self.short["amzn.to"], f"/{code}", 301, hop)
            return self.spec(shape, [p], tag, f"http://amzn.to/{code}", amazon_url=target)
        if shape in ("cloaked", "cloaked_to_short", "recommends"):
            target = self.dp_url(p, tag, [("linkCode", "ll1")])
            to = self.short_link(m, target) if shape == "cloaked_to_short" else target
            if shape == "recommends":
                path = self.site_redirect(RECOMMENDS_PREFIX, p.title, to, 301)
            else:
                path = self.site_redirect(CLOAK_PREFIX, p.title, to, 302)
            written = self.base_url.rstrip("/") + path if shape == "cloaked" else path
            return self.spec(shape, [p], tag, written, amazon_url=target)
        if shape == "cloaked_refresh":  # a Hugo alias under /go/: a meta refresh to Amazon
            target = self.dp_url(p, tag, [("linkCode", "ll1")])
            path = self.site_refresh(CLOAK_PREFIX, p.title, target, script=False)
            return self.spec(shape, [p], tag, path, amazon_url=target)
        if shape == "refresh_out":  # outside /go/: refresh + location.replace to a short link
            target = self.dp_url(p, tag, [("linkCode", "sl1"), ("linkId", self.link_id())])
            path = self.site_refresh(
                REFRESH_PREFIX, p.title, self.short_link(m, target), script=True
            )
            return self.spec(shape, [p], tag, path, amazon_url=target)
        if shape in ("widget", "widget_amp"):
            return self.widget(shape, [p], tag, mode="bare" if shape == "widget" else "amp")
        if shape in ("rcm", "rcm_legacy"):
            host = f"rcm-{m.adsystem}.amazon-adsystem.com" if shape == "rcm" else f"rcm.{dom}"
            url = _with_query(
                f"//{host}/e/cm",
                [("t", tag), ("o", m.rcm_o), ("p", "8"), ("l", "as1"), ("asins", a),
                 ("ref", "qf_sp_asin_til"), ("fc1", "000000"), ("IS2", "1"), ("lt1", "_blank"),
                 ("m", "amazon"), ("lc1", "0000FF"), ("bc1", "000000"), ("bg1", "FFFFFF"),
                 ("f", "ifr")],
            )  # fmt: skip
            return self.spec(shape, [p], tag, url, mode="amp", element="iframe")
        raise ValueError(f"unknown link shape {shape!r}")

    def widget(self, shape: str, ps: Sequence[Product], tag: str | None, *, mode: str) -> LinkSpec:
        m = _MARKETS[ps[0].marketplace]
        asins = ",".join(p.asin for p in ps)
        url = _with_query(
            f"//ws-{m.adsystem}.amazon-adsystem.com/widgets/q",
            [("ServiceVersion", "20070822"), ("OneJS", "1"), ("Operation", "GetAdHtml"),
             ("MarketPlace", m.code), ("source", "ss"), ("ref", "as_ss_li_til"),
             ("ad_type", "product_link"), ("tracking_id", tag), ("language", m.language),
             ("marketplace", "amazon"), ("region", m.code), ("placement", ps[0].asin),
             ("asins", asins), ("linkId", self.link_id()), ("show_border", "true"),
             ("link_opens_in_new_window", "true")],
        )  # fmt: skip
        return self.spec(shape, ps, tag, url, mode=mode, element="iframe")


# Shapes drawn for the links of the extra (random) products, with weights.
_EXTRA_SHAPES_US: tuple[tuple[str, int], ...] = (
    ("dp", 30), ("slug", 10), ("dp_amp", 6), ("gp_product", 6), ("sitestripe", 5),
    ("short", 10), ("short_aco", 2), ("cloaked", 10), ("widget", 6), ("upper_host", 2),
    ("protocol_relative", 3), ("obidos", 2), ("recommends", 2), ("area", 1), ("smile", 1),
    ("apex", 1), ("rcm", 1), ("dp_region", 2), ("dp_wp038", 2), ("slug_ref", 2),
    ("cloaked_refresh", 2), ("refresh_out", 2),
)  # fmt: skip
_EXTRA_SHAPES_EU: tuple[tuple[str, int], ...] = (
    ("dp", 5),
    ("slug", 2),
    ("dp_amp", 1),
    ("short", 2),
    ("widget", 1),
    ("slug_pct", 1),
)
# Offers of the extra US products, with weights.
_EXTRA_OFFERS: tuple[tuple[str, int], ...] = (
    ("IN_STOCK", 60), ("IN_STOCK_SCARCE", 4), ("PREORDER", 2), ("LEADTIME", 2),
    ("AVAILABLE_DATE", 2), ("OUT_OF_STOCK", 8), ("UNAVAILABLE", 2), ("NONE", 2),
    ("ABSENT", 9), ("ERR_NOT_FOUND", 1), ("UNKNOWN", 3), ("ERR_NOT_ACCESSIBLE", 5),
)  # fmt: skip


def _pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def _base_links(b: _Builder) -> tuple[list[Product], list[LinkSpec]]:
    """Products and links every site has: one of each shape, statuses of each kind.

    The tiny test site consists of exactly these; its counts follow from this
    table: 49 links, 46 unique (a fragment variant and two other spellings of
    a cloaked link), 16 products (7 available, 3 out_of_stock, 2 removed,
    4 error), 5 links without a tag and 5 with another's.
    """
    own, other = b.tag, OTHER_TAG
    a1 = b.product(US, "IN_STOCK")
    a2 = b.product(US, "IN_STOCK_SCARCE")
    a3 = b.product(US, "PREORDER")
    a4 = b.product(US, "LEADTIME")
    a5 = b.product(US, "AVAILABLE_DATE")
    a6 = b.product(US, "IN_STOCK", asin=b.isbn(check_x=True))
    a7 = b.product(US, "IN_STOCK", asin=b.isbn())
    o1 = b.product(US, "OUT_OF_STOCK")
    o2 = b.product(US, "UNAVAILABLE")
    o3 = b.product(US, "NONE")
    r1 = b.product(US, "ABSENT")
    r2 = b.product(US, "ERR_NOT_FOUND")
    e1 = b.product(US, "UNKNOWN")
    e2 = b.product(US, "ERR_NOT_ACCESSIBLE")
    uk1 = b.product(UK, "IN_STOCK")
    de1 = b.product(DE, "IN_STOCK")
    products = [a1, a2, a3, a4, a5, a6, a7, o1, o2, o3, r1, r2, e1, e2, uk1, de1]

    links = [
        b.make("dp", a1, own),
        b.make("dp_fragment", a1, own),  # same URL as the previous one
        b.make("dp_amp", a2, own),
        b.make("dp_wp038", a3, own),
        b.make("dp_region", a4, own),
        b.make("slug", a5, own),
        b.make("slug_ref", o1, own),
        b.make("slug_pct", o2, own),
        b.make("slug_utf8", r1, own),
        b.make("gp_product", a1, own),
        b.make("sitestripe", a2, own),
        b.make("dp_product", o3, own),
        b.make("gp_aw_d", r1, other),
        b.make("obidos", a6, own),
        b.make("obidos", r2, None),
        b.make("o_asin", e1, own),
        b.make("paapi", a6, other),  # the tag inside the encoded query is audited
        b.make("customer_reviews", o2, own),
        b.make("obidos_detail", a7, None),
        b.make("offer_listing", e2, own),
        b.make("product_reviews", a7, own),
        b.make("cart_add", a3, own),
        b.make("query_asin", a4, own),
        b.make("upper_host", a5, own),
        b.make("protocol_relative", o1, own),
        b.make("smile", a1, own),
        b.make("apex", a2, None),
        b.make("lowercase_asin", a3, other),
        b.make("area", a4, own),
        b.make("dp", uk1, own),
        b.make("slug_pct", de1, own),
        b.make("short", a1, own),
        b.make("short_aco", o1, other),
        b.make("short", uk1, own),
        b.make("short_chain", a5, own),
    ]
    cloaked = b.make("cloaked", a2, own)  # written absolute; then root-relative and relative
    path = cloaked.url[len(b.base_url) - 1 :]
    links += [
        cloaked,
        replace(cloaked, shape="cloaked_root", href=path),
        replace(cloaked, shape="cloaked_relative", href="../.." + path),
        b.make("cloaked", r1, None),
        b.make("cloaked_to_short", e1, own),
        b.make("recommends", o3, own),
        b.make("cloaked_refresh", o1, own),
        b.make("refresh_out", a3, own),
        b.make("widget", a6, own),
        b.make("widget", a7, None),
        b.widget("widget_multi", [a1, o2, r2], own, mode="amp"),
        b.make("widget_amp", uk1, own),
        b.make("rcm", e2, other),
        b.make("rcm_legacy", o2, own),
    ]
    return products, links


# -------------------------------------------------------------------------- rendering


def _render_link(spec: LinkSpec, n: int, title: str) -> str:
    """One link in a plausible context; ``n`` varies the markup."""
    h, t = spec.href, escape(title)
    if spec.element == "iframe":
        return (
            '<figure class="amazon-widget"><iframe sandbox="allow-popups allow-scripts '
            'allow-modals allow-forms allow-same-origin" style="width:120px;height:240px;" '
            'marginwidth="0" marginheight="0" scrolling="no" frameborder="0" '
            f'src="{h}"></iframe></figure>\n'
        )
    if spec.element == "area":
        return (
            f'<figure><img src="{IMAGE_PATH}" usemap="#amzmap-{n}" alt="{t}" width="600" '
            f'height="300"><map name="amzmap-{n}"><area shape="rect" coords="0,0,600,300" '
            f'href="{h}" alt="{t}"></map></figure>\n'
        )
    lead = _LINK_LEADS[n % len(_LINK_LEADS)]
    anchor = _ANCHORS[n % len(_ANCHORS)]
    style = n % 5
    if style == 0:
        return (
            f'<p>{lead} <a href="{h}" rel="nofollow sponsored" target="_blank">{t}</a>. '
            "It does what it says and the price is fair.</p>\n"
        )
    if style == 1:
        return (
            f"<h3>{t}</h3>\n<p>{lead} {t}.</p>\n"
            f'<div class="wp-block-button"><a class="wp-block-button__link" href="{h}" '
            f'rel="nofollow noopener sponsored" target="_blank">{anchor}</a></div>\n'
        )
    if style == 2:
        return (
            f'<table class="product-table"><tr><td>{t}</td>'
            f"<td><a href='{h}' rel='nofollow'>{anchor}</a></td></tr></table>\n"
        )
    if style == 3:
        return (
            f'<ul class="picks"><li><A HREF="{h}" REL="nofollow">{t}</A>: '
            f"{lead.lower()}</li></ul>\n"
        )
    return (
        f'<p><a href="{h}" rel="nofollow sponsored"><img src="{IMAGE_PATH}" alt="{t}" '
        'width="300" height="300" loading="lazy"></a></p>\n'
    )


def _decoys(asins: Sequence[str], tag: str) -> list[str]:
    """Markup that mentions Amazon products but holds no link a scan may count."""
    a = asins
    return [
        f"<p>Tip: the model number (ASIN {a[0]}) is printed on the box; "
        f"the paperback edition is ISBN {a[1]}.</p>\n",
        f"<p>Prefer typing? Go to amazon.com/dp/{a[2]} and use the coupon on the page.</p>\n",
        '<p>Also sold <a href="https://example.org/dp/B012345678">elsewhere</a> and '
        f'<a href="https://www.notamazon.com/dp/{a[3]}?tag={tag}">here</a>.</p>\n',
        f'<script>var deal = "https://www.amazon.com/dp/{a[4]}?tag={tag}";\n'
        f"document.write('<a href=\"https://www.amazon.com/dp/{a[4]}\">deal<\\/a>');</script>\n"
        '<script type="application/ld+json">{"@context":"https://schema.org","@type":"Product",'
        f'"url":"https://www.amazon.com/dp/{a[5]}"}}</script>\n',
        f'<p>See <a href="https://www.amazon.com/s?k=usb+c+hub&amp;tag={tag}">more hubs</a> '
        f'or the <a href="https://www.amazon.com/b?node=172282&amp;tag={tag}">electronics '
        "store</a>.</p>\n",
        f'<!-- old box: <a href="https://www.amazon.com/dp/{a[6]}?tag={tag}">buy</a> -->\n',
        f'<img src="https://m.media-amazon.com/images/I/41{a[7][2:]}._AC_SL500_.jpg" alt="">'
        f'<img src="//ir-na.amazon-adsystem.com/e/ir?t={tag}&amp;l=am2&amp;o=1&amp;a={a[7]}" '
        'width="1" height="1" alt="" style="border:none !important; margin:0px !important;">\n',
        f'<p><a href="/about/">https://www.amazon.com/dp/{a[8]}</a> '
        f'<button data-url="https://www.amazon.com/dp/{a[8]}?tag={tag}">Buy</button></p>\n',
        '<p>We are a participant in the <a href="https://affiliate-program.amazon.com/">Amazon '
        "Services LLC Associates Program</a>.</p>\n",
    ]


class _Renderer:
    def __init__(self, b: _Builder, *, page_bytes: int, seed: int) -> None:
        self.b = b
        self.base = b.base_url
        self.page_bytes = page_bytes
        self._pad_rng = random.Random(seed * 7919 + 17)
        self._paragraphs = [self._paragraph(i) for i in range(64)]
        self._pads: dict[tuple[int, int], bytes] = {}

    def _paragraph(self, i: int) -> str:
        r = self._pad_rng
        sentences = " ".join(
            f"{r.choice(_PAD_SUBJECTS)} {r.choice(_PAD_VERBS)}, {r.choice(_PAD_TAILS)}"
            for _ in range(r.randrange(3, 7))
        )
        if i % 6 == 5:
            items = "".join(f"<li>{r.choice(_PAD_SUBJECTS)}</li>" for _ in range(4))
            return f"<h2>{r.choice(_PAD_SUBJECTS)}</h2>\n<ul>{items}</ul>\n<p>{sentences}</p>\n"
        return f"<p>{sentences}</p>\n"

    def pad(self, variant: int, size: int) -> bytes:
        """Plain paragraphs of about ``size`` bytes, shared between pages."""
        key = (variant % 8, max(1, round(size / 1024)))
        block = self._pads.get(key)
        if block is None:
            out: list[str] = ['<div class="more">\n']
            total, i = 0, key[0] * 7
            while total < key[1] * 1024:
                para = self._paragraphs[i % len(self._paragraphs)]
                out.append(para)
                total += len(para)
                i += 1
            out.append("</div>\n")
            block = self._pads[key] = "".join(out).encode("utf-8")
        return block

    def head(self, title: str, canonical: str, body_class: str, nav: str) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)} &ndash; Demo Reviews</title>\n"
            + (f'<link rel="canonical" href="{canonical}">\n' if canonical else "")
            + '<link rel="alternate" type="application/rss+xml" title="Demo Reviews" '
            f'href="{self.base}feed/">\n'
            "<script>window.dataLayer = window.dataLayer || [];</script>\n"
            f'</head>\n<body class="{body_class}">\n{nav}<main id="main">\n'
        )

    def foot(self, extra: str = "") -> str:
        return (
            '</main>\n<footer class="site-footer"><p>© 2024 Demo Reviews · '
            f'<a href="/about/">About</a> · <a href="{FEED_PATH}">RSS</a>{extra}</p>'
            "<p>As an Amazon Associate we earn from qualifying purchases.</p></footer>\n"
            "</body>\n</html>\n"
        )

    def finish(self, index: int, prefix: str, suffix: str) -> tuple[bytes, ...]:
        head, tail = prefix.encode("utf-8"), suffix.encode("utf-8")
        if self.page_bytes > 0:
            missing = self.page_bytes - len(head) - len(tail)
            if missing > 512:
                return (head, self.pad(index, missing), tail)
        return (head + tail,)


def _paragraphs(rng: random.Random, plural: str, count: int) -> str:
    return "".join(
        f"<p>{rng.choice(_OPENERS)} {plural} {rng.choice(_CLAUSES)}. "
        f"Here is what we learned about {plural}, {rng.choice(_CLAUSES)}.</p>\n"
        for _ in range(count)
    )


# ---------------------------------------------------------------------------- site


def _xml_urlset(urls: Iterable[str]) -> bytes:
    rows = "".join(
        f"<url><loc>{escape(u)}</loc><lastmod>2024-05-{1 + i % 28:02d}</lastmod></url>\n"
        for i, u in enumerate(urls)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{rows}</urlset>\n"
    ).encode()


def _xml_index(urls: Iterable[str]) -> bytes:
    rows = "".join(
        f"<sitemap><loc>{escape(u)}</loc><lastmod>2024-06-01</lastmod></sitemap>\n" for u in urls
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{rows}</sitemapindex>\n"
    ).encode()


def _ok(content_type: str, *parts: bytes) -> Resource:
    return Resource(200, {"Content-Type": content_type}, parts)


def generate_site(
    pages: int = 60,
    *,
    seed: int = 1,
    page_bytes: int = 0,
    partner_tag: str = "demo-20",
    host: str = "demo.example",
    products: int | None = None,
    links_per_article: int = 6,
) -> DemoSite:
    """Build a fake affiliate site of ``pages`` scanned HTML pages (at least 4).

    ``products`` is the number of US products (default: ``max(14, pages // 2)``;
    a few UK and DE ones are added on larger sites); ``links_per_article`` the
    average number of Amazon links per article; ``page_bytes`` pads every page
    with plain paragraphs up to about that size. The same arguments always give
    the same bytes.
    """
    if pages < 4:
        raise ValueError("a demo site has at least 4 pages (home, about, a category, an article)")
    host = host.lower()
    b = _Builder(seed=seed, host=host, partner_tag=partner_tag)
    rng = b.rng
    base = b.base_url
    root = base.rstrip("/")

    # ---- layout: home, about, categories, articles (every 10th one an orphan)
    rest = pages - 2
    n_cat = max(1, min(rest - 1, round(math.sqrt(rest) / 2)))
    n_art = rest - n_cat
    cats = [
        _CATEGORIES[i % len(_CATEGORIES)] + (f"-{i // len(_CATEGORIES) + 1}" if i >= 14 else "")
        for i in range(n_cat)
    ]
    art_paths: list[str] = []
    art_titles: list[str] = []
    art_plurals: list[str] = []
    for i in range(n_art):
        singular, plural = _NOUNS[rng.randrange(len(_NOUNS))]
        pattern = i % 4
        if pattern == 0:
            title = f"The Best {plural.title()} of 2024"
        elif pattern == 1:
            title = f"{rng.randrange(5, 15)} {rng.choice(_ADJECTIVES)} {plural.title()} We Tested"
        elif pattern == 2:
            title = f"Best {plural.title()} Under ${rng.choice((50, 100, 200, 500))}"
        else:
            title = f"{rng.choice(_BRANDS)} {singular.title()} Review"
        art_titles.append(title)
        art_plurals.append(plural)
        art_paths.append(f"/{cats[i % n_cat]}/{_slugify(title)}-{i + 1}/")
    if n_art > 1:  # a permalink with an accent: linked raw (an IRI) and percent-encoded
        art_paths[1] = art_paths[1].rstrip("/") + "-\u00e9dition/"
    orphan = [i % 10 == 9 for i in range(n_art)]
    linked = [i for i in range(n_art) if not orphan[i]]
    linked_pos = {i: k for k, i in enumerate(linked)}
    by_cat: list[list[int]] = [[] for _ in range(n_cat)]
    cat_pos: dict[int, int] = {}
    for i in linked:
        cat_pos[i] = len(by_cat[i % n_cat])
        by_cat[i % n_cat].append(i)

    # ---- products and the pool of links
    base_products, pool = _base_links(b)
    all_products = list(base_products)
    n_us = max(14, pages // 2 if products is None else products)
    for _ in range(n_us - 14):
        p = b.product(US, _pick(rng, _EXTRA_OFFERS))
        all_products.append(p)
        for _ in range(1 + (rng.random() < 0.3)):
            tag = rng.choices((partner_tag, None, OTHER_TAG), weights=(85, 8, 7))[0]
            pool.append(b.make(_pick(rng, _EXTRA_SHAPES_US), p, tag))
    for marketplace in (UK, DE):
        for _ in range(pages // 60):
            p = b.product(marketplace, "IN_STOCK")
            all_products.append(p)
            pool.append(b.make(_pick(rng, _EXTRA_SHAPES_EU), p, partner_tag))

    # ---- distribute links: every pool link at least once, then random repeats
    counts = [2] + [1] * n_cat
    lo = max(0, links_per_article // 2)
    counts += [rng.randint(lo, links_per_article + links_per_article // 2) for _ in range(n_art)]
    deficit = len(pool) - sum(counts)
    for k in range(max(0, deficit)):
        counts[1 + n_cat + k % n_art] += 1
    slots = list(pool) + [rng.choice(pool) for _ in range(sum(counts) - len(pool))]
    rng.shuffle(slots)
    chunks: list[list[LinkSpec]] = []
    start = 0
    for count in counts:
        chunks.append(slots[start : start + count])
        start += count
    home_links, cat_links, art_links = chunks[0], chunks[1 : 1 + n_cat], chunks[1 + n_cat :]

    titles = {p.key: p.title for p in all_products}
    decoy_asins = [b.asin() for _ in range(7)] + [b.isbn()] + [b.asin()]
    decoy_asins[1], decoy_asins[7] = decoy_asins[7], decoy_asins[1]
    decoys = _decoys(decoy_asins, partner_tag)
    private_asin, feed_asin, pdf_asin = b.asin(), b.asin(), b.asin()

    r = _Renderer(b, page_bytes=page_bytes, seed=seed)
    nav = (
        f'<header class="site-header"><a class="site-title" href="{base}">Demo Reviews</a>\n'
        '<nav class="main-nav"><ul><li><a href="/">Home</a></li>'
        + "".join(
            f'<li><a href="/category/{c}/">{c.replace("-", " ").title()}</a></li>' for c in cats[:8]
        )
        + '<li><a href="/about/">About</a></li></ul></nav></header>\n'
    )
    resources = b.resources
    scanned: dict[str, list[LinkSpec]] = {}
    counter = 0

    def links_html(links: Sequence[LinkSpec]) -> str:
        nonlocal counter
        out = []
        for spec in links:
            counter += 1
            out.append(_render_link(spec, counter, titles[spec.products[0]]))
        return "".join(out)

    def add_page(path: str, links: Sequence[LinkSpec], parts: tuple[bytes, ...]) -> None:
        resources[path] = _ok(HTML, *parts)
        scanned[root + _spelt(path, "upper")] = list(links)  # the crawl key

    # home
    latest = "".join(
        f'<li><a href="{root}{art_paths[i]}">{escape(art_titles[i])}</a></li>' for i in linked[:10]
    )
    cat_list = "".join(
        f'<li><a href="{base}category/{c}/">{c.replace("-", " ").title()}</a></li>' for c in cats
    )
    prefix = (
        r.head("Honest product reviews", base, "home blog", nav)
        + "<h1>Honest product reviews</h1>\n"
        + _paragraphs(rng, "gadgets", 2)
        + '<section class="featured"><h2>Featured deals</h2>\n'
        + links_html(home_links)
        + "</section>\n"
        + f'<section class="latest"><h2>Latest reviews</h2><ul>{latest}</ul></section>\n'
        + f'<section class="categories"><h2>Categories</h2><ul>{cat_list}</ul></section>\n'
        + '<section class="tips"><h2>Shopping tips</h2>\n'
        + "".join(decoys)
        + "</section>\n"
    )
    suffix = r.foot(f' · <a href="{PRIVATE_PATH}">Members\' deals</a>')
    add_page("/", home_links, r.finish(0, prefix, suffix))

    # about
    prefix = (
        r.head("About us", "", "page", nav)  # no canonical in <head>: only a stray one below
        + "<h1>About Demo Reviews</h1>\n"
        + _paragraphs(rng, "products", 3)
        + f'<p>Advertisers: download our <a href="{PDF_PATH}">media kit (PDF)</a> or '
        '<a href="mailto:hello@demo.example">write to us</a>, '
        '<a href="tel:+15555550100">call us</a>, or '
        '<a href="javascript:void(0)">open the chat</a>.</p>\n'
        + decoys[-1]
        # a stray canonical in <body> (a page builder's widget): search engines ignore it
        + f'<aside class="widget"><link rel="canonical" href="{base}"></aside>\n'
    )
    add_page("/about/", [], r.finish(1, prefix, r.foot()))

    # categories
    for ci, c in enumerate(cats):
        posts = "".join(
            f'<li><a href="{root if k % 2 else ""}{_spelt(art_paths[i], "upper")}">'
            f"{escape(art_titles[i])}</a></li>"
            for k, i in enumerate(by_cat[ci])
        )
        name = c.replace("-", " ").title()
        prefix = (
            r.head(name, f"{base}category/{c}/", "archive category", nav)
            + f"<h1>{name}</h1>\n"
            + _paragraphs(rng, name.lower(), 1)
            + links_html(cat_links[ci])
            + f'<ul class="posts">{posts}</ul>\n'
        )
        add_page(f"/category/{c}/", cat_links[ci], r.finish(2 + ci, prefix, r.foot()))

    # articles
    first_path = art_paths[0]
    old_target = root + first_path
    b.redirect(resources, OLD_REDIRECT_PATH, 301, old_target)
    b.redirects.add(root + OLD_REDIRECT_PATH)
    last = n_art - 1
    for i in range(n_art):
        path, title = art_paths[i], art_titles[i]
        cat = cats[i % n_cat]
        same_cat = by_cat[i % n_cat]
        k = cat_pos.get(i, -1)
        siblings = [same_cat[(k + d) % len(same_cat)] for d in range(1, min(5, len(same_cat)))]
        siblings = [j for j in siblings if j != i]
        related = "".join(
            f'<li><a href="../{art_paths[j].rsplit("/", 2)[1]}/">{escape(art_titles[j])}</a></li>'
            for j in siblings
        )
        pos = linked_pos.get(i)
        around = ""
        if pos is not None and pos + 1 < len(linked):
            nxt = linked[pos + 1]
            around = (
                f'<p class="next"><a href="{root}{_spelt(art_paths[nxt], "lower")}">'
                f"Next: {escape(art_titles[nxt])}</a></p>\n"
            )
        special = ""
        if i == 0:
            special += (
                f'<p>Our <a href="{NOT_FOUND_PATH}">2019 deals page</a> is gone; the '
                f'<a href="{root}{OLD_REDIRECT_PATH}">old version of this post</a> redirects here. '
                f'<a href="../..{IMAGE_PATH}">Full-size photo</a>.</p>\n'
            )
        if i == last:
            special += f'<p>Price history: <a href="{root}{ERROR_PATH}">see the chart</a>.</p>\n'
        comments = ""
        if i % 5 == 0:
            comments = (
                '<section id="comments"><h2>Comments</h2>\n'
                + "".join(
                    f'<div class="comment" id="comment-{100 + 2 * i + k}">'
                    "<p>Thanks, very helpful!</p>"
                    f'<a rel="nofollow" class="comment-reply-link" '
                    f'href="{root}{path}?replytocom={100 + 2 * i + k}#respond">Reply</a></div>\n'
                    for k in range(2)
                )
                + "</section>\n"
            )
        canonical = root + _spelt(path, "lower")
        if i == 1:  # views of this post that only its canonical URL merges
            special += (
                f'<p><a href="{path}amp/">AMP version</a> · <a href="/?p={1000 + i}">short '
                f'link</a> · <a href="{path}print/">print</a> · '
                f'<a href="{path}?print=1">print (query)</a></p>\n'
            )
        prefix = (
            r.head(title, canonical, "post single", nav)
            + f'<article><h1 class="entry-title">{escape(title)}</h1>\n'
            f'<p class="byline">By <a href="/about/">{_AUTHORS[i % len(_AUTHORS)]}</a> · '
            f"Updated 2024-{1 + i % 12:02d}-{1 + i % 28:02d} · "
            f'<a href="#comments">Comments</a></p>\n<div class="entry-content">\n'
            + _paragraphs(rng, art_plurals[i], 2)
            + links_html(art_links[i])
            + decoys[i % len(decoys)]
            + special
        )
        suffix = (
            "</div>\n"
            + comments
            + f'<nav class="related"><h2>Related</h2><ul>{related}</ul></nav>\n'
            + f'<p class="breadcrumbs"><a href="../../">Home</a> &rsaquo; '
            f'<a href="../../category/{cat}/">{cat.replace("-", " ").title()}</a></p>\n'
            + around
            + "</article>\n"
            + r.foot()
        )
        add_page(path, art_links[i], r.finish(3 + n_cat + i, prefix, suffix))
        if i == 1:
            for duplicate in (f"{path}amp/", f"/?p={1000 + i}", f"{path}print/"):
                resources[duplicate] = resources[path]

    # ---- pages that are not scanned pages
    private = (
        r.head("Members' deals", f"{base}private/deals/", "page", nav)
        + "<h1>Members only</h1>\n"
        + f'<p><a href="https://www.amazon.com/dp/{private_asin}?tag={partner_tag}">'
        "Secret deal</a></p>\n" + r.foot()
    )
    resources[PRIVATE_PATH] = _ok(HTML, private.encode())
    error_page = r.head("Error", base, "error", "") + "<h1>Internal Server Error</h1>\n" + r.foot()
    resources[ERROR_PATH] = Resource(500, {"Content-Type": HTML}, (error_page.encode(),))
    missing = r.head("Page not found", base, "error404", nav) + "<h1>Not found</h1>\n" + r.foot()
    not_found = Resource(404, {"Content-Type": HTML}, (missing.encode(),))
    resources[PDF_PATH] = _ok(
        "application/pdf",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n"
        + f"% https://www.amazon.com/dp/{pdf_asin}?tag={partner_tag}\n".encode()
        + b"trailer << /Root 1 0 R >>\n%%EOF\n",
    )
    resources[IMAGE_PATH] = _ok(
        "image/jpeg",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9",
    )
    feed = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>Demo Reviews</title><link>{base}</link>"
        f"<item><title>Deal</title><link>{root}{first_path}</link><description><![CDATA["
        f'<a href="https://www.amazon.com/dp/{feed_asin}?tag={partner_tag}">deal</a>'
        "]]></description></item></channel></rss>\n"
    )
    resources[FEED_PATH] = _ok("application/rss+xml; charset=utf-8", feed.encode())

    # ---- robots.txt and sitemaps
    robots = (
        "User-agent: *\nDisallow: /private/\nDisallow: /wp-admin/\n"
        "Allow: /wp-admin/admin-ajax.php\n\n"
        f"Sitemap: {base}sitemap_index.xml\n"
    )
    resources["/robots.txt"] = _ok(TEXT, robots.encode())
    post_maps: list[str] = []
    for k, start in enumerate(range(0, n_art, POSTS_PER_SITEMAP), 1):
        urls = [
            root + _spelt(art_paths[i], "lower")  # WordPress writes lower-case escapes
            for i in range(start, min(n_art, start + POSTS_PER_SITEMAP))
        ]
        if k % 2 == 0:
            name = f"/post-sitemap{k}.xml.gz"
            resources[name] = _ok("application/x-gzip", gzip.compress(_xml_urlset(urls), mtime=0))
        else:
            name = f"/post-sitemap{k}.xml"
            resources[name] = _ok(XML, _xml_urlset(urls))
        post_maps.append(root + name)
    resources["/post-sitemap-index.xml"] = _ok(XML, _xml_index(post_maps))
    resources["/page-sitemap.xml"] = _ok(XML, _xml_urlset([base, f"{base}about/"]))
    resources["/category-sitemap.xml.gz"] = _ok(
        "application/x-gzip",
        gzip.compress(_xml_urlset(f"{base}category/{c}/" for c in cats), mtime=0),
    )
    resources["/sitemap_index.xml"] = _ok(
        XML,
        _xml_index(
            [
                f"{base}page-sitemap.xml",
                f"{base}category-sitemap.xml.gz",
                f"{base}post-sitemap-index.xml",
            ]
        ),
    )
    resources["/sitemap.xml"] = _ok(
        XML, _xml_urlset([base, f"{base}about/", root + PRIVATE_PATH, root + STALE_PATH])
    )
    resources["/wp-sitemap.xml"] = _ok(XML, _xml_index([f"{base}page-sitemap.xml"]))

    # ---- the catalogue of the sandbox Amazon API
    items: dict[str, Any] = {}
    for p in all_products:
        if p.marketplace != US or p.offer == "ABSENT":
            continue
        if p.offer == "ERR_NOT_FOUND":
            items[p.asin] = {
                "error": {"code": "ItemNotFound", "message": f"The ItemId {p.asin} was not found."}
            }
        elif p.offer == "ERR_NOT_ACCESSIBLE":
            items[p.asin] = {
                "error": {
                    "code": "ItemNotAccessible",
                    "message": f"The ItemId {p.asin} is not accessible through the Creators API.",
                }
            }
        elif p.offer == "NONE":
            items[p.asin] = {"title": p.title, "availability": None}
        else:
            entry: dict[str, Any] = {
                "title": p.title,
                "availability": p.offer,
                "message": _OFFER_MESSAGE[p.offer],
            }
            if _OFFER_STATUS[p.offer] == "available":
                entry["price"] = p.price
            items[p.asin] = entry
    catalogue: dict[str, Any] = {
        "credentials": [
            {
                "credential_id": "demo-credential",
                "credential_secret": "demo-secret",
                "version": "2.1",
                "partner_tags": [partner_tag],
                "marketplaces": [US],
                "tps": 10.0,
                "eligible": True,
            }
        ],
        "not_found_mode": "404",
        "items": {US: items},
    }

    # ---- the ground truth, counted from the specs
    product_by_key = {p.key: p for p in all_products}
    links = {page: tuple(specs) for page, specs in scanned.items()}
    every = [s for specs in links.values() for s in specs]
    keys = {k for s in every for k in s.products}
    statuses = {k: product_by_key[k].status for k in keys}
    by_status = Counter(statuses.values())
    expected = Expected(
        urls_scanned=len(links),
        total_links=len(every),
        unique_links=len({s.url for s in every}),
        total_products=len(keys),
        # a complete scan checks every product: none is "not_checked"
        by_status={s: by_status.get(s, 0) for s in (*STATUSES, "not_checked")},
        tag_audit={
            "missing_tag": sum(1 for s in every if s.tag is None),
            "other_tag": sum(1 for s in every if s.tag is not None and s.tag != partner_tag),
        },
        products=statuses,
        failed_pages=frozenset(root + p for p in (NOT_FOUND_PATH, ERROR_PATH, STALE_PATH)),
        scanned_pages=frozenset(links),
        links=links,
        disallowed_pages=frozenset({root + PRIVATE_PATH}),
        redirect_urls=frozenset(b.redirects),
        non_html_urls=frozenset(root + p for p in (PDF_PATH, IMAGE_PATH, FEED_PATH)),
    )
    return DemoSite(
        host=host,
        base_url=base,
        partner_tag=partner_tag,
        seed=seed,
        resources=resources,
        short_links=b.short,
        not_found=not_found,
        catalogue=catalogue,
        expected=expected,
        products=product_by_key,
        cloak_prefixes=(f"{base}go/",),
        decoy_asins=frozenset([*decoy_asins, private_asin, feed_asin, pdf_asin]),
    )


# --------------------------------------------------------------------------- server


def create_app(site: DemoSite) -> web.Application:
    """An aiohttp application serving ``site`` (any Host but the short-link hosts)."""
    short = site.short_links
    pages = site.resources
    not_found = site.not_found

    async def handle(request: web.Request) -> web.Response:
        table = short.get(_strip_port(request.host).lower(), pages)
        res = (table.get(request.path_qs) if request.query_string else None) or table.get(
            request.path, not_found
        )
        return web.Response(status=res.status, body=res.body, headers=res.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@dataclass(frozen=True)
class RunningSite:
    """A served site.

    ``url`` (``http://127.0.0.1:PORT/``) reaches the server directly; the
    pages, though, name ``site_url`` (``http://demo.example/``) and
    ``http://amzn.to/...``: crawl ``site_url`` with the ``connect_to``
    mappings (curl ``--connect-to`` format ``HOST:PORT:HOST2:PORT2``).
    """

    url: str
    port: int
    connect_to: list[str]
    site: DemoSite

    @property
    def site_url(self) -> str:
        return self.site.base_url


def connect_to(site: DemoSite, host: str, port: int) -> list[str]:
    """curl ``--connect-to`` mappings sending the site's and short-link hosts to host:port."""
    return [f"{name}:{p}:{host}:{port}" for name in (site.host, *SHORT_HOSTS) for p in (80, 443)]


@asynccontextmanager
async def running_site(
    site: DemoSite, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSite]:
    """Serve ``site`` on ``host:port`` (0: any free port) for the duration of the block."""
    runner = web.AppRunner(create_app(site), access_log=None)
    await runner.setup()
    try:
        tcp = web.TCPSite(runner, host, port)
        await tcp.start()
        actual = int(runner.addresses[0][1])
        yield RunningSite(
            url=f"http://{host}:{actual}/",
            port=actual,
            connect_to=connect_to(site, host, actual),
            site=site,
        )
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ccbb.sandbox.demo_site", description="Serve a generated affiliate site."
    )
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--page-bytes", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--products", type=int, default=None)
    parser.add_argument("--partner-tag", default="demo-20")
    parser.add_argument("--host-name", default="demo.example", help="the site's host name")
    parser.add_argument("--bind", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--expected-json", type=Path, help="write the ground truth here")
    parser.add_argument("--catalogue-json", type=Path, help="write the API catalogue here")
    args = parser.parse_args(argv)
    site = generate_site(
        args.pages,
        seed=args.seed,
        page_bytes=args.page_bytes,
        partner_tag=args.partner_tag,
        host=args.host_name,
        products=args.products,
    )
    if args.expected_json:
        args.expected_json.write_text(json.dumps(site.expected.to_dict(), indent=1))
    if args.catalogue_json:
        args.catalogue_json.write_text(json.dumps(site.catalogue, indent=1))

    async def serve() -> None:
        async with running_site(site, args.bind, args.port) as running:
            print(running.url, flush=True)
            await asyncio.Event().wait()

    with suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
