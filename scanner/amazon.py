"""Product checks: what a lookup answers (:class:`ProductResult`), the credentials refused before
any request (:func:`check_access`), and how one response maps onto the ASINs asked for. Pure.

The client itself, which talks to Amazon, is :mod:`scanner.creators_api` (the Amazon library it
uses takes a second to import: it is imported only where a scan or a connection test runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scanner.classify import ItemError, ItemFacts, Status, Verdict, classify
from scanner.settings import AmazonAccess

MAX_ASINS_PER_REQUEST = 10
_VERSIONS = ("2.1", "2.2", "2.3", "3.1", "3.2", "3.3")


class AmazonAccountError(Exception):
    """Amazon refuses this account: no lookup can succeed until the user fixes it."""


@dataclass(frozen=True, slots=True)
class ProductResult:
    asin: str
    marketplace: str
    status: Status
    title: str | None = None
    availability: str | None = None
    detail_page_url: str | None = None
    error: str | None = None


OLD_KEYS = (
    "these are old Product Advertising API 5.0 keys (AKIA…), which Amazon retired in "
    "2026: create Creators API credentials in Associates Central (Tools > Creators API) "
    "and use their Credential ID and Credential Secret"
)


def is_old_paapi_key(credential_id: str) -> bool:
    """A Product Advertising API 5.0 access key (AKIA…), not a Creators API Credential ID."""
    return credential_id.strip().upper().startswith("AKIA")


def check_access(access: AmazonAccess) -> None:
    """Refuse, before any request, credentials that cannot work. Raises AmazonAccountError."""
    if is_old_paapi_key(access.credential_id):
        raise AmazonAccountError(OLD_KEYS)
    if not access.credential_id.strip() or not access.credential_secret.strip():
        raise AmazonAccountError(
            "no Amazon credentials: give the Credential ID and Credential Secret of your "
            "Creators API credentials (Associates Central > Tools > Creators API)"
        )
    if access.version not in _VERSIONS:
        raise AmazonAccountError(
            f"unknown credential version {access.version!r}: use the version shown next to the "
            "credential in Associates Central (2.1 North America, 2.2 Europe, 2.3 Far East, "
            "or 3.1/3.2/3.3)"
        )
    if not access.partner_tag.strip():
        raise AmazonAccountError(
            "no partner tag: give your Associates tracking ID (it looks like yourname-20)"
        )


def verdicts_for(
    asins: Sequence[str], items: Sequence[ItemFacts], errors: Sequence[ItemError]
) -> dict[str, tuple[ItemFacts | None, Verdict]]:
    """Map one response (items + per-item errors) onto the requested ASINs. Pure."""
    by_asin = {item.asin.upper(): item for item in items}
    error_for: dict[str, ItemError] = {}
    unattributed: list[ItemError] = []
    for error in errors:
        named = [a for a in asins if a in error.message.upper()]
        for asin in named:
            error_for.setdefault(asin, error)
        if not named:
            unattributed.append(error)
    missing = [a for a in asins if a not in by_asin and a not in error_for]
    if len(missing) == 1 and len(unattributed) == 1:
        error_for[missing[0]] = unattributed[0]
    out: dict[str, tuple[ItemFacts | None, Verdict]] = {}
    for asin in asins:
        item = by_asin.get(asin)
        out[asin] = (item, classify(item, error_for.get(asin)))
    return out
