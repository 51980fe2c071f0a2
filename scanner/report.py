"""Reporting: the summary (DESIGN §1 definitions) and the JSON, CSV and text renderings. Pure."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from scanner.amazon import ProductResult
from scanner.classify import Status
from scanner.crawl import LinkOccurrence
from scanner.scan import ProductKey, ScanReport

STATUS_ORDER = (
    Status.AVAILABLE, Status.REMOVED, Status.OUT_OF_STOCK, Status.ERROR, Status.NOT_CHECKED,
)  # fmt: skip
STATUS_LABELS = {
    Status.AVAILABLE: "Available",
    Status.REMOVED: "Removed",
    Status.OUT_OF_STOCK: "Out of stock",
    Status.ERROR: "Error",
    Status.NOT_CHECKED: "Not checked",
}
# what needs fixing first: the report's default order
PROBLEM_ORDER = (
    Status.REMOVED, Status.OUT_OF_STOCK, Status.ERROR, Status.NOT_CHECKED, Status.AVAILABLE,
)  # fmt: skip
# one CSV shape everywhere (the CLI, the dashboard's export, the API): one row per link
# occurrence and product, and one without page or link per product no link led to
CSV_COLUMNS = (
    "page", "href", "kind", "tag", "asin", "marketplace", "title", "status", "availability",
    "error",
)  # fmt: skip
# a cell starting with one of these is a formula to a spreadsheet (OWASP: CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def summary(report: ScanReport) -> dict[str, Any]:
    by_status = Counter(p.status for p in report.products.values())
    tag = report.partner_tag
    missing = sum(1 for link in report.links if not link.target.tag)
    other = sum(1 for link in report.links if link.target.tag and tag and link.target.tag != tag)
    return {
        "urls_scanned": len(report.pages),
        "total_products": len(report.products),
        "total_links": len(report.links),
        "unique_links": len({link.href for link in report.links}),
        "by_status": {s.value: by_status.get(s, 0) for s in STATUS_ORDER},
        "tag_audit": {"missing_tag": missing, "other_tag": other},
    }


def links_by_product(report: ScanReport) -> dict[ProductKey, list[LinkOccurrence]]:
    out: dict[ProductKey, list[LinkOccurrence]] = defaultdict(list)
    for link in report.links:
        for asin in link.target.asins:
            out[(link.target.marketplace, asin)].append(link)
    for links in out.values():
        links.sort(key=lambda x: (x.page, x.href))
    return out


def product_json(product: ProductResult, links: list[LinkOccurrence]) -> dict[str, Any]:
    return {
        "asin": product.asin,
        "marketplace": product.marketplace,
        "title": product.title,
        "status": product.status.value,
        "availability": product.availability,
        "detail_page_url": product.detail_page_url,
        "error": product.error,
        "links": [
            {"href": x.href, "page": x.page, "kind": x.kind, "tag": x.target.tag} for x in links
        ],
    }


def to_json(report: ScanReport) -> dict[str, Any]:
    """The stable JSON shape of ``ccbb scan --format json`` (keys may be added, never renamed)."""
    links = links_by_product(report)
    return {
        **_head(report),
        "products": [
            product_json(report.products[key], links.get(key, []))
            for key in sorted(report.products)
        ],
        **_tail(report),
    }


def iter_json(
    report: ScanReport, extra_stats: Callable[[], dict[str, Any]] | None = None
) -> Iterator[str]:
    """:func:`to_json` as text, one product at a time: a report of a million links is written
    without holding its text in memory. ``extra_stats`` is called last (peak memory…).

    Each product is one line: the standard library writes indented JSON in Python, several
    times slower than its C encoder writes a line (a 20,000-page report: ~2 s → ~0.2 s)."""
    links = links_by_product(report)
    head = json.dumps(_head(report), indent=2, ensure_ascii=False)
    yield head[:-2] + ',\n  "products": ['
    for n, key in enumerate(sorted(report.products)):
        item = json.dumps(product_json(report.products[key], links.get(key, [])),
                          ensure_ascii=False, separators=(", ", ": "))  # fmt: skip
        yield ("," if n else "") + "\n    " + item
    tail = _tail(report)
    if extra_stats is not None:
        tail["stats"].update(extra_stats())
    yield "\n  ],\n  " + json.dumps(tail, indent=2, ensure_ascii=False)[4:] + "\n"


def _head(report: ScanReport) -> dict[str, Any]:
    return {
        "site": report.site,
        "marketplace": report.marketplace,
        "partner_tag": report.partner_tag,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
        "summary": summary(report),
        "notes": list(report.notes),
    }


def _tail(report: ScanReport) -> dict[str, Any]:
    return {
        "pages_failed": [
            {"url": f.url, "status": f.status, "error": f.error, "linked_from": f.referrers}
            for f in sorted(report.failed, key=lambda f: f.url)
        ],
        "unresolved_links": [
            {"href": u.href, "page": u.page, "kind": u.kind, "error": u.error}
            for u in sorted(report.unresolved, key=lambda u: (u.page, u.href))
        ],
        "truncated": report.truncated,
        "stats": {
            "api_requests": report.api_requests,
            "robots_skipped": report.robots_skipped,
            **report.timings,
        },
    }


def csv_rows(report: ScanReport) -> Iterator[tuple[str, ...]]:
    """One row per link occurrence and product (a widget showing 3 products gives 3 rows), by
    page and link; then one row per product no link led to."""
    links = sorted(report.links, key=lambda x: (x.page, x.href))
    linked: set[ProductKey] = set()
    for link in links:
        for asin in link.target.asins:
            key = (link.target.marketplace, asin)
            linked.add(key)
            product = report.products.get(key)
            yield (
                link.page,
                link.href,
                link.kind,
                link.target.tag or "",
                asin,
                link.target.marketplace,
                *_product_cells(product),
            )
    for key in sorted(report.products.keys() - linked):
        product = report.products[key]
        yield ("", "", "", "", product.asin, product.marketplace, *_product_cells(product))


def _product_cells(product: ProductResult | None) -> tuple[str, str, str, str]:
    if product is None:
        return ("", "", "", "")
    return (
        product.title or "",
        product.status.value,
        product.availability or "",
        product.error or "",
    )


def csv_safe(value: object) -> str:
    """A cell as text a spreadsheet shows and never runs: one starting like a formula gets a
    leading ``'`` (OWASP's advice for CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def iter_csv(rows: Iterable[Sequence[object]], *, header: bool = True) -> Iterator[str]:
    """CSV text of ``rows`` (in CSV_COLUMNS order), a few hundred rows per piece: the one CSV
    writer of the CLI, the dashboard and the API."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow([csv_safe(cell) for cell in row])
        if n % 500 == 0:
            yield _drain(buf)
    yield _drain(buf)


def _drain(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text


def to_csv(report: ScanReport) -> str:
    return "".join(iter_csv(csv_rows(report)))


def csv_filename(site: str, when: datetime) -> str:
    """``example.com-2026-12-01.csv``: the site's host and the scan's day."""
    host = urlsplit(site).hostname or "scan"
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in host)
    return f"{safe}-{when.strftime('%Y-%m-%d')}.csv"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} %" if whole else "    - "


def to_text(report: ScanReport, worst: int = 20) -> str:
    s = summary(report)
    total = s["total_products"]
    lines = [
        f"Scan of {report.site} ({report.marketplace})",
        *(f"  Note: {note}" for note in report.notes),
        f"  URLs scanned         {s['urls_scanned']:>8}",
        f"  Total products       {total:>8}",
        f"  Total links          {s['total_links']:>8}",
        f"  Unique links         {s['unique_links']:>8}",
        "",
        "Products",
    ]
    for status in STATUS_ORDER:
        count = s["by_status"][status.value]
        lines.append(f"  {STATUS_LABELS[status]:<20} {count:>8}  {_pct(count, total)}")
    audit = s["tag_audit"]
    lines += [
        "",
        "Tag audit",
        f"  Links without a tag  {audit['missing_tag']:>8}",
        f"  Links with another tag{audit['other_tag']:>7}"
        + (f"  (yours: {report.partner_tag})" if report.partner_tag else ""),
    ]
    links = links_by_product(report)
    bad = [p for p in report.products.values() if p.status is not Status.AVAILABLE]
    bad.sort(key=lambda p: (-len(links.get((p.marketplace, p.asin), [])), p.asin))
    if bad:
        lines += ["", f"Products to fix (most linked first, {min(worst, len(bad))} of {len(bad)})"]
        for p in bad[:worst]:
            on = links.get((p.marketplace, p.asin), [])
            pages = len({x.page for x in on})
            why = p.error or p.availability or ""
            title = (p.title or "")[:40]
            lines.append(
                f"  {p.asin}  {p.status.value:<12} {len(on):>4} links on {pages:>3} pages  "
                f"{title}{'  — ' + why if why else ''}"
            )
    if report.failed:
        lines += ["", f"Pages that failed ({len(report.failed)})"]
        for f in sorted(report.failed, key=lambda f: f.url)[:worst]:
            lines.append(f"  {f.status or '---'}  {f.url}  {f.error}")
            if f.referrers:
                lines.append(f"        linked from {', '.join(f.referrers)}")
    if report.unresolved:
        lines += ["", f"Short or cloaked links that lead nowhere ({len(report.unresolved)})"]
        for u in sorted(report.unresolved, key=lambda u: u.href)[:worst]:
            lines.append(f"  {u.href}  on {u.page}: {u.error}")
    if report.truncated:
        lines += ["", "The page budget was reached: some pages were not scanned."]
    return "\n".join(lines) + "\n"
