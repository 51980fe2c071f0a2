"""What changed between two scans of the same site and marketplace. Pure.

:func:`compare` takes two reports — the engine's :class:`~scanner.scan.ScanReport` objects or
their JSON shape (:func:`scanner.report.to_json`, what ``ccbb scan --format json`` writes) —
and tells:

- products **newly broken**: available before, removed / out of stock / error now (and which);
- products **recovered**: not available before, available now;
- products **new** on the site, and products **no longer** on the site (no link leads to them);
- links that **lost the partner tag** (a page linked to a product with the partner tag, and now
  links to it only without a tag) or **got someone else's** (only with another tag now);
- pages that **newly fail** (failed now, not before).

A link is known by its page and the product it leads to (the same link on a page whose URL
changed, or a short link that now resolves elsewhere, is still that page's link to that
product). The partner tag is the newer scan's (the older one's when the newer has none).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from scanner.classify import Status
from scanner.scan import ScanReport

AVAILABLE = Status.AVAILABLE.value
BROKEN_STATUSES = (Status.REMOVED.value, Status.OUT_OF_STOCK.value, Status.ERROR.value)

# user-facing strings (plain English, one place; the API and the webhook say them so, pages and
# mails in their language through notify.messages.change_line): (singular, plural)
LINE_TEXT: dict[str, tuple[str, str]] = {
    "newly_out_of_stock": ("{n} newly out of stock", "{n} newly out of stock"),
    "newly_removed": ("{n} newly removed from Amazon", "{n} newly removed from Amazon"),
    "newly_error": ("{n} newly in error", "{n} newly in error"),
    "recovered": ("{n} recovered", "{n} recovered"),
    "new_products": ("{n} new product on the site", "{n} new products on the site"),
    "gone_products": ("{n} product no longer on the site", "{n} products no longer on the site"),
    "lost_tag": ("{n} link lost your partner tag", "{n} links lost your partner tag"),
    "other_tag": (
        "{n} link now carries someone else's tag",
        "{n} links now carry someone else's tag",
    ),
    "newly_failed_pages": ("{n} page newly fails", "{n} pages newly fail"),
}
NOTHING_CHANGED = "Nothing changed."
SINCE = "Since scan #{scan_id} on {day}"
SINCE_FILE = "Since the previous scan ({finished})"

Key = tuple[str, str]  # (marketplace, ASIN)


@dataclass(frozen=True, slots=True)
class ProductChange:
    asin: str
    marketplace: str
    title: str | None
    before: str | None  # status in the older scan (None: not on the site then)
    after: str | None  # status in the newer scan (None: no longer on the site)
    reason: str | None = None  # the newer scan's error or availability text
    pages: int = 0  # pages of the site linking to it (newer scan; older when gone)


@dataclass(frozen=True, slots=True)
class TagChange:
    page: str
    asin: str
    marketplace: str
    href: str  # the link as it appears now
    tag: str | None  # the tag it carries now (None: no tag)


@dataclass(frozen=True, slots=True)
class PageChange:
    url: str
    status: int | None
    error: str


@dataclass(slots=True)
class Changes:
    newly_broken: list[ProductChange] = field(default_factory=list)
    recovered: list[ProductChange] = field(default_factory=list)
    new_products: list[ProductChange] = field(default_factory=list)
    gone_products: list[ProductChange] = field(default_factory=list)
    lost_tag: list[TagChange] = field(default_factory=list)
    other_tag: list[TagChange] = field(default_factory=list)
    newly_failed_pages: list[PageChange] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(self.counts().values())

    @property
    def any_broken(self) -> bool:
        return bool(self.newly_broken)

    def counts(self) -> dict[str, int]:
        """The number behind each line, in the order lines are shown."""
        broken = {s: 0 for s in BROKEN_STATUSES}
        for change in self.newly_broken:
            broken[change.after or ""] = broken.get(change.after or "", 0) + 1
        return {
            "newly_out_of_stock": broken[Status.OUT_OF_STOCK.value],
            "newly_removed": broken[Status.REMOVED.value],
            "newly_error": broken[Status.ERROR.value],
            "recovered": len(self.recovered),
            "new_products": len(self.new_products),
            "gone_products": len(self.gone_products),
            "lost_tag": len(self.lost_tag),
            "other_tag": len(self.other_tag),
            "newly_failed_pages": len(self.newly_failed_pages),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "newly_broken": [asdict(c) for c in self.newly_broken],
            "recovered": [asdict(c) for c in self.recovered],
            "new_products": [asdict(c) for c in self.new_products],
            "gone_products": [asdict(c) for c in self.gone_products],
            "lost_tag": [asdict(c) for c in self.lost_tag],
            "other_tag": [asdict(c) for c in self.other_tag],
            "newly_failed_pages": [asdict(c) for c in self.newly_failed_pages],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Changes:
        def products(name: str) -> list[ProductChange]:
            return [ProductChange(**c) for c in data.get(name, [])]

        return cls(
            newly_broken=products("newly_broken"),
            recovered=products("recovered"),
            new_products=products("new_products"),
            gone_products=products("gone_products"),
            lost_tag=[TagChange(**c) for c in data.get("lost_tag", [])],
            other_tag=[TagChange(**c) for c in data.get("other_tag", [])],
            newly_failed_pages=[PageChange(**c) for c in data.get("newly_failed_pages", [])],
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the summary: its kind (a key of :data:`LINE_TEXT`), count and text."""

    kind: str
    count: int
    text: str


def lines(changes: Changes) -> list[Line]:
    """The non-zero counts as sentences ("3 newly out of stock"), in a stable order."""
    out = []
    for kind, count in changes.counts().items():
        if count:
            one, many = LINE_TEXT[kind]
            out.append(Line(kind, count, (one if count == 1 else many).format(n=count)))
    return out


def headline(changes: Changes, since: str) -> str:
    """``"Since scan #41 on 3 March: 3 newly out of stock, 1 recovered."``"""
    shown = lines(changes)
    if not shown:
        return f"{since}: {NOTHING_CHANGED[0].lower()}{NOTHING_CHANGED[1:]}"
    return f"{since}: " + ", ".join(line.text for line in shown) + "."


def to_text(changes: Changes, since: str, limit: int = 20) -> str:
    """The CLI's rendering: the headline, then the products and pages behind each line."""
    out = [headline(changes, since)]
    sections: list[tuple[str, Iterable[str]]] = [
        ("Newly broken", (_product_line(c) for c in changes.newly_broken)),
        ("Recovered", (_product_line(c) for c in changes.recovered)),
        ("New on the site", (_product_line(c) for c in changes.new_products)),
        ("No longer on the site", (_product_line(c) for c in changes.gone_products)),
        ("Lost the partner tag", (_tag_line(c) for c in changes.lost_tag)),
        ("Someone else's tag", (_tag_line(c) for c in changes.other_tag)),
        ("Pages that newly fail", (f"  {c.status or '---'}  {c.url}  {c.error}"
                                   for c in changes.newly_failed_pages)),
    ]  # fmt: skip
    for title, items in sections:
        shown = list(items)
        if shown:
            out += ["", f"{title} ({len(shown)})", *shown[:limit]]
            if len(shown) > limit:
                out.append(f"  … and {len(shown) - limit} more")
    return "\n".join(out) + "\n"


def _product_line(c: ProductChange) -> str:
    move = f"{c.before or '-'} → {c.after or '-'}"
    why = f"  — {c.reason}" if c.reason else ""
    return f"  {c.asin}  {c.marketplace}  {move:<28} {(c.title or '')[:40]}{why}"


def _tag_line(c: TagChange) -> str:
    return f"  {c.asin}  on {c.page}: {c.href} (tag: {c.tag or 'none'})"


# ---- the comparison ---------------------------------------------------------------------

LinkKey = tuple[str, str, str]  # (page, marketplace, ASIN)


# (status, title, reason): a plain tuple, made 100,000 times per comparison
_Product = tuple[str, str | None, str | None]


@dataclass(slots=True)
class Snapshot:
    """What the comparison needs of one report, keyed for lookups, with the links judged
    against one partner tag."""

    tag: str | None
    products: dict[Key, _Product]
    tagged: set[LinkKey]  # pages' links to products carrying ``tag`` at least once
    # the other links: tag → one href carrying it (None: no tag)
    untagged: dict[LinkKey, dict[str | None, str]]
    failed: dict[str, PageChange]

    def has_link(self, key: LinkKey) -> bool:
        return key in self.tagged or key in self.untagged

    def link_keys(self) -> Iterator[LinkKey]:
        yield from self.tagged
        yield from (key for key in self.untagged if key not in self.tagged)


def partner_tag(report: ScanReport | Mapping[str, Any]) -> str | None:
    if isinstance(report, ScanReport):
        return report.partner_tag
    return report.get("partner_tag")


def snapshot(report: ScanReport | Mapping[str, Any], tag: str | None) -> Snapshot:
    """A report (object or JSON shape) as the comparison reads it, links judged against
    ``tag``."""
    if isinstance(report, ScanReport):
        return _from_report(report, tag)
    return _from_json(report, tag)


def _from_report(report: ScanReport, tag: str | None) -> Snapshot:
    products: dict[Key, _Product] = {
        key: (p.status, p.title, p.error or p.availability)  # a Status is a str
        for key, p in report.products.items()
    }
    tagged: set[LinkKey] = set()
    untagged: dict[LinkKey, dict[str | None, str]] = {}
    for link in report.links:
        target = link.target
        page, mp, link_tag = link.page, target.marketplace, target.tag
        for asin in target.asins:
            if link_tag is not None and link_tag == tag:
                tagged.add((page, mp, asin))
            else:
                untagged.setdefault((page, mp, asin), {}).setdefault(link_tag, link.href)
    failed = {f.url: PageChange(f.url, f.status, f.error) for f in report.failed}
    return Snapshot(tag, products, tagged, untagged, failed)


def _from_json(data: Mapping[str, Any], tag: str | None) -> Snapshot:
    products: dict[Key, _Product] = {}
    tagged: set[LinkKey] = set()
    untagged: dict[LinkKey, dict[str | None, str]] = {}
    for p in data.get("products", ()):
        mp, asin = p["marketplace"], p["asin"]
        products[(mp, asin)] = (
            p["status"],
            p.get("title"),
            p.get("error") or p.get("availability"),
        )
        for link in p.get("links", ()):
            link_tag = link.get("tag") or None
            if link_tag is not None and link_tag == tag:
                tagged.add((link["page"], mp, asin))
            else:
                untagged.setdefault((link["page"], mp, asin), {}).setdefault(link_tag, link["href"])
    failed = {
        f["url"]: PageChange(f["url"], f.get("status"), f.get("error") or "")
        for f in data.get("pages_failed", ())
    }
    return Snapshot(tag, products, tagged, untagged, failed)


def compare(old: ScanReport | Mapping[str, Any], new: ScanReport | Mapping[str, Any]) -> Changes:
    """What changed from ``old`` to ``new`` (see the module's docstring). Lists are sorted
    (marketplace, ASIN; page), so equal inputs give equal outputs."""
    tag = partner_tag(new) or partner_tag(old)
    a, b = snapshot(old, tag), snapshot(new, tag)
    changes = Changes()
    old_products, new_products = a.products, b.products
    gone = [key for key in old_products if key not in new_products]
    for key, after in new_products.items():
        before = old_products.get(key)
        if before is None:
            changes.new_products.append(_change(key, after, None, after[0]))
        elif before[0] == AVAILABLE:
            if after[0] != AVAILABLE:
                changes.newly_broken.append(_change(key, after, before[0], after[0]))
        elif after[0] == AVAILABLE:
            changes.recovered.append(_change(key, after, before[0], after[0]))
    changes.gone_products = [_change(k, old_products[k], old_products[k][0], None) for k in gone]
    pages_new = _pages_per_product(
        b.link_keys(), {(c.marketplace, c.asin) for c in (*changes.newly_broken, *changes.recovered,
                                                     *changes.new_products)}
    )  # fmt: skip
    pages_old = _pages_per_product(a.link_keys(), set(gone))
    for name in ("newly_broken", "recovered", "new_products"):
        setattr(changes, name, _with_pages(getattr(changes, name), pages_new))
    changes.gone_products = _with_pages(changes.gone_products, pages_old)
    if tag:
        for lost, change in _tag_changes(a, b):
            (changes.lost_tag if lost else changes.other_tag).append(change)
    changes.newly_failed_pages = [b.failed[url] for url in sorted(b.failed.keys() - a.failed)]
    return changes


def _change(key: Key, product: _Product, before: str | None, after: str | None) -> ProductChange:
    marketplace, asin = key
    return ProductChange(
        asin,
        marketplace,
        product[1],
        None if before is None else str(before),
        None if after is None else str(after),
        product[2],
    )


def _with_pages(changes: list[ProductChange], pages: Mapping[Key, int]) -> list[ProductChange]:
    out = [replace(c, pages=pages.get((c.marketplace, c.asin), 0)) for c in changes]
    out.sort(key=lambda c: (c.marketplace, c.asin))
    return out


def _pages_per_product(links: Iterable[LinkKey], wanted: set[Key]) -> dict[Key, int]:
    out: dict[Key, int] = {}
    if not wanted:
        return out
    for _page, marketplace, asin in links:
        key = (marketplace, asin)
        if key in wanted:
            out[key] = out.get(key, 0) + 1
    return out


def _tag_changes(old: Snapshot, new: Snapshot) -> Iterator[tuple[bool, TagChange]]:
    """(lost, change) for each page's link to a product that carried the partner tag and
    still exists but no longer carries it: ``lost`` when it now has no tag at all, else it
    carries someone else's."""
    for key in sorted(k for k in old.tagged - new.tagged if k in new.untagged):
        after = new.untagged[key]
        page, marketplace, asin = key
        others = sorted(t for t in after if t is not None)
        if others:
            yield False, TagChange(page, asin, marketplace, after[others[0]], others[0])
        else:
            yield True, TagChange(page, asin, marketplace, after[None], None)
