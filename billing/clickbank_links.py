"""ClickBank links, pure: the pay link of a product, the accept and decline links of a PitchPlus
upsell page, and the thank-you page's ``cbpop`` check.

Parameter order matters to ClickBank in one place: a skinned order form wants ``cbskin`` before
``cbur``. Every link here is written in one fixed order (item, skin, flow, answer, session,
consent, tracking, our variables), so that always holds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

# the one vendor variable we add (ClickBank hands every extra pay-link parameter back in the
# notification's vendorVariables): an opaque, random, single-purpose checkout reference
REFERENCE_PARAM = "ccref"
REFERENCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
DEFAULT_PAY_BASE = "https://{vendor}.pay.clickbank.net/"
VTID_RE = re.compile(r"^[A-Za-z0-9_]{1,24}$")  # ClickBank: up to 24 letters, digits, _


def new_reference() -> str:
    """A fresh checkout reference: 128 random bits, URL-safe; it says nothing about the buyer."""
    return secrets.token_urlsafe(16)


def pay_base(base: str, vendor: str) -> str:
    """The order form's address: ``base`` with ``{vendor}`` filled in, ending in ``/``."""
    url = base.replace("{vendor}", vendor.lower())
    return url if url.endswith("/") else url + "/"


def form_origins(pay_base_url: str) -> tuple[str, ...]:
    """The origins a form to the order form at ``pay_base_url`` reaches: its own, and for
    ClickBank's real one every ``*.clickbank.net`` host its answer may redirect through."""
    parts = urlsplit(pay_base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    host = (parts.hostname or "").lower()
    if host == "clickbank.net" or host.endswith(".clickbank.net"):
        return (origin, "https://*.clickbank.net")
    return (origin,)


def _link(base: str, vendor: str, params: list[tuple[str, str]]) -> str:
    return pay_base(base, vendor) + "?" + urlencode([(k, v) for k, v in params if v])


def pay_link(
    base: str,
    *,
    vendor: str,
    item: str,
    reference: str,
    flow_id: str | None = None,
    skin: str | None = None,
    tracking: str | None = None,
) -> str:
    """The pay link of ``item``: ``cbfid`` starts the upsell flow after the purchase, ``vtid``
    comes back in ``trackingCodes``, the reference in ``vendorVariables``."""
    if tracking and not VTID_RE.match(tracking):
        raise ValueError("vtid: at most 24 letters, digits or _")
    return _link(
        base,
        vendor,
        [
            ("cbitems", item),
            ("cbskin", skin or ""),
            ("cbfid", flow_id or ""),
            ("vtid", tracking or ""),
            (REFERENCE_PARAM, reference),
        ],
    )


def upsell_params(
    *, item: str, accept: bool, cbf: str, skin: str | None = None
) -> list[tuple[str, str]]:
    """The query of an upsell page's accept (``cbur=a``) or decline (``cbur=d``) link, in
    order: ``cbskin`` before ``cbur``, the ``cbf`` session passed through. (A recurring offer's
    consent, ``cbrblaccpt=true``, comes after them: the page's checkbox adds it.)"""
    params = [("cbitems", item)]
    if skin:
        params.append(("cbskin", skin))
    params.append(("cbur", "a" if accept else "d"))
    if cbf:
        params.append(("cbf", cbf))
    return params


def upsell_link(
    base: str,
    *,
    vendor: str,
    item: str,
    accept: bool,
    cbf: str,
    skin: str | None = None,
    recurring_consent: bool = False,
) -> str:
    params = upsell_params(item=item, accept=accept, cbf=cbf, skin=skin)
    if recurring_consent:
        params.append(("cbrblaccpt", "true"))
    return _link(base, vendor, params)


# ---- the thank-you page ----------------------------------------------------------------


def cbpop(secret: str, *, receipt: str, time: str, item: str) -> str:
    """ClickBank's proof of purchase: upper(sha1_hex("secret|receipt|time|item"))[:8]."""
    text = f"{secret}|{receipt}|{time}|{item}"
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest().upper()[:8]


def cbpop_valid(secret: str, params: Mapping[str, str]) -> bool:
    """Does the thank-you page's query carry a valid ``cbpop``?"""
    receipt, time, item = (params.get(k, "") for k in ("cbreceipt", "time", "item"))
    given = params.get("cbpop", "")
    if not (secret and receipt and time and item and given):
        return False
    expected = cbpop(secret, receipt=receipt, time=time, item=item)
    return hmac.compare_digest(expected, given.upper())
