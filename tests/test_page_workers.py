"""Page workers: the same crawl results as in-process, politeness kept in the crawler's process,
SSRF rules applied in the workers too, and a dead worker costs speed, never results."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from ccbb.sandbox.demo_site import generate_site, running_site
from scanner.crawl import Crawler, CrawlResult
from scanner.fetch import Fetcher
from scanner.net import NetworkPolicy, make_session, parse_connect_to
from scanner.page_workers import LocalPages, PageWorkers
from scanner.redirects import MemoryLinkCache, RedirectResolver
from scanner.settings import CrawlLimits, ScanConfig
from scanner.urls import SiteScope


def summary(result: CrawlResult) -> tuple:
    return (
        sorted(result.pages),
        sorted((link.page, link.href, link.kind, link.target) for link in result.links),
        sorted((f.url, f.status) for f in result.failed),
    )


async def crawl(site_url: str, policy: NetworkPolicy, prefixes: tuple[str, ...], workers: int,
                kill_one_after: int | None = None) -> CrawlResult:  # fmt: skip
    limits = CrawlLimits(per_host_concurrency=8, backoff=0.01, page_workers=workers)
    config = ScanConfig(site=site_url, cloak_prefixes=prefixes, limits=limits, network=policy)
    scope = SiteScope.of(site_url)
    async with make_session(policy) as session:
        pages = (
            PageWorkers(workers, session, policy, limits, scope, prefixes)
            if workers
            else LocalPages(session, limits, scope, prefixes)
        )
        async with pages:
            fetcher = Fetcher(session, policy, limits)
            crawler = Crawler(config, fetcher, RedirectResolver(fetcher, MemoryLinkCache()),
                              lambda target: None, pages=pages)  # fmt: skip
            task = asyncio.create_task(crawler.run())
            if kill_one_after is not None:
                while crawler.progress.pages_crawled < kill_one_after:
                    await asyncio.sleep(0.005)
                assert isinstance(pages, PageWorkers)
                os.kill(pages._workers[0].pid, signal.SIGKILL)
            return await task


async def test_workers_find_exactly_what_the_crawler_finds_alone() -> None:
    site = generate_site(pages=150, seed=3)
    async with running_site(site) as served:
        policy = NetworkPolicy(connect_to=parse_connect_to(served.connect_to))
        alone = await crawl(site.base_url, policy, site.cloak_prefixes, workers=0)
        pooled = await crawl(site.base_url, policy, site.cloak_prefixes, workers=2)
    assert len(alone.pages) == site.expected.urls_scanned
    assert summary(pooled) == summary(alone)


@pytest.mark.parametrize("workers", [2, 1])  # 1: the only one, replaced
async def test_a_killed_worker_costs_nothing_but_speed(caplog, workers: int) -> None:
    site = generate_site(pages=400, seed=5)
    async with running_site(site) as served:
        policy = NetworkPolicy(connect_to=parse_connect_to(served.connect_to))
        result = await crawl(site.base_url, policy, site.cloak_prefixes, workers=workers,
                             kill_one_after=50)  # fmt: skip
    assert len(result.pages) == site.expected.urls_scanned
    assert len(result.links) == site.expected.total_links
    assert {f.url for f in result.failed} == set(site.expected.failed_pages)
    assert "a page worker stopped" in caplog.text  # the kill did happen mid-crawl
    assert "starting another page worker" in caplog.text


async def test_workers_refuse_private_addresses_too() -> None:
    site = generate_site(pages=5)
    async with running_site(site) as served:
        # the crawler's own process may reach loopback (to read robots.txt), the workers may not:
        # their own session refuses the unmapped loopback address
        start = f"http://localhost:{served.port}/"
        open_policy = NetworkPolicy(True, parse_connect_to(served.connect_to))
        closed_policy = NetworkPolicy(False)
        limits = CrawlLimits(page_workers=1)
        scope = SiteScope.of(start)
        async with (
            make_session(open_policy) as session,
            PageWorkers(1, session, closed_policy, limits, scope, ()) as pages,
        ):
            response, digest = await pages.fetch(start)
    assert digest is None
    assert response.status is None
    assert "private, loopback or reserved" in (response.error or "")


def test_what_a_worker_sends_comes_back_whole() -> None:
    import pickle

    from scanner.amazon_urls import AmazonTarget
    from scanner.digest import PageDigest
    from scanner.fetch import Response

    response = Response("https://s.example/a", 503, "text/html", "utf-8", b"<p>", "https://s.example/b",
                        "HTTP 503", 2.5, True, "timeout")  # fmt: skip
    digest = PageDigest("https://s.example/c", ["https://s.example/d"] * 2,
                        [("https://www.amazon.com/dp/B00X4WHP5E",
                          AmazonTarget("www.amazon.com", ("B00X4WHP5E",), "me-20", True))],
                        ["https://amzn.to/x"], ["https://s.example/go/y"], None)  # fmt: skip
    for value in (response, digest, Response("https://s.example/")):
        assert pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) == value


async def test_workers_give_way_to_the_crawler() -> None:
    # every worker waits on the crawler's process: when cores are short, it runs first
    from scanner.page_workers import WORKER_NICENESS

    site = generate_site(pages=5)
    async with running_site(site) as served:
        policy = NetworkPolicy(connect_to=parse_connect_to(served.connect_to))
        scope = SiteScope.of(site.base_url)
        async with (
            make_session(policy) as session,
            PageWorkers(1, session, policy, CrawlLimits(), scope, ()) as pages,
        ):
            response, digest = await pages.fetch(site.base_url)
            worker = os.getpriority(os.PRIO_PROCESS, pages._workers[0].pid)
    assert response.status == 200 and digest is not None
    assert worker == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)


def test_the_products_of_a_link_cross_the_pipe_once() -> None:
    from scanner.amazon_urls import AmazonTarget
    from scanner.page_pipe import KnownProducts

    a = (
        "https://www.amazon.com/dp/B00X4WHP5E",
        AmazonTarget("www.amazon.com", ("B00X4WHP5E",), "me-20"),
    )
    b = ("https://amazon.de/dp/B01N5IB20Q", AmazonTarget("www.amazon.de", ("B01N5IB20Q",), None))
    worker, crawler = KnownProducts(), KnownProducts()
    first, second = worker.leave_out([a, b]), worker.leave_out([b, a, a])
    assert first == [a, b]
    assert second == [(b[0], None), (a[0], None), (a[0], None)]  # what the pipe carries
    assert crawler.fill_in(first) == [a, b]
    assert crawler.fill_in(second) == [b, a, a]
