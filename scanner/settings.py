"""Named limits of the engine, in one place (like scrapy's default_settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from scanner.net import NetworkPolicy


@dataclass(frozen=True)
class CrawlLimits:
    per_host_concurrency: int = 8  # requests in flight to one host
    timeout: float = 30.0  # seconds for a whole request
    budget: float = 45.0  # seconds for one URL, retries included (a retry must fit whole)
    connect_timeout: float = 10.0
    max_body: int = 10_000_000  # bytes of one page or sitemap, decompressed
    retries: int = 2  # extra attempts after a 5xx, 429 or network error
    backoff: float = 0.1  # seconds before the first retry after a 5xx, doubled each time
    max_retry_after: float = 60.0  # longest Retry-After / Crawl-delay honoured
    max_pages: int = 10_000  # pages scanned per scan (the plan's budget)
    max_redirect_hops: int = 5  # for short and cloaked links
    max_sitemaps: int = 500
    max_sitemap_depth: int = 3
    page_workers: int = 0  # processes fetching and parsing pages; 0: the crawler's own process
    # seconds a page worker may spend reading one page's HTML: past them the page is skipped and
    # the worker replaced (a parser stuck in a page built to stall it cannot be interrupted)
    parse_timeout: float = 10.0


def default_page_workers() -> int:
    """One page worker per core, at most 4 (the crawler's own process mostly waits)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class AmazonAccess:
    """One Creators API credential and where to reach the API. The secret never prints."""

    credential_id: str
    credential_secret: str = field(repr=False)
    version: str = "2.1"
    partner_tag: str = ""
    marketplace: str = "www.amazon.com"
    api_host: str = "https://creatorsapi.amazon"
    auth_endpoint: str | None = None
    tps: float = 1.0  # requests per second allowed for this credential
    retries: int = 4  # extra attempts after a 429, 5xx or network error
    backoff: float = 1.0
    timeout: float = 25.0

    @property
    def limiter_key(self) -> str:
        """Who shares the rate limit: everyone using this credential on this API host."""
        return f"{self.api_host}|{self.credential_id}"


@dataclass(frozen=True)
class ScanConfig:
    site: str  # normalised start URL
    marketplace: str = "www.amazon.com"  # the marketplace the credential covers
    partner_tag: str | None = None
    cloak_prefixes: tuple[str, ...] = ()  # normalised, e.g. ("https://site.com/go/",)
    limits: CrawlLimits = field(default_factory=CrawlLimits)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    http_fallback: bool = False  # a bare domain: scan http:// if https:// cannot be reached
