"""The table's page from the query string, and the links to the pages around it. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from web.table import link


@dataclass(frozen=True, slots=True)
class PageControls:
    number: int
    last: int
    previous: str | None
    next: str | None


MAX_PAGE = 1_000_000  # a page number past every list (clamped to the last page anyway)


def get_page_number(params: Mapping[str, str]) -> int:
    """``?page=`` as a number from 1 to MAX_PAGE (not a number: 1; a huge one: MAX_PAGE)."""
    raw = params.get("page", "1")
    if not (raw.isascii() and raw.isdigit()):
        return 1
    if len(raw) > 7:
        return MAX_PAGE
    return max(1, min(int(raw), MAX_PAGE))


def get_page_controls(values: Mapping[str, str], number: int, last: int) -> PageControls:
    return PageControls(
        number,
        last,
        link(values, page=number - 1) if number > 1 else None,
        link(values, page=number + 1) if number < last else None,
    )
