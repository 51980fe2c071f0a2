"""Product status from what the Creators API said: one pure function (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    AVAILABLE = "available"
    REMOVED = "removed"
    OUT_OF_STOCK = "out_of_stock"
    ERROR = "error"
    # found on the site, never asked of Amazon: the scan was cancelled or stopped first
    NOT_CHECKED = "not_checked"


AVAILABLE_TYPES = frozenset(
    {"IN_STOCK", "IN_STOCK_SCARCE", "PREORDER", "LEADTIME", "AVAILABLE_DATE"}
)
OUT_OF_STOCK_TYPES = frozenset({"OUT_OF_STOCK", "UNAVAILABLE"})
REMOVED_ERROR_CODES = frozenset({"InvalidParameterValue", "ItemNotFound", "InvalidItemId"})


@dataclass(frozen=True, slots=True)
class Listing:
    availability_type: str | None
    availability_message: str | None = None
    is_buy_box_winner: bool = False


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """The parts of a Creators API item the status depends on, as plain data."""

    asin: str
    title: str | None = None
    detail_page_url: str | None = None
    listings: tuple[Listing, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    availability: str | None = None  # the stock as the API states it
    reason: str | None = None  # why the status is `error` (or `removed`)


def classify(item: ItemFacts | None, error: ItemError | None = None) -> Verdict:
    """Status of one requested ASIN.

    ``item`` is what came back in ``items`` (None when absent), ``error`` the per-item error that
    names it (None when there is none). An ASIN asked for that is simply absent is ``removed``.
    """
    if item is not None:
        if not item.listings:
            return Verdict(Status.OUT_OF_STOCK, None, None)
        listing = next((x for x in item.listings if x.is_buy_box_winner), item.listings[0])
        kind = (listing.availability_type or "").upper()
        shown = listing.availability_message or listing.availability_type
        if kind in AVAILABLE_TYPES:
            return Verdict(Status.AVAILABLE, shown)
        if kind in OUT_OF_STOCK_TYPES:
            return Verdict(Status.OUT_OF_STOCK, shown)
        label = kind or "missing"
        return Verdict(Status.ERROR, shown, f"availability unknown ({label})")
    if error is None:
        return Verdict(Status.REMOVED, None, "not returned by Amazon")
    if error.code in REMOVED_ERROR_CODES:
        return Verdict(Status.REMOVED, None, f"{error.code}: {error.message}")
    return Verdict(Status.ERROR, None, f"{error.code}: {error.message}")
