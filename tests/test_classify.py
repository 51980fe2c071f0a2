"""The status mapping of DESIGN §2, as tables: ``classify`` for one ASIN, ``verdicts_for`` for the
items and per-item errors of one response."""

from __future__ import annotations

import pytest

from scanner.amazon import verdicts_for
from scanner.classify import (
    AVAILABLE_TYPES,
    OUT_OF_STOCK_TYPES,
    REMOVED_ERROR_CODES,
    ItemError,
    ItemFacts,
    Listing,
    Status,
    Verdict,
    classify,
)

ASIN = "B000000001"


def item(*listings: Listing, asin: str = ASIN) -> ItemFacts:
    return ItemFacts(asin, "A title", f"https://www.amazon.com/dp/{asin}", tuple(listings))


def one(kind: str | None, message: str | None = None) -> ItemFacts:
    return item(Listing(kind, message, True))


# --------------------------------------------------------------------------
# classify: items returned by Amazon
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # every available type, with the stock as the API states it
        pytest.param(
            one("IN_STOCK", "In Stock"), Verdict(Status.AVAILABLE, "In Stock"), id="in-stock"
        ),
        pytest.param(
            one("IN_STOCK_SCARCE", "Only 2 left in stock - order soon."),
            Verdict(Status.AVAILABLE, "Only 2 left in stock - order soon."),
            id="in-stock-scarce",
        ),
        pytest.param(
            one("PREORDER", "Available for pre-order."),
            Verdict(Status.AVAILABLE, "Available for pre-order."),
            id="preorder",
        ),
        pytest.param(
            one("LEADTIME", "Usually ships within 2 to 3 weeks."),
            Verdict(Status.AVAILABLE, "Usually ships within 2 to 3 weeks."),
            id="leadtime",
        ),
        pytest.param(
            one("AVAILABLE_DATE", "This item will be released on October 15, 2026."),
            Verdict(Status.AVAILABLE, "This item will be released on October 15, 2026."),
            id="available-date",
        ),
        # without a message the type itself is what the report shows
        pytest.param(one("IN_STOCK"), Verdict(Status.AVAILABLE, "IN_STOCK"), id="no-message"),
        pytest.param(
            one("in_stock", "In Stock"), Verdict(Status.AVAILABLE, "In Stock"), id="lower-case"
        ),
        # out of stock
        pytest.param(
            one("OUT_OF_STOCK", "Currently unavailable."),
            Verdict(Status.OUT_OF_STOCK, "Currently unavailable."),
            id="out-of-stock",
        ),
        pytest.param(
            one("UNAVAILABLE", "We don't know when or if this item will be back in stock."),
            Verdict(
                Status.OUT_OF_STOCK, "We don't know when or if this item will be back in stock."
            ),
            id="unavailable",
        ),
        pytest.param(item(), Verdict(Status.OUT_OF_STOCK, None), id="no-listings"),
        # availability unknown
        pytest.param(
            one("UNKNOWN"),
            Verdict(Status.ERROR, "UNKNOWN", "availability unknown (UNKNOWN)"),
            id="unknown",
        ),
        pytest.param(
            one("BACKORDERED_SOMEDAY", "Maybe later"),
            Verdict(Status.ERROR, "Maybe later", "availability unknown (BACKORDERED_SOMEDAY)"),
            id="unrecognised-type",
        ),
        pytest.param(
            one(None), Verdict(Status.ERROR, None, "availability unknown (missing)"), id="no-type"
        ),
        pytest.param(
            one("", "Ask later"),
            Verdict(Status.ERROR, "Ask later", "availability unknown (missing)"),
            id="empty-type",
        ),
    ],
)
def test_classify_item(facts: ItemFacts, expected: Verdict) -> None:
    assert classify(facts) == expected


@pytest.mark.parametrize("kind", sorted(AVAILABLE_TYPES))
def test_every_available_type(kind: str) -> None:
    assert classify(one(kind)).status is Status.AVAILABLE


@pytest.mark.parametrize("kind", sorted(OUT_OF_STOCK_TYPES))
def test_every_out_of_stock_type(kind: str) -> None:
    assert classify(one(kind)).status is Status.OUT_OF_STOCK


def test_the_mapping_has_the_types_of_the_design() -> None:
    assert {"IN_STOCK", "IN_STOCK_SCARCE", "PREORDER", "LEADTIME", "AVAILABLE_DATE"} == (
        AVAILABLE_TYPES
    )
    assert {"OUT_OF_STOCK", "UNAVAILABLE"} == OUT_OF_STOCK_TYPES
    assert {"InvalidParameterValue", "ItemNotFound", "InvalidItemId"} == REMOVED_ERROR_CODES


@pytest.mark.parametrize(
    ("listings", "expected"),
    [
        pytest.param(
            (
                Listing("OUT_OF_STOCK", "Currently unavailable.", False),
                Listing("IN_STOCK", "In Stock", True),
            ),
            Verdict(Status.AVAILABLE, "In Stock"),
            id="winner-second-in-stock",
        ),
        pytest.param(
            (
                Listing("IN_STOCK", "In Stock", False),
                Listing("OUT_OF_STOCK", "Currently unavailable.", True),
            ),
            Verdict(Status.OUT_OF_STOCK, "Currently unavailable."),
            id="winner-second-out-of-stock",
        ),
        pytest.param(
            (
                Listing("IN_STOCK", "In Stock", False),
                Listing("PREORDER", "Pre-order", False),
                Listing("UNKNOWN", None, True),
            ),
            Verdict(Status.ERROR, "UNKNOWN", "availability unknown (UNKNOWN)"),
            id="winner-last-unknown",
        ),
        pytest.param(
            (
                Listing("LEADTIME", "Ships in 3 weeks", False),
                Listing("OUT_OF_STOCK", "Currently unavailable.", False),
            ),
            Verdict(Status.AVAILABLE, "Ships in 3 weeks"),
            id="no-winner-first-listing",
        ),
        pytest.param(
            (
                Listing("UNAVAILABLE", "Unavailable", False),
                Listing("IN_STOCK", "In Stock", False),
            ),
            Verdict(Status.OUT_OF_STOCK, "Unavailable"),
            id="no-winner-first-listing-out",
        ),
    ],
)
def test_buy_box_winner_over_first_listing(
    listings: tuple[Listing, ...], expected: Verdict
) -> None:
    assert classify(item(*listings)) == expected


# --------------------------------------------------------------------------
# classify: per-item errors and absent items
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            ItemError("InvalidParameterValue", f"The ItemId {ASIN} provided is invalid."),
            Verdict(
                Status.REMOVED,
                None,
                f"InvalidParameterValue: The ItemId {ASIN} provided is invalid.",
            ),
            id="invalid-parameter-value",
        ),
        pytest.param(
            ItemError("ItemNotFound", f"The ItemId {ASIN} was not found."),
            Verdict(Status.REMOVED, None, f"ItemNotFound: The ItemId {ASIN} was not found."),
            id="item-not-found",
        ),
        pytest.param(
            ItemError("InvalidItemId", f"{ASIN} is not a valid item id."),
            Verdict(Status.REMOVED, None, f"InvalidItemId: {ASIN} is not a valid item id."),
            id="invalid-item-id",
        ),
        pytest.param(
            ItemError("ItemNotAccessible", f"The ItemId {ASIN} is not accessible."),
            Verdict(Status.ERROR, None, f"ItemNotAccessible: The ItemId {ASIN} is not accessible."),
            id="item-not-accessible",
        ),
        pytest.param(
            ItemError("SomethingNew", f"Amazon cannot tell about {ASIN} today."),
            Verdict(Status.ERROR, None, f"SomethingNew: Amazon cannot tell about {ASIN} today."),
            id="other-code",
        ),
        pytest.param(
            None, Verdict(Status.REMOVED, None, "not returned by Amazon"), id="simply-absent"
        ),
    ],
)
def test_classify_absent_item(error: ItemError | None, expected: Verdict) -> None:
    assert classify(None, error) == expected


def test_an_error_with_its_message_for_other_codes() -> None:
    verdict = classify(None, ItemError("ItemNotAccessible", "Not through this API, sorry."))
    assert verdict.status is Status.ERROR
    assert verdict.reason is not None
    assert "Not through this API, sorry." in verdict.reason


def test_an_item_returned_wins_over_an_error() -> None:
    verdict = classify(one("IN_STOCK", "In Stock"), ItemError("ItemNotFound", ASIN))
    assert verdict == Verdict(Status.AVAILABLE, "In Stock")


# --------------------------------------------------------------------------
# verdicts_for: one response mapped onto the ASINs asked for
# --------------------------------------------------------------------------

A, B, C = "B0AAAAAAAA", "B0BBBBBBBB", "B0CCCCCCCC"


def err(code: str, message: str) -> ItemError:
    return ItemError(code, message)


@pytest.mark.parametrize(
    ("asins", "items", "errors", "expected"),
    [
        pytest.param(
            [A, B],
            [ItemFacts(A, None, None, (Listing("IN_STOCK", "In Stock", True),))],
            [err("ItemNotFound", f"The ItemId {B} was not found.")],
            {A: Status.AVAILABLE, B: Status.REMOVED},
            id="item-and-error-named-in-message",
        ),
        pytest.param(
            [A, B, C],
            [],
            [
                err("ItemNotAccessible", f"The ItemId {C} is not accessible."),
                err("InvalidParameterValue", f"The ItemId {A} provided is invalid."),
            ],
            {A: Status.REMOVED, B: Status.REMOVED, C: Status.ERROR},
            id="errors-in-any-order-absent-is-removed",
        ),
        pytest.param(
            [A, B],
            [],
            [err("ItemNotAccessible", f"The ItemId {A.lower()} is not accessible.")],
            {A: Status.ERROR, B: Status.REMOVED},
            id="asin-named-in-lower-case",
        ),
        pytest.param(
            [A, B, C],
            [],
            [err("ItemNotAccessible", f"The ItemIds {A}, {C} are not accessible.")],
            {A: Status.ERROR, B: Status.REMOVED, C: Status.ERROR},
            id="one-error-naming-two-asins",
        ),
        pytest.param(
            [A, B],
            [ItemFacts(A, None, None, ())],
            [err("ItemNotAccessible", "This item is not accessible.")],
            {A: Status.OUT_OF_STOCK, B: Status.ERROR},
            id="unnamed-error-and-one-missing-asin",
        ),
        pytest.param(
            [A, B, C],
            [ItemFacts(A, None, None, ())],
            [err("ItemNotAccessible", "This item is not accessible.")],
            {A: Status.OUT_OF_STOCK, B: Status.REMOVED, C: Status.REMOVED},
            id="unnamed-error-two-missing-asins-not-guessed",
        ),
        pytest.param(
            [A],
            [],
            [],
            {A: Status.REMOVED},
            id="nothing-at-all",
        ),
        pytest.param(
            [A, B],
            [],
            [
                err("ItemNotAccessible", f"The ItemId {A} is not accessible."),
                err("ItemNotFound", f"The ItemId {A} was not found."),
            ],
            {A: Status.ERROR, B: Status.REMOVED},
            id="first-error-naming-an-asin-wins",
        ),
    ],
)
def test_verdicts_for(
    asins: list[str],
    items: list[ItemFacts],
    errors: list[ItemError],
    expected: dict[str, Status],
) -> None:
    out = verdicts_for(asins, items, errors)
    assert list(out) == asins
    assert {asin: verdict.status for asin, (_, verdict) in out.items()} == expected


def test_verdicts_for_keeps_the_item_and_the_error_message() -> None:
    kettle = ItemFacts(A, "Kettle", f"https://www.amazon.com/dp/{A}", (Listing("IN_STOCK"),))
    out = verdicts_for(
        [A, B, C],
        [kettle],
        [err("ItemNotAccessible", f"The ItemId {B} is not accessible through the Creators API.")],
    )
    assert out[A] == (kettle, Verdict(Status.AVAILABLE, "IN_STOCK"))
    assert out[B] == (
        None,
        Verdict(
            Status.ERROR,
            None,
            f"ItemNotAccessible: The ItemId {B} is not accessible through the Creators API.",
        ),
    )
    assert out[C] == (None, Verdict(Status.REMOVED, None, "not returned by Amazon"))


def test_verdicts_for_items_named_in_lower_case() -> None:
    out = verdicts_for([A], [ItemFacts(A.lower(), "Kettle", None, (Listing("IN_STOCK"),))], [])
    assert out[A][1].status is Status.AVAILABLE
