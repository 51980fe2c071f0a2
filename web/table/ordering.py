"""The table's order from the query string, and the column headers' links. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from web.table import link


@dataclass(frozen=True, slots=True)
class Ordering:
    sort: str = ""  # '' is the default order
    descending: bool = False

    def values(self) -> dict[str, str]:
        return {"sort": self.sort, "dir": "desc" if self.descending else "asc"}


@dataclass(frozen=True, slots=True)
class ColumnControl:
    id: str
    label: str
    href: str | None  # None: not sortable
    arrow: str  # "▲", "▼" or ""


def get_ordering(params: Mapping[str, str], allowed: Sequence[str]) -> Ordering:
    """The sort of the query string if it is one of ``allowed``, else the default."""
    sort = params.get("sort", "")
    return Ordering(sort if sort in allowed else "", params.get("dir") == "desc")


def get_column_controls(
    values: Mapping[str, str], columns: Sequence[tuple[str, str, bool]], ordering: Ordering
) -> list[ColumnControl]:
    """One header per (id, label, sortable): a click sorts by it, a second click reverses;
    back on the first page."""
    out = []
    for column, label, sortable in columns:
        current = ordering.sort == column
        arrow = ("▼" if ordering.descending else "▲") if current else ""
        href = None
        if sortable:
            descending = current and not ordering.descending
            href = link(values, sort=column, dir="desc" if descending else "asc", page=1)
        out.append(ColumnControl(column, label, href, arrow))
    return out
