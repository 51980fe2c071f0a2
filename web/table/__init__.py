"""The report's detailed table as the query string gives it (pure, as in encode/hostedapi's
``source/``): :mod:`.search` reads the filters, :mod:`.ordering` the sort and the column
links, :mod:`.pagination` the page and the page links. Every link keeps the others' values and
lands on the table (``#table``)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

ANCHOR = "table"
# every parameter the table reads, in the order links write them, with its default
DEFAULTS = {
    "per": "product", "status": "", "asin": "", "name": "", "page_url": "", "sort": "",
    "dir": "asc", "page": "1",
}  # fmt: skip


def link(values: Mapping[str, str], **changes: str | int) -> str:
    """``?…#table`` for ``values`` with ``changes``; parameters at their default are left out."""
    merged = {k: str(v) for k, v in {**values, **changes}.items()}
    kept = {k: merged[k] for k in DEFAULTS if merged.get(k, DEFAULTS[k]) != DEFAULTS[k]}
    return f"?{urlencode(kept)}#{ANCHOR}" if kept else f"?#{ANCHOR}"
