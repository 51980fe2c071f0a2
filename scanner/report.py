"""Reporting: the summary (DESIGN §1 definitions) and the JSON, CSV and text renderings. Pure."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from scanner.amazon import ProductResult
from scanner.classify import Status
from scanner.crawl import LinkOccurrence
from scanner.scan import ProductKey, ScanReport

STATUS_ORDER = (Status.AVAILABLE, Status.REMOVED, Status.OUT_OF_STOCK, Status.ERROR)
STATUS_LABELS = {
    Status.AVAILABLE: "Available",
    Status.REMOVED: "Removed",
    Status.OUT_OF_STOCK: "Out of stock",
    Status.ERROR: "Error",
}
CSV_COLUMNS = (
    "page", "href", "kind", "tag", "asin", "marketplace", "title", "status", "availability",
)  # fmt: skip


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
    without holding its text in memory. ``extra_stats`` is called last (peak memory…)."""
    links = links_by_product(report)
    head = json.dumps(_head(report), indent=2, ensure_ascii=False)
    yield head[:-2] + ',\n  "products": ['
    for n, key in enumerate(sorted(report.products)):
        item = json.dumps(product_json(report.products[key], links.get(key, [])), indent=2,
                          ensure_ascii=False)  # fmt: skip
        yield ("," if n else "") + "\n    " + item.replace("\n", "\n    ")
    tail = _tail(report)
    if extra_stats is not None:
        tail["stats"].update(extra_stats())
    yield "\n  ],\n  " + json.dumps(tail, indent=2, ensure_ascii=False)[4:] + "\n"


def _head(report: ScanReport) -> dict[str, Any]:
    return {
        "site": report.site,
        "marketplace": report.marketplace,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
        "summary": summary(report),
        "notes": list(report.notes),
    }


def _tail(report: ScanReport) -> dict[str, Any]:
    return {
        "pages_failed": [
            {"url": f.url, "status": f.status, "error": f.error}
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
    """One row per link occurrence and product (a widget showing 3 products gives 3 rows)."""
    links = sorted(report.links, key=lambda x: (x.page, x.href))
    for link in links:
        for asin in link.target.asins:
            product = report.products.get((link.target.marketplace, asin))
            yield (
                link.page,
                link.href,
                link.kind,
                link.target.tag or "",
                asin,
                link.target.marketplace,
                (product.title if product else None) or "",
                product.status.value if product else "",
                (product.availability if product else None) or "",
            )


def to_csv(report: ScanReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report))
    return buf.getvalue()


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
    if report.unresolved:
        lines += ["", f"Short or cloaked links that lead nowhere ({len(report.unresolved)})"]
        for u in sorted(report.unresolved, key=lambda u: u.href)[:worst]:
            lines.append(f"  {u.href}  on {u.page}: {u.error}")
    if report.truncated:
        lines += ["", "The page budget was reached: some pages were not scanned."]
    return "\n".join(lines) + "\n"
