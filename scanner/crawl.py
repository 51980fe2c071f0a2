"""The crawl: seeds (start URL, robots.txt sitemaps, well-known sitemaps), same-site pages,
robots rules for ``AffiliateLink``, canonical URLs, and every Amazon link occurrence found.

Stages as in lychee: extraction (``extract``) → collection (here) → checking (``amazon``) →
reporting (``report``). New Amazon targets are handed to ``on_target`` as soon as they are seen,
so product lookups run while the crawl goes on.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from protego import Protego

from scanner.amazon_urls import (
    SHORT_LINK_HOSTS,
    AmazonTarget,
    LinkKind,
    host_of,
    is_amazon_host,
    parse_amazon_url,
)
from scanner.digest import PageDigest, page_key
from scanner.fetch import Fetcher, gunzip_capped
from scanner.net import ROBOTS_AGENT
from scanner.page_workers import LocalPages, Pages
from scanner.redirects import RedirectResolver, Resolution
from scanner.settings import ScanConfig
from scanner.urls import SiteScope, normalize

log = logging.getLogger(__name__)

_WELL_KNOWN_SITEMAPS = ("/sitemap.xml", "/sitemap_index.xml", "/wp-sitemap.xml")


REFERRERS_KEPT = 5  # pages named as linking to each failed page


@dataclass(slots=True)
class FailedPage:
    url: str
    status: int | None
    error: str
    # the first scanned pages (in crawl order) that link to it: where to fix the link
    referrers: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LinkOccurrence:
    page: str
    href: str
    kind: LinkKind
    target: AmazonTarget


@dataclass(slots=True)
class UnresolvedLink:
    page: str
    href: str
    kind: Literal["short", "cloaked"]
    error: str


@dataclass(slots=True)
class Progress:
    """Live counters, read by whoever shows progress. The engine only writes them."""

    phase: str = "starting"
    pages_crawled: int = 0
    pages_discovered: int = 0
    products_found: int = 0
    products_checked: int = 0
    api_requests: int = 0
    page_worker_peak_rss_mb: float = 0.0


@dataclass(repr=False)  # see ScanReport: never print a whole crawl
class CrawlResult:
    pages: list[str] = field(default_factory=list)
    failed: list[FailedPage] = field(default_factory=list)
    links: list[LinkOccurrence] = field(default_factory=list)
    unresolved: list[UnresolvedLink] = field(default_factory=list)
    truncated: bool = False  # stopped at the page budget
    robots_skipped: int = 0
    start_redirect: str | None = None  # where the start URL sent us when nothing was scanned

    def __repr__(self) -> str:
        return f"<CrawlResult pages={len(self.pages)} links={len(self.links)}>"


class Crawler:
    def __init__(
        self,
        config: ScanConfig,
        fetcher: Fetcher,
        resolver: RedirectResolver,
        on_target: Callable[[AmazonTarget], None],
        progress: Progress | None = None,
        concurrency: int | None = None,
        pages: Pages | None = None,
    ) -> None:
        self._config = config
        self._limits = config.limits
        self._fetcher = fetcher
        self._resolver = resolver
        self._on_target = on_target
        self.progress = progress or Progress()
        self._workers = concurrency or config.limits.per_host_concurrency
        self._scope = SiteScope.of(config.site)
        self._pages = pages or LocalPages(
            fetcher.session, config.limits, self._scope, config.cloak_prefixes
        )
        self._robots: Protego | None = None
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._ids: dict[str, int] = {}  # normalised internal URL → id (also the "seen" set)
        self._urls: list[str] = []  # id → normalised URL
        self._page_keys: dict[str, int] = {}
        self._internal_links: list[array[int]] = []  # per page: ids of internal links on it
        # one str / AmazonTarget object per distinct link: a site repeats its links on every
        # page, and each digest from a page worker brings fresh copies
        self._interned: dict[str, tuple[str, AmazonTarget]] = {}
        self._pending: list[tuple[int, str, Literal["short", "cloaked"]]] = []
        self._redirects: dict[int, int | AmazonTarget | str] = {}  # id → next id / target / url
        self._failed_ids: dict[int, FailedPage] = {}  # id → its failure, for its referrers
        self.result = CrawlResult()

    # ---- public -------------------------------------------------------------------------

    async def run(self) -> CrawlResult:
        self.progress.phase = "crawling"
        start = page_key(self._config.site)
        await self._load_robots(start)
        self._discover(start)
        workers = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        try:
            await self._load_sitemaps(start)
            await self._queue.join()
            self.progress.phase = "resolving links"
            resolutions = await self._resolver.results()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        self._collect(resolutions)
        self._finish()
        return self.result

    def partial_result(self) -> CrawlResult:
        """What the crawl found until it was cancelled (links still resolving are reported as
        unresolved)."""
        self._resolver.cancel()
        self._collect(self._resolver.finished())
        return self.result

    def _finish(self) -> None:
        if not self.result.pages:
            first = self._redirects.get(0)
            if isinstance(first, int):
                first = self._urls[first]
            if isinstance(first, str):
                self.result.start_redirect = first

    # ---- seeds ----------------------------------------------------------------------------

    async def _load_robots(self, start: str) -> None:
        url = _origin(start) + "/robots.txt"
        for _ in range(self._limits.max_redirect_hops + 1):  # e.g. apex → www. (RFC 9309 §2.3.1.2)
            response = await self._fetcher.get(url, accept="any")
            if not (response.location and self._scope.contains(response.location)):
                break
            url = response.location
        if response.status == 200 and response.body is not None:
            self._robots = Protego.parse(response.body.decode("utf-8", errors="replace"))
            delay = self._robots.crawl_delay(ROBOTS_AGENT)
            if delay:
                # the start host, and the one robots.txt redirected to (apex → www.), where
                # the site's pages are
                for host in {host_of(start), host_of(url)}:
                    slot = self._fetcher.slot(host)
                    slot.interval = min(float(delay), self._limits.max_retry_after)

    def _allowed(self, url: str) -> bool:
        return self._robots is None or self._robots.can_fetch(url, ROBOTS_AGENT)

    async def _load_sitemaps(self, start: str) -> None:
        origin = _origin(start)
        queue = [
            *(self._robots.sitemaps if self._robots else ()),
            *(origin + path for path in _WELL_KNOWN_SITEMAPS),
        ]
        seen: set[str] = set()
        depth_of = {url: 0 for url in queue}
        # one level of the sitemap tree at a time, its sitemaps fetched concurrently: a site
        # that never answers costs one timeout, not one per sitemap
        while queue and len(seen) < self._limits.max_sitemaps:
            level: list[str] = []
            for url in queue:
                if url not in seen and len(seen) < self._limits.max_sitemaps:
                    seen.add(url)
                    if self._allowed(url):
                        level.append(url)
            queue = []
            read = await asyncio.gather(*(self._read_sitemap(url) for url in level))
            for url, entries in zip(level, read, strict=True):
                for loc, is_index in entries:
                    if is_index:
                        if depth_of[url] < self._limits.max_sitemap_depth and loc not in depth_of:
                            depth_of[loc] = depth_of[url] + 1
                            queue.append(loc)
                    elif self._scope.contains(loc):
                        self._discover(page_key(loc))

    async def _read_sitemap(self, url: str) -> list[tuple[str, bool]]:
        response = await self._fetcher.get(url, accept="any")
        if response.status != 200 or response.body is None:
            return []
        body = response.body
        try:
            if body[:2] == b"\x1f\x8b":
                body = gunzip_capped(body, self._limits.max_body)
            root = ET.fromstring(body)  # noqa: S314 (expat limits entity expansion)
        except (ValueError, ET.ParseError, OSError) as exc:
            log.info("sitemap %s unreadable: %s", url, exc)
            return []
        is_index = root.tag.endswith("sitemapindex")
        # <loc> of each <url>/<sitemap> only: not <image:loc> and such, deeper down
        return [
            (el.text.strip(), is_index)
            for entry in root
            for el in entry
            if el.tag.rpartition("}")[2] == "loc" and el.text and el.text.strip()
        ]

    # ---- the crawl ------------------------------------------------------------------------

    def _discover(self, key: str) -> int:
        uid = self._ids.get(key)
        if uid is None:
            uid = self._ids[key] = len(self._urls)
            self._urls.append(key)
            self._queue.put_nowait(uid)
            self.progress.pages_discovered = len(self._urls)
        return uid

    async def _worker(self) -> None:
        while True:
            uid = await self._queue.get()
            try:
                await self._visit(uid)
            except Exception:  # one bad page must not end the scan
                log.exception("error while scanning %s", self._urls[uid])
                self._fail(uid, FailedPage(self._urls[uid], None, "internal error"))
            finally:
                self._queue.task_done()

    def _budget_left(self) -> bool:
        if len(self.result.pages) >= self._limits.max_pages:
            self.result.truncated = True
            return False
        return True

    async def _visit(self, uid: int) -> None:
        url = self._urls[uid]
        if not self._budget_left():
            return
        if not self._allowed(url):
            self.result.robots_skipped += 1
            return
        response, digest = await self._fetcher.retrying(url, lambda: self._pages.fetch(url))
        if response.is_redirect:
            self._on_redirect(uid, response.location or "")
            return
        if response.status is None or response.status >= 400 or response.error:
            self._fail(
                uid, FailedPage(url, response.status, response.error or f"HTTP {response.status}")
            )
            return
        if digest is None:
            return  # an asset, not a page
        if digest.redirect is not None:  # a page that sends on at once: a redirect
            self._on_redirect(uid, digest.redirect)
            return
        key = url
        if digest.canonical and digest.canonical != url:
            key = digest.canonical
            self._discover(key)
        if key in self._page_keys or not self._budget_left():
            return
        page = len(self.result.pages)
        self._page_keys[key] = page
        self.result.pages.append(key)
        self.progress.pages_crawled = page + 1
        self._record(page, digest)

    def _record(self, page: int, digest: PageDigest) -> None:
        ids = self._ids
        discover = self._discover
        self._internal_links.append(
            array("I", [ids[k] if k in ids else discover(k) for k in digest.internal])
        )
        on_target = self._on_target
        page_url = self.result.pages[page]
        links = self.result.links
        interned = self._interned
        for href, target in digest.amazon:
            known = interned.get(href)
            if known is None:
                known = interned[href] = (href, target)
                on_target(target)
            kind: LinkKind = "widget" if target.is_widget else "direct"
            links.append(LinkOccurrence(page_url, known[0], kind, known[1]))
        for href in digest.short:
            self._pending.append((page, href, "short"))
            self._resolver.start(href, cacheable=True, on_target=on_target)
        for href in digest.cloaked:
            self._pending.append((page, href, "cloaked"))
            self._resolver.start(href, cacheable=False, on_target=on_target)

    def _fail(self, uid: int, failed: FailedPage) -> None:
        self.result.failed.append(failed)
        self._failed_ids[uid] = failed

    def _on_redirect(self, uid: int, location: str) -> None:
        target = parse_amazon_url(location)
        if target is not None:  # a same-site URL that redirects to Amazon: a cloaked link
            self._redirects[uid] = target
            self._on_target(target)
        elif host_of(location) in SHORT_LINK_HOSTS:
            self._redirects[uid] = location
            self._resolver.start(normalize(location), cacheable=True, on_target=self._on_target)
        elif self._scope.contains(location) and not is_amazon_host(host_of(location)):
            self._redirects[uid] = self._discover(page_key(location))
        else:
            self._redirects[uid] = location

    # ---- collection -----------------------------------------------------------------------

    def _collect(self, resolutions: dict[str, Resolution]) -> None:
        result = self.result
        pages = result.pages
        links = result.links
        for page, href, kind in self._pending:
            resolution = resolutions.get(href) or Resolution(None, None, "not resolved: cancelled")
            if resolution.target is not None:
                links.append(LinkOccurrence(pages[page], href, kind, resolution.target))
            else:
                error = resolution.error or "does not lead to an Amazon product"
                result.unresolved.append(UnresolvedLink(pages[page], href, kind, error))
        self._note_referrers()
        cloaked = self._cloaked_targets(resolutions)
        if cloaked:
            for page, ids in enumerate(self._internal_links):
                for uid in ids:
                    leads_to = cloaked.get(uid)
                    if leads_to is not None:
                        links.append(
                            LinkOccurrence(pages[page], self._urls[uid], "cloaked", leads_to)
                        )

    def _note_referrers(self) -> None:
        """Each failed page gets the first REFERRERS_KEPT pages (in crawl order) linking to it."""
        failed = self._failed_ids
        if not failed:
            return
        pages = self.result.pages
        for page, ids in enumerate(self._internal_links):
            for uid in set(ids).intersection(failed):
                refs = failed[uid].referrers
                if len(refs) < REFERRERS_KEPT and pages[page] != failed[uid].url:
                    refs.append(pages[page])

    def _cloaked_targets(self, resolutions: dict[str, Resolution]) -> dict[int, AmazonTarget]:
        """Internal URLs whose redirect chain (≤ max hops) ends at an Amazon product."""
        out: dict[int, AmazonTarget] = {}
        for uid in self._redirects:
            step: int | AmazonTarget | str | None = uid
            for _ in range(self._limits.max_redirect_hops):  # one redirect per step
                if not isinstance(step, int):
                    break
                step = self._redirects.get(step)
            if isinstance(step, str):
                resolved = resolutions.get(normalize(step))
                step = resolved.target if resolved else None
            if isinstance(step, AmazonTarget):
                out[uid] = step
        return out


def _origin(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"
