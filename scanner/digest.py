"""What one page brings to a scan, as plain data: its canonical URL, the site pages it links to
and the Amazon, short and cloaked links on it. Pure: bytes in, data out, so it can run in the
crawler's process or in a page worker (``page_workers``) on another core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from scanner.amazon_urls import SHORT_LINK_HOSTS, AmazonTarget, could_be_amazon, host_of
from scanner.amazon_urls import parse_amazon_url as _parse_amazon_url
from scanner.extract import PageLinks, extract_links
from scanner.urls import Base, SiteScope, memo_key, normalize, origin_of

ASSET_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg", ".ico", ".bmp", ".avif", ".css", ".js",
    ".mjs", ".json", ".pdf", ".zip", ".gz", ".rar", ".7z", ".mp3", ".mp4", ".webm", ".mov",
    ".avi", ".woff", ".woff2", ".ttf", ".eot", ".xml", ".txt", ".csv", ".doc", ".docx", ".xls",
    ".xlsx", ".ppt", ".pptx", ".exe", ".dmg",
)  # fmt: skip
# Query parameters that never change a page: WordPress comment-reply links (a notorious crawl
# trap: one duplicate of each post per comment) and campaign tracking. Dropped from crawl keys.
NOISE_PARAMS = frozenset({"replytocom", "fbclid", "gclid", "msclkid", "mc_cid", "mc_eid"})
_MEMO_LIMIT = 500_000
_ORIGINS_KEPT = 10_000  # hosts a site links to, whose scope answer is remembered

# Link classes
INTERNAL, AMAZON, SHORT, CLOAK, OTHER = range(5)


def page_key(url: str) -> str:
    """The crawl key of a same-site URL: normalised, without noise parameters."""
    return _without_noise(normalize(url))


def _without_noise(key: str) -> str:
    """A normalised URL without its noise parameters."""
    if "?" not in key:
        return key
    head, _, query = key.partition("?")
    pairs = query.split("&")
    kept = [pair for pair in pairs if not _is_noise(pair.partition("=")[0])]
    if len(kept) == len(pairs):
        return key
    # the kept pairs as written (not decoded and encoded again: ``%20`` stays ``%20``)
    return f"{head}?{'&'.join(kept)}" if kept else head


def _is_noise(name: str) -> bool:
    name = unquote_plus(name).lower()
    return name in NOISE_PARAMS or name.startswith("utm_")


@dataclass(slots=True)
class PageDigest:
    canonical: str | None = None  # crawl key of a same-site canonical URL, if any
    internal: list[str] = field(default_factory=list)  # crawl keys, one per link occurrence
    amazon: list[tuple[str, AmazonTarget]] = field(default_factory=list)  # (href, products)
    short: list[str] = field(default_factory=list)  # short-link hrefs, to resolve
    cloaked: list[str] = field(default_factory=list)  # hrefs under a cloaking prefix
    # where the page sends the browser at once (a static site's redirect page): the page is then
    # a redirect, not a page of the site, and nothing else of it counts
    redirect: str | None = None

    def __reduce__(self) -> tuple[type[PageDigest], tuple[object, ...]]:
        # pickled once per page by the page workers: positional arguments, not a state dict
        return (PageDigest, (self.canonical, self.internal, self.amazon, self.short,
                             self.cloaked, self.redirect))  # fmt: skip


def immediate_redirect(links: PageLinks, url: str) -> str | None:
    """Where a page sends its visitor at once, like an HTTP redirect: an immediate ``<meta
    http-equiv="refresh">`` (to anywhere), or a script whose first statement replaces the page by
    an Amazon or short link (``location.replace(…)``). None for an ordinary page."""
    target = links.refresh
    script = links.script_redirect
    if target is None and script is not None and could_be_amazon(script):
        key = normalize(script)
        if _parse_amazon_url(key) is not None or host_of(key) in SHORT_LINK_HOSTS:
            target = script
    if target is None or normalize(target) == normalize(url):  # a reload of itself
        return None
    return target


def page_redirect(body: bytes, url: str, charset: str | None) -> str | None:
    """:func:`immediate_redirect` of the page ``body`` served at ``url``."""
    return immediate_redirect(extract_links(body, url, charset), url)


# how an href classifies: (INTERNAL, crawl key), (AMAZON, (href, products)), (SHORT, href),
# (CLOAK, href) or (OTHER, None): the second item is what the page's digest lists for it
_Class = tuple[int, object]
_NOTHING: _Class = (OTHER, None)  # an href that leads nowhere crawlable


class PageDigester:
    """Digests pages of one site; remembers how each href classifies (sites repeat them)."""

    def __init__(self, scope: SiteScope, cloak_prefixes: tuple[str, ...]) -> None:
        self.scope = scope
        self.cloak_prefixes = cloak_prefixes
        self._memo: dict[str, _Class] = {}  # absolute URL → its class
        # per origin of the page's base: href as written → its class, for the hrefs that resolve
        # alike on every page of that origin (absolute, root-relative, and those resolving to
        # nothing: ``#top``, ``mailto:``…); a page-relative href is resolved on each page
        self._by_href: dict[str, dict[str, _Class]] = {}
        self._memo_size = 0
        self._in_scope: dict[str, bool] = {}  # scheme://host[:port] → is it this site

    def digest(self, body: bytes, url: str, charset: str | None) -> PageDigest:
        links = extract_links(body, url, charset)
        out = PageDigest()
        if links.refresh is not None or links.script_redirect is not None:
            out.redirect = immediate_redirect(links, url)
            if out.redirect is not None:
                return out
        if links.canonical:
            key = normalize(links.canonical)
            if self._is_in_scope(key):
                out.canonical = _without_noise(key)  # its page_key()
        base = Base(links.base)
        origin = origin_of(links.base)
        by_href = self._by_href.get(origin)
        if by_href is None:
            by_href = self._by_href[origin] = {}
        # one list per class, in the order of the class numbers: the hot loop appends, no tests
        lists: tuple[list[Any], ...] = (out.internal, out.amazon, out.short, out.cloaked, [])
        for href in links.hrefs:
            cls = by_href.get(href)
            if cls is None:
                cls = self._first_sight(href, base, origin, by_href)
            lists[cls[0]].append(cls[1])
        return out

    def _first_sight(
        self, href: str, base: Base, origin: str, by_href: dict[str, _Class]
    ) -> _Class:
        """The class of an href this origin's memo does not hold (yet)."""
        absolute = base.resolve(href)
        if absolute is None:  # never depends on the page (see resolve)
            cls = _NOTHING
        else:
            memo = self._memo
            found = memo.get(absolute)
            if found is None:
                found = self.classify(absolute)
                if self._memo_size < _MEMO_LIMIT:
                    memo[absolute] = found
                    self._memo_size += 1
            cls = found
        if self._memo_size < _MEMO_LIMIT and (
            absolute is None or memo_key(origin, href) is not None
        ):
            by_href[href] = cls
            self._memo_size += 1
        return cls

    def classify(self, url: str) -> _Class:
        """What an absolute URL is to this site: an Amazon product, a short link, a cloaked
        link, a page of the site (to crawl), or something else."""
        key = normalize(url)  # once: the checks below all read the normalised form
        if could_be_amazon(url):
            target = _parse_amazon_url(key)
            if target is not None:
                return (AMAZON, (key, target))
            if host_of(key) in SHORT_LINK_HOSTS:
                return (SHORT, key)
        if any(key.startswith(prefix) for prefix in self.cloak_prefixes):
            return (CLOAK, key)
        if self._is_in_scope(key):
            key = _without_noise(key)
            path = key[key.find("/", key.find("//") + 2) :].partition("?")[0]
            if path.lower().endswith(ASSET_SUFFIXES):
                return _NOTHING  # images, PDFs…: never pages, never fetched
            return (INTERNAL, key)
        return _NOTHING

    def _is_in_scope(self, url: str) -> bool:
        """``scope.contains(url)``, remembered per origin (the part up to the path: all that
        decides it). For a normalised URL it is also the answer for the URL as written."""
        origin = origin_of(url)
        known = self._in_scope.get(origin)
        if known is None:
            known = self.scope.contains(url)
            if len(self._in_scope) < _ORIGINS_KEPT:
                self._in_scope[origin] = known
        return known
