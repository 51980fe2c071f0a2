"""The report's detailed table, made once when a scan finishes, so that the dashboard shows any
page of it — filtered by status or ASIN, sorted by any column either way — in a few indexed
reads, whatever the size of the scan.

- ``scan_row``: one row per product × Amazon link as written on the site (a product no link
  led to has one row without link), with its number of pages and the first
  :data:`PAGES_SHOWN` of them. ``seq`` is its place in the default order: ASIN, marketplace,
  link.
- ``scan_order``: for each sortable column, each direction and each status filter ('' = all),
  the rows' ``seq`` in that order, packed as uint32. Ties keep the default order, in both
  directions. Strings compare by code point, on every database.
- ``scan_audit``: the tag audit's links to fix, most used first.

:func:`write` is called by :func:`store.scans.finish_scan` inside its transaction.
"""

from __future__ import annotations

import sys
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.classify import Status
from scanner.scan import ScanReport

SORTS = ("name", "asin", "link", "status", "stock", "href", "pages")
STATUSES = tuple(s.value for s in Status)
PAGES_SHOWN = 20  # pages kept with each row; the CSV export reads the others from scan_link
AUDIT_LIMIT = 100
ROW_COLUMNS = (
    "scan_id", "seq", "marketplace", "asin", "status", "title", "availability",
    "detail_page_url", "href", "pages_count", "pages",
)  # fmt: skip
ORDER_COLUMNS = ("scan_id", "sort", "descending", "status", "rows", "seqs")
AUDIT_COLUMNS = ("scan_id", "seq", "href", "tag", "pages", "links")


@dataclass(slots=True)
class Row:
    marketplace: str
    asin: str
    status: str
    title: str | None
    availability: str | None
    detail_page_url: str | None
    href: str | None
    pages_count: int
    pages: list[str]  # the first PAGES_SHOWN, sorted


# the sortable columns, as the table shows them (what an empty value sorts as included)
SORT_KEYS: dict[str, Callable[[Any], Any]] = {
    "name": lambda r: r.title or "",
    "asin": lambda r: r.asin,
    "link": lambda r: r.detail_page_url or "",
    "status": lambda r: r.status,
    "stock": lambda r: r.availability or "",
    "href": lambda r: r.href or "",
    "pages": lambda r: r.pages_count,
}


def default_key(r: Any) -> tuple[str, str, str]:
    return (r.asin, r.marketplace, r.href or "")


def sort_rows(rows: Sequence[Any], sort: str, descending: bool) -> list[Any]:
    """``rows`` in the table's order: by ``sort`` (a key of SORT_KEYS, or '' for the default
    order), ties in the default order."""
    ordered = sorted(rows, key=default_key)
    if not sort:
        return ordered
    return sorted(ordered, key=SORT_KEYS[sort], reverse=descending)  # stable both ways


def pack(seqs: Sequence[int]) -> bytes:
    packed = array("I", seqs)
    assert packed.itemsize == 4
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack(data: bytes) -> list[int]:
    packed = array("I")
    assert packed.itemsize == 4
    packed.frombytes(data[: len(data) - len(data) % 4])
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def table_rows(report: ScanReport) -> list[Row]:
    """The detailed table of ``report``, in the default order."""
    pages: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for link in report.links:
        target = link.target
        for asin in target.asins:
            pages[(target.marketplace, asin)][link.href].add(link.page)
    rows: list[Row] = []
    for (marketplace, asin), p in report.products.items():
        status = Status(p.status).value
        by_href = pages.get((marketplace, asin))
        if not by_href:
            rows.append(Row(marketplace, asin, status, p.title, p.availability,
                            p.detail_page_url, None, 0, []))  # fmt: skip
            continue
        for href, on in by_href.items():
            shown = sorted(on)[:PAGES_SHOWN]
            rows.append(Row(marketplace, asin, status, p.title, p.availability,
                            p.detail_page_url, href, len(on), shown))  # fmt: skip
    rows.sort(key=default_key)
    return rows


def orders(rows: Sequence[Row]) -> Iterator[tuple[str, bool, str, list[int]]]:
    """(sort, descending, status, seqs) for every sort, direction and status filter."""
    seq_order = range(len(rows))
    status_of = [r.status for r in rows]
    for sort in SORTS:
        keys = [SORT_KEYS[sort](r) for r in rows]
        for descending in (False, True):
            if sort == "asin" and not descending:
                ordered: Sequence[int] = seq_order
            else:  # stable: ties stay in seq order, whatever the direction
                ordered = sorted(seq_order, key=keys.__getitem__, reverse=descending)
            by_status: dict[str, list[int]] = {s: [] for s in STATUSES}
            for seq in ordered:
                by_status.setdefault(status_of[seq], []).append(seq)
            yield sort, descending, "", list(ordered)
            for status, seqs in by_status.items():
                yield sort, descending, status, seqs


def audit(report: ScanReport) -> list[tuple[str, str | None, int, int]]:
    """(href, tag, pages, links) of the links without the partner tag or with another one,
    most link occurrences first (then by link), at most AUDIT_LIMIT."""
    pages: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    links: dict[tuple[str, str | None], int] = defaultdict(int)
    partner = report.partner_tag
    for link in report.links:
        target = link.target
        if not target.asins:
            continue
        tag = target.tag
        if tag and (not partner or tag == partner):
            continue
        key = (link.href, tag)
        pages[key].add(link.page)
        links[key] += 1
    ranked = sorted(links, key=lambda k: (-links[k], k[0], k[1] or ""))[:AUDIT_LIMIT]
    return [(href, tag, len(pages[(href, tag)]), links[(href, tag)]) for href, tag in ranked]


def row_records(scan_id: int, rows: Sequence[Row]) -> Iterator[tuple[Any, ...]]:
    for seq, r in enumerate(rows):
        yield (scan_id, seq, r.marketplace, r.asin, r.status, r.title, r.availability,
               r.detail_page_url, r.href, r.pages_count, "\n".join(r.pages))  # fmt: skip


def order_records(scan_id: int, rows: Sequence[Row]) -> Iterator[tuple[Any, ...]]:
    for sort, descending, status, seqs in orders(rows):
        yield (scan_id, sort, descending, status, len(seqs), pack(seqs))


def audit_records(scan_id: int, report: ScanReport) -> Iterator[tuple[Any, ...]]:
    for seq, (href, tag, pages, links) in enumerate(audit(report)):
        yield (scan_id, seq, href, tag, pages, links)
