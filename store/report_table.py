"""The report's detailed table, as pure functions: its rows (one per product, or one per
product × Amazon link as written on the site), their orders and the tag audit. Made once when
a scan finishes and stored, so that the dashboard shows any page of it — filtered, sorted by
any column either way — in a few indexed reads, whatever the size of the scan; made on the fly
from what was saved for a scan that did not finish (:mod:`store.report_query`). The same
functions order both, so both show the same table.

- ``scan_row``: the rows of both grains. ``seq`` is a row's place in the scan's rows: link
  rows first in the base order (ASIN, marketplace, link), then product rows (ASIN,
  marketplace). Each keeps its number of link occurrences and of pages, the first
  :data:`PAGES_SHOWN` pages, and why an ``error`` is one.
- ``scan_order``: for each grain, sortable column, direction and status filter ('' = all),
  the rows' ``seq`` in that order, packed as uint32. Ties keep the base order, in both
  directions. Strings compare by code point, on every database.
- ``scan_audit``: the tag audit's links to fix, most used first, with their first pages.

:func:`write`-side helpers (``*_records``) are called by :func:`store.scans.finish_scan`
inside its transaction.
"""

from __future__ import annotations

import sys
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.amazon import ProductResult
from scanner.classify import Status
from scanner.crawl import LinkOccurrence
from scanner.report import PROBLEM_ORDER
from scanner.scan import ProductKey, ScanReport

GRAINS = ("product", "link")
# the default order first: problems (removed, out of stock, error, not checked, available),
# most linked first within each
SORTS = ("problems", "name", "asin", "link", "status", "stock", "href", "links", "pages")
STATUSES = tuple(s.value for s in Status)
STATUS_RANK = {s.value: n for n, s in enumerate(PROBLEM_ORDER)}
PAGES_SHOWN = 20  # pages kept with each row; the CSV export reads scan_link
AUDIT_LIMIT = 100
AUDIT_PAGES = 5  # pages kept with each link to fix
ROW_COLUMNS = (
    "scan_id", "seq", "grain", "marketplace", "asin", "status", "title", "availability",
    "detail_page_url", "error", "href", "links_count", "pages_count", "pages",
)  # fmt: skip
ORDER_COLUMNS = ("scan_id", "grain", "sort", "descending", "status", "rows", "seqs")
AUDIT_COLUMNS = ("scan_id", "seq", "href", "tag", "pages", "links", "first_pages")


@dataclass(slots=True)
class Row:
    marketplace: str
    asin: str
    status: str
    title: str | None
    availability: str | None
    detail_page_url: str | None
    error: str | None
    href: str | None  # None in product rows, and for a product no link led to
    links_count: int  # link occurrences
    pages_count: int
    pages: list[str]  # the first PAGES_SHOWN, sorted


@dataclass(slots=True)
class AuditLink:
    href: str
    tag: str | None
    pages: int
    links: int
    first_pages: list[str]  # the first AUDIT_PAGES, sorted


# the sortable columns, as the table shows them (what an empty value sorts as included)
SORT_KEYS: dict[str, Callable[[Any], Any]] = {
    "problems": lambda r: (STATUS_RANK.get(r.status, len(STATUS_RANK)), -r.links_count),
    "name": lambda r: r.title or "",
    "asin": lambda r: r.asin,
    "link": lambda r: r.detail_page_url or "",
    "status": lambda r: STATUS_RANK.get(r.status, len(STATUS_RANK)),
    "stock": lambda r: r.availability or r.error or "",
    "href": lambda r: r.href or "",
    "links": lambda r: r.links_count,
    "pages": lambda r: r.pages_count,
}


def base_key(r: Any) -> tuple[str, str, str]:
    return (r.asin, r.marketplace, r.href or "")


def ordered(rows: Sequence[Any], sort: str, descending: bool) -> list[int]:
    """Positions of ``rows`` (given in the base order) sorted by ``sort`` (a key of SORT_KEYS),
    ties in the base order in both directions. By name, unnamed products come last either way;
    "problems" descending is problems last."""
    seqs = range(len(rows))
    if sort == "name":
        named = [n for n in seqs if rows[n].title]
        titles = {n: rows[n].title for n in named}
        named.sort(key=titles.__getitem__, reverse=descending)  # stable both ways
        return named + [n for n in seqs if not rows[n].title]
    key = SORT_KEYS[sort]
    keys = [key(r) for r in rows]
    return sorted(seqs, key=keys.__getitem__, reverse=descending)


def sort_rows(rows: Sequence[Any], sort: str, descending: bool) -> list[Any]:
    """``rows`` in the table's order (``sort`` '' is the default, "problems")."""
    base = sorted(rows, key=base_key)
    return [base[n] for n in ordered(base, sort or "problems", descending)]


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


def _product_row(p: ProductResult, href: str | None, links: int, on: set[str]) -> Row:
    return Row(
        p.marketplace,
        p.asin,
        Status(p.status).value,
        p.title,
        p.availability,
        p.detail_page_url,
        p.error,
        href,
        links,
        len(on),
        sorted(on)[:PAGES_SHOWN],
    )


def grain_rows(
    products: Mapping[ProductKey, ProductResult], links: Iterable[LinkOccurrence]
) -> dict[str, list[Row]]:
    """The rows of each grain, each in the base order: 'link', one per product × link as
    written on the site (one without link for a product no link led to); 'product', one per
    product."""
    pages: dict[ProductKey, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    counts: dict[tuple[ProductKey, str], int] = defaultdict(int)
    for link in links:
        target = link.target
        for asin in target.asins:
            key = (target.marketplace, asin)
            pages[key][link.href].add(link.page)
            counts[(key, link.href)] += 1
    by_link: list[Row] = []
    by_product: list[Row] = []
    for key, p in products.items():
        by_href = pages.get(key)
        if not by_href:
            by_link.append(_product_row(p, None, 0, set()))
            by_product.append(_product_row(p, None, 0, set()))
            continue
        every: set[str] = set()
        for href, on in by_href.items():
            every |= on
            by_link.append(_product_row(p, href, counts[(key, href)], on))
        total = sum(counts[(key, href)] for href in by_href)
        by_product.append(_product_row(p, None, total, every))
    by_link.sort(key=base_key)
    by_product.sort(key=base_key)
    return {"link": by_link, "product": by_product}


def table_rows(report: ScanReport) -> dict[str, list[Row]]:
    return grain_rows(report.products, report.links)


def seq_offsets(rows: Mapping[str, Sequence[Row]]) -> dict[str, int]:
    """Where each grain's rows start in the scan's ``seq`` numbering."""
    return {"link": 0, "product": len(rows["link"])}


def orders(rows: Sequence[Row], offset: int = 0) -> Iterator[tuple[str, bool, str, list[int]]]:
    """(sort, descending, status, seqs) for every sort, direction and status filter of one
    grain's rows (``offset``: the seq of its first row)."""
    status_of = [r.status for r in rows]
    for sort in SORTS:
        for descending in (False, True):
            order = ordered(rows, sort, descending)
            by_status: dict[str, list[int]] = {s: [] for s in STATUSES}
            for n in order:
                by_status.setdefault(status_of[n], []).append(n + offset)
            yield sort, descending, "", [n + offset for n in order]
            for status, seqs in by_status.items():
                yield sort, descending, status, seqs


def audit(report: ScanReport) -> list[AuditLink]:
    """The links without the partner tag or with another one, most link occurrences first
    (then by link), at most AUDIT_LIMIT, each with the first pages it is on."""
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
    return [
        AuditLink(
            href,
            tag,
            len(pages[(href, tag)]),
            links[(href, tag)],
            sorted(pages[(href, tag)])[:AUDIT_PAGES],
        )
        for href, tag in ranked
    ]


def row_records(scan_id: int, rows: Mapping[str, Sequence[Row]]) -> Iterator[tuple[Any, ...]]:
    offsets = seq_offsets(rows)
    for grain in ("link", "product"):
        for n, r in enumerate(rows[grain]):
            yield (scan_id, offsets[grain] + n, grain, r.marketplace, r.asin, r.status, r.title,
                   r.availability, r.detail_page_url, r.error, r.href, r.links_count,
                   r.pages_count, "\n".join(r.pages))  # fmt: skip


def order_records(scan_id: int, rows: Mapping[str, Sequence[Row]]) -> Iterator[tuple[Any, ...]]:
    offsets = seq_offsets(rows)
    for grain in GRAINS:
        for sort, descending, status, seqs in orders(rows[grain], offsets[grain]):
            yield (scan_id, grain, sort, descending, status, len(seqs), pack(seqs))


def audit_records(scan_id: int, report: ScanReport) -> Iterator[tuple[Any, ...]]:
    for seq, a in enumerate(audit(report)):
        yield (scan_id, seq, a.href, a.tag, a.pages, a.links, "\n".join(a.first_pages))
