"""Where ASINs hide in a URL: pure functions, no I/O.

Only known URL shapes are matched (DESIGN §3); a 10-character token elsewhere is never an ASIN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

# Top-level domains of the Amazon marketplaces, and the marketplace name the Creators API uses.
AMAZON_TLDS = (
    "com", "co.uk", "de", "fr", "it", "es", "ca", "co.jp", "in", "com.mx", "com.br",
    "com.au", "nl", "se", "pl", "sg", "ae", "sa", "com.tr", "com.be", "eg",
)  # fmt: skip
_HOST_PREFIXES = ("", "www.", "smile.", "m.")
AMAZON_HOSTS: dict[str, str] = {
    f"{prefix}amazon.{tld}": f"www.amazon.{tld}" for tld in AMAZON_TLDS for prefix in _HOST_PREFIXES
}
SHORT_LINK_HOSTS = frozenset({"amzn.to", "amzn.eu", "amzn.asia", "a.co"})

# Country codes as widgets (MarketPlace=) and the CLI (--country) spell them.
COUNTRY_MARKETPLACES: dict[str, str] = {
    "US": "www.amazon.com", "UK": "www.amazon.co.uk", "GB": "www.amazon.co.uk",
    "DE": "www.amazon.de", "FR": "www.amazon.fr", "IT": "www.amazon.it", "ES": "www.amazon.es",
    "CA": "www.amazon.ca", "JP": "www.amazon.co.jp", "IN": "www.amazon.in",
    "MX": "www.amazon.com.mx", "BR": "www.amazon.com.br", "AU": "www.amazon.com.au",
    "NL": "www.amazon.nl", "SE": "www.amazon.se", "PL": "www.amazon.pl", "SG": "www.amazon.sg",
    "AE": "www.amazon.ae", "SA": "www.amazon.sa", "TR": "www.amazon.com.tr",
    "BE": "www.amazon.com.be", "EG": "www.amazon.eg",
}  # fmt: skip
# `o=` of the old rcm widgets.
_RCM_O_CODES = {"1": "US", "2": "GB", "3": "DE", "8": "FR", "9": "JP", "15": "CA", "29": "IT",
                "30": "ES", "31": "IN"}  # fmt: skip
_WIDGET_REGION_DEFAULT = {"na": "US", "eu": "GB", "fe": "JP"}
_WIDGET_HOST = re.compile(r"^(?:ws|rcm)-(na|eu|fe)\.amazon-adsystem\.com$")

ASIN_RE = re.compile(r"^(?:B0[0-9A-Z]{8}|\d{9}[\dX])$")
_PATH_ASIN = re.compile(
    r"/(?:dp/product|dp|gp/product/customer-reviews|gp/product|gp/aw/d|gp/offer-listing"
    r"|product-reviews|exec/obidos/tg/detail/-|exec/obidos/asin|o/asin)/([0-9a-z]{10})"
    r"(?=[/?#;&]|%3F|$)",  # %3F: old API detail-page URLs put their query in the path
    re.IGNORECASE,
)
_OBIDOS_TAG = re.compile(r"/(?:exec/obidos/asin|o/asin)/[0-9a-z]{10}/(?:.*/)?([^/?#]+)/?$", re.I)
# What a partner tag (tracking ID) looks like: ``yourname-20`` (the scan forms and the CLI too).
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*-\d{2,3}$")
_QUERY_ASIN_KEYS = ("asin", "creativeasin", "asin.1")

LinkKind = Literal["direct", "short", "cloaked", "widget"]


@dataclass(frozen=True, slots=True)
class AmazonTarget:
    """What an Amazon URL leads to: products on one marketplace, and the tag it carries."""

    marketplace: str
    asins: tuple[str, ...]
    tag: str | None
    is_widget: bool = False

    def __reduce__(
        self,
    ) -> tuple[type[AmazonTarget], tuple[str, tuple[str, ...], str | None, bool]]:
        # page workers pickle one per link: the frozen-slots default (__setstate__ walking the
        # dataclass fields) cost the crawler's process 1.2 s of a 5,000-page crawl (profiled)
        return (AmazonTarget, (self.marketplace, self.asins, self.tag, self.is_widget))


def normalize_asin(token: str) -> str | None:
    """Upper-cased ASIN when ``token`` has the shape of one, else None."""
    asin = token.upper()
    return asin if ASIN_RE.match(asin) else None


def host_of(url: str) -> str:
    """Lower-cased host of an absolute URL, without port or credentials ('' if none)."""
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""


def is_amazon_host(host: str) -> bool:
    return host in AMAZON_HOSTS


def could_be_amazon(url: str) -> bool:
    """Cheap pre-filter before the real parse: is 'amazon' or a short host in the URL at all?"""
    low = url.lower()
    return "amazon" in low or "amzn." in low or "a.co/" in low


def _query(query: str) -> dict[str, str]:
    """First value of each query key, keys lower-cased; a bare `&region=` stays a key."""
    out: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        out.setdefault(key.lower(), value)
    return out


def _split_asins(value: str) -> tuple[str, ...]:
    found = (normalize_asin(part.strip()) for part in re.split(r"[,\s]+", value))
    return tuple(dict.fromkeys(a for a in found if a))


def parse_amazon_url(url: str) -> AmazonTarget | None:
    """The products an absolute URL leads to, or None if it is not an Amazon product URL.

    Handles product pages on every marketplace (all path shapes of DESIGN §3, ``asin=`` style
    queries) and the product widgets (``ws-*``/``rcm-*`` adsystem hosts, ``rcm.amazon.*``).
    Short links are not product URLs: they must be resolved first.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", ""):
        return None
    query = _query(parts.query) if parts.query else {}

    marketplace = AMAZON_HOSTS.get(host)
    if marketplace is not None:
        match = _PATH_ASIN.search(parts.path)
        asin = normalize_asin(match.group(1)) if match else None
        if match and parts.path[match.end() : match.end() + 3].upper() == "%3F":
            # ``/dp/A%3FSubscriptionId%3D…%26tag%3Dme-22``: the tag inside counts too
            encoded = _query(unquote(parts.path[match.end() + 3 :]))
            query = {**encoded, **query}
        if asin is None:
            for key in _QUERY_ASIN_KEYS:
                if key in query and (asin := normalize_asin(query[key])):
                    break
        if asin is None:
            return None
        tag = query.get("tag") or None
        if tag is None and (obidos := _OBIDOS_TAG.search(parts.path)):
            candidate = obidos.group(1)
            tag = candidate if TAG_RE.match(candidate) else None
        return AmazonTarget(marketplace, (asin,), tag)

    return _parse_widget(host, parts.path, query)


def _parse_widget(host: str, path: str, query: dict[str, str]) -> AmazonTarget | None:
    if host.startswith("rcm.amazon.") and path.startswith("/e/cm"):
        marketplace = AMAZON_HOSTS.get("www." + host.removeprefix("rcm."))
        tag = query.get("t") or query.get("tracking_id") or None
    elif (widget := _WIDGET_HOST.match(host)) is not None:
        region = _WIDGET_REGION_DEFAULT[widget.group(1)]
        code = (
            query.get("marketplace")
            or query.get("region")
            or _RCM_O_CODES.get(query.get("o", ""), region)
        )
        marketplace = COUNTRY_MARKETPLACES.get(code.upper())
        tag = query.get("tracking_id") or query.get("t") or None
    else:
        return None
    if marketplace is None:
        return None
    asins = _split_asins(query.get("asins", "") or query.get("asin", ""))
    if not asins:
        return None
    return AmazonTarget(marketplace, asins, tag, is_widget=True)


def marketplace_for_country(country: str) -> str | None:
    """``www.amazon.co.uk`` for ``UK``/``GB``; None for an unknown country code."""
    return COUNTRY_MARKETPLACES.get(country.strip().upper())
