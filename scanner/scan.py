"""One scan as a pipeline: the crawl feeds ASINs to the lookups while it goes on, full batches of
10 are sent at once, and only the last partial batch waits for the end of the crawl — so a scan
costs ⌈unique ASINs / 10⌉ API requests and takes about max(crawl time, API time)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp

from scanner.amazon import MAX_ASINS_PER_REQUEST, AmazonAccountError, ProductResult, check_access
from scanner.amazon_urls import AmazonTarget
from scanner.classify import Status
from scanner.crawl import Crawler, CrawlResult, FailedPage, LinkOccurrence, Progress, UnresolvedLink
from scanner.fetch import Fetcher
from scanner.messages import scanned_over_http, site_unreachable
from scanner.page_workers import LocalPages, PageWorkers
from scanner.ratelimit import RateLimiter
from scanner.redirects import LinkCache, MemoryLinkCache, RedirectResolver
from scanner.settings import AmazonAccess, ScanConfig
from scanner.urls import SiteScope

if TYPE_CHECKING:
    from scanner.creators_api import ProductChecker

log = logging.getLogger(__name__)

ProductKey = tuple[str, str]  # (marketplace, ASIN)


class ScanFailed(Exception):
    """The scan could not be done; the message says why and what to do."""


@dataclass(repr=False)  # a full repr of a large scan is tens of MB (asyncio.run makes one)
class ScanReport:
    site: str
    marketplace: str
    partner_tag: str | None
    started_at: datetime
    finished_at: datetime
    pages: list[str]
    failed: list[FailedPage]
    links: list[LinkOccurrence]
    unresolved: list[UnresolvedLink]
    products: dict[ProductKey, ProductResult]
    truncated: bool = False
    cancelled: bool = False
    robots_skipped: int = 0
    api_requests: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. scanned over http:// (a bare domain)

    def __repr__(self) -> str:
        return (
            f"<ScanReport {self.site} pages={len(self.pages)} links={len(self.links)} "
            f"products={len(self.products)}>"
        )


class LookupQueue:
    """Collects the products the crawl finds and checks them in batches of 10."""

    def __init__(
        self,
        checker: ProductChecker,
        progress: Progress,
        max_in_flight: int = 10,
        *,
        known: dict[ProductKey, ProductResult] | None = None,
        on_results: Callable[[list[ProductResult]], None] | None = None,
    ) -> None:
        self._known = known or {}
        self._on_results = on_results
        self._checker = checker
        self._marketplace = checker.access.marketplace
        self._progress = progress
        self._sem = asyncio.Semaphore(max_in_flight)
        self._pending: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.results: dict[ProductKey, ProductResult] = {}
        self._checked = 0  # results that are not NOT_CHECKED
        self._seen: set[ProductKey] = set()
        self.fatal: AmazonAccountError | None = None
        self.failed = asyncio.Event()

    def add(self, target: AmazonTarget) -> None:
        for asin in target.asins:
            key = (target.marketplace, asin)
            if key in self._seen:
                continue
            self._seen.add(key)
            self._progress.products_found += 1
            known = self._known.get(key)
            if known is not None:  # checked by an earlier attempt of this scan
                self._store(known)
                continue
            if target.marketplace != self._marketplace:
                self._store(
                    ProductResult(
                        asin,
                        target.marketplace,
                        Status.ERROR,
                        error=(
                            f"no Amazon credentials for {target.marketplace} in this scan "
                            f"(it checks {self._marketplace})"
                        ),
                    )
                )
                continue
            self._pending.append(asin)
            if len(self._pending) >= MAX_ASINS_PER_REQUEST:
                self._send(self._pending[:MAX_ASINS_PER_REQUEST])
                del self._pending[:MAX_ASINS_PER_REQUEST]

    async def finish(self) -> None:
        """Send what is left and wait for every answer. Raises AmazonAccountError."""
        while self._pending:
            self._send(self._pending[:MAX_ASINS_PER_REQUEST])
            del self._pending[:MAX_ASINS_PER_REQUEST]
        if self._tasks:
            await asyncio.gather(*list(self._tasks))
        if self.fatal is not None:
            raise self.fatal

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    def abandon(self, reason: str) -> None:
        """Stop now: products found but not checked yet get ``not_checked`` with ``reason``."""
        self.cancel()
        self._pending.clear()
        for marketplace, asin in self._seen - self.results.keys():
            self._store(ProductResult(asin, marketplace, Status.NOT_CHECKED, error=reason))

    def _send(self, asins: list[str]) -> None:
        task = asyncio.create_task(self._check(list(asins)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, asins: list[str]) -> None:
        if self.fatal is not None:
            return
        async with self._sem:
            try:
                results = await self._checker.check(asins)
            except AmazonAccountError as exc:
                self.fatal = exc
                self.failed.set()
                return
        for result in results:
            self._store(result)
        if self._on_results is not None:
            self._on_results(results)
        self._progress.api_requests = self._checker.requests

    def _store(self, result: ProductResult) -> None:
        key = (result.marketplace, result.asin)
        if key not in self.results and result.status is not Status.NOT_CHECKED:
            self._checked += 1
        self.results[key] = result
        self._progress.products_checked = self._checked


async def run_scan(
    config: ScanConfig,
    access: AmazonAccess,
    *,
    session: aiohttp.ClientSession,
    limiter: RateLimiter,
    link_cache: LinkCache | None = None,
    progress: Progress | None = None,
    concurrency: int | None = None,
    stop: asyncio.Event | None = None,
    known_products: dict[ProductKey, ProductResult] | None = None,
    on_results: Callable[[list[ProductResult]], None] | None = None,
) -> ScanReport:
    """Crawl ``config.site`` and check every product found. Raises ScanFailed.

    ``stop`` ends the scan early (a user's cancel): what was found so far is reported, with
    ``cancelled`` set. ``known_products`` are results of an earlier attempt of the same scan,
    not asked again; ``on_results`` hears of each batch Amazon answers (to checkpoint them).
    """
    stop = stop or asyncio.Event()
    progress = progress or Progress()
    notes: list[str] = []
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    fetcher = Fetcher(session, config.network, config.limits)
    resolver = RedirectResolver(
        fetcher, link_cache or MemoryLinkCache(), config.limits.max_redirect_hops
    )
    try:
        check_access(access)  # credentials that cannot work: refused before anything starts
    except AmazonAccountError as exc:
        raise ScanFailed(str(exc)) from None
    async with contextlib.AsyncExitStack() as stack:
        pages: PageWorkers | LocalPages | None = None
        if not config.http_fallback:  # the site is known: its page workers start importing
            pages = await _start_pages(config, session, stack, progress)
        # the Amazon library is imported now, while the page workers import theirs on the
        # other cores: about a second of start-up each, overlapping (scanner.creators_api)
        from scanner.creators_api import ProductChecker

        checker = ProductChecker(access, limiter)
        async with checker:
            progress.phase = "checking Amazon credentials"
            try:
                await checker.verify()
            except AmazonAccountError as exc:
                raise ScanFailed(str(exc)) from None
            lookups = LookupQueue(checker, progress, known=known_products, on_results=on_results)
            config, note = await _reachable_scheme(config, fetcher, progress)
            if note:
                notes.append(note)
            if pages is None:
                pages = await _start_pages(config, session, stack, progress)
            await pages.ready()
            crawler = Crawler(config, fetcher, resolver, lookups.add, progress, concurrency, pages)
            crawl_t0 = time.monotonic()
            crawl_task = asyncio.create_task(crawler.run())
            fatal_task = asyncio.create_task(lookups.failed.wait())
            stop_task = asyncio.create_task(stop.wait())
            finish_task: asyncio.Task[None] | None = None
            closing: asyncio.Task[None] | None = None
            cancelled = False
            try:
                await asyncio.wait(
                    {crawl_task, fatal_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if lookups.fatal is not None:
                    raise ScanFailed(str(lookups.fatal))
                if stop.is_set() and not crawl_task.done():
                    cancelled = True
                    crawl_task.cancel()
                    await asyncio.gather(crawl_task, return_exceptions=True)
                    crawl = crawler.partial_result()
                else:
                    crawl = crawl_task.result()
                crawl_seconds = time.monotonic() - crawl_t0
                # the page workers' work is done: they exit while the last lookups go on
                closing = asyncio.create_task(stack.aclose())
                if not cancelled:
                    _check_reached(config, crawl)
                    progress.phase = "checking products"
                    # the first account error ends the lookups: the batches still queued are
                    # not sent
                    finish_task = asyncio.create_task(lookups.finish())
                    await asyncio.wait(
                        {finish_task, fatal_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if lookups.fatal is not None:
                        raise ScanFailed(str(lookups.fatal))
                    cancelled = stop.is_set() and not finish_task.done()
                    if not cancelled:
                        finish_task.result()
                if cancelled:
                    lookups.abandon("not checked: the scan was cancelled")
            finally:
                tasks = [t for t in (crawl_task, fatal_task, stop_task, finish_task) if t]
                for task in tasks:
                    task.cancel()
                resolver.cancel()
                lookups.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if closing is not None:
                    await closing
    progress.phase = "cancelled" if cancelled else "done"
    progress.api_requests = checker.requests
    total = time.monotonic() - t0
    return ScanReport(
        site=config.site,
        marketplace=access.marketplace,
        partner_tag=config.partner_tag or access.partner_tag or None,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        pages=crawl.pages,
        failed=crawl.failed,
        links=crawl.links,
        unresolved=crawl.unresolved,
        products=lookups.results,
        truncated=crawl.truncated,
        cancelled=cancelled,
        robots_skipped=crawl.robots_skipped,
        api_requests=checker.requests,
        timings={
            "crawl_seconds": round(crawl_seconds, 3),
            # from the scan's start (credentials checked, page workers started) to the crawl's
            "crawl_started_seconds": round(crawl_t0 - t0, 3),
            "total_seconds": round(total, 3),
            "http_requests": fetcher.requests,
            "page_worker_peak_rss_mb": progress.page_worker_peak_rss_mb,
        },
        notes=notes,
    )


async def _reachable_scheme(
    config: ScanConfig, fetcher: Fetcher, progress: Progress
) -> tuple[ScanConfig, str | None]:
    """A bare domain is scanned over https://; when https:// cannot start at all (a TLS error,
    a refused or reset connection), over http:// instead, with a note saying so."""
    if not (config.http_fallback and config.site.startswith("https://")):
        return config, None
    probe = await fetcher.get(config.site, accept="none")
    if probe.status is not None or probe.trouble not in ("tls", "refused", "reset"):
        return config, None
    http = "http://" + config.site.removeprefix("https://")
    origin = config.site.rstrip("/").split("/", 3)[:3]
    https_origin = "/".join(origin)
    prefixes = tuple(
        "http://" + p.removeprefix("https://") if p.startswith(https_origin) else p
        for p in config.cloak_prefixes
    )
    progress.phase = f"https:// did not answer: trying {http}"
    log.info("%s: %s; trying %s", config.site, probe.error, http)
    note = scanned_over_http(config.site, http, probe.error or "")
    return replace(config, site=http, cloak_prefixes=prefixes), note


async def _start_pages(
    config: ScanConfig,
    session: aiohttp.ClientSession,
    stack: contextlib.AsyncExitStack,
    progress: Progress,
) -> PageWorkers | LocalPages:
    """Who fetches and digests the pages: page workers (started, not yet ready: they import
    their modules meanwhile, see :meth:`PageWorkers.ready`) or this process."""
    scope = SiteScope.of(config.site)
    limits = config.limits
    pages: PageWorkers | LocalPages = (
        PageWorkers(
            limits.page_workers, session, config.network, limits, scope, config.cloak_prefixes
        )
        if limits.page_workers > 0
        else LocalPages(session, limits, scope, config.cloak_prefixes)
    )
    stack.callback(_note_worker_memory, pages, progress)  # runs after the workers close
    await stack.enter_async_context(pages)
    return pages


def _note_worker_memory(pages: object, progress: Progress) -> None:
    progress.page_worker_peak_rss_mb = getattr(pages, "peak_rss_mb", 0.0)


def _check_reached(config: ScanConfig, crawl: CrawlResult) -> None:
    """A scan that could not read a single page failed; say why and what to do."""
    if crawl.pages:
        return
    if crawl.start_redirect:
        raise ScanFailed(
            f"{config.site} redirects to {crawl.start_redirect}, another site: scan that address "
            "instead"
        )
    if crawl.robots_skipped and not crawl.failed:
        raise ScanFailed(
            f"robots.txt of {config.site} forbids the AffiliateLink crawler: allow the user-agent "
            "AffiliateLink in robots.txt, then scan again"
        )
    if crawl.failed:
        first = crawl.failed[0]
        raise ScanFailed(site_unreachable(first.url, first.error))
    raise ScanFailed(f"no HTML page found at {config.site}: check the address")
