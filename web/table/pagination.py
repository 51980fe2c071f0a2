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


def get_page_number(params: Mapping[str, str]) -> int:
    try:
        return max(1, min(int(params.get("page", "1")), 10**9))
    except ValueError:
        return 1


def get_page_controls(values: Mapping[str, str], number: int, last: int) -> PageControls:
    return PageControls(
        number,
        last,
        link(values, page=number - 1) if number > 1 else None,
        link(values, page=number + 1) if number < last else None,
    )
