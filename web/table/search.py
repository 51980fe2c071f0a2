"""The table's filters from the query string: grain, status, ASIN prefix, name and page
substrings. Pure; anything unknown or too long is dropped, never an error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store.report_table import GRAINS, STATUSES

MAX_TEXT = 200  # characters of a text filter kept


@dataclass(frozen=True, slots=True)
class Filters:
    grain: str = "product"
    status: str = ""
    asin: str = ""
    name: str = ""
    page: str = ""

    def values(self) -> dict[str, str]:
        """As query-string values (see web.table.DEFAULTS)."""
        return {"per": self.grain, "status": self.status, "asin": self.asin,
                "name": self.name, "page_url": self.page}  # fmt: skip

    @property
    def any(self) -> bool:
        return bool(self.status or self.asin or self.name or self.page)


def get_filters(params: Mapping[str, str]) -> Filters:
    grain = params.get("per", "")
    status = params.get("status", "").strip()
    return Filters(
        grain=grain if grain in GRAINS else "product",
        status=status if status in STATUSES else "",
        asin="".join(c for c in params.get("asin", "").strip().upper() if c.isalnum())[:10],
        name=params.get("name", "").strip()[:MAX_TEXT],
        page=params.get("page_url", "").strip()[:MAX_TEXT],
    )
