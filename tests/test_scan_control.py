"""Controlling a running scan from outside the engine: a user's cancel (``stop``), and results of
an earlier attempt reused after a crash (``known_products``, ``on_results``)."""

from __future__ import annotations

import asyncio
import time

from ccbb.demo import demo_environment
from scanner.amazon import ProductResult
from scanner.classify import Status
from scanner.net import make_session
from scanner.ratelimit import LocalRateLimiter
from scanner.scan import ProductKey, ScanReport, run_scan
from scanner.settings import AmazonAccess, ScanConfig
from tests.timing import MachineLag


async def scan(config: ScanConfig, access: AmazonAccess, **kw):  # type: ignore[no-untyped-def]
    async with make_session(config.network) as session:
        return await run_scan(config, access, session=session,
                              limiter=LocalRateLimiter(access.tps), **kw)  # fmt: skip


async def stopped_after(seconds: float, config: ScanConfig, access: AmazonAccess) -> ScanReport:
    """Start a scan, ask it to stop after ``seconds``; it must end within seconds (plus what a
    busy machine took), the user asked."""
    stop = asyncio.Event()
    task = asyncio.create_task(scan(config, access, stop=stop))
    await asyncio.sleep(seconds)
    with MachineLag() as lag:
        stop.set()
        t0 = time.monotonic()
        report = await task
        took = time.monotonic() - t0
    assert took < lag.bound(4.0), (took, lag.stolen)
    return report


async def test_stop_ends_the_scan_quickly_and_keeps_what_was_found() -> None:
    async with demo_environment(pages=400) as (config, access):
        slow = AmazonAccess(**{**access.__dict__, "tps": 2.0})  # lookups would take ~10 s
        report = await stopped_after(0.6, config, slow)
    assert report.cancelled
    assert report.pages  # what was crawled is kept
    unchecked = [
        p for p in report.products.values() if p.error == "not checked: the scan was cancelled"
    ]
    assert unchecked and all(p.status is Status.NOT_CHECKED for p in unchecked)
    checked = [p for p in report.products.values() if p not in unchecked]
    assert checked  # some lookups were done before the cancel, and kept


async def test_known_products_are_not_asked_again() -> None:
    async with demo_environment(pages=120) as (config, access):
        seen: list[ProductResult] = []
        first = await scan(config, access, on_results=seen.extend)
        known: dict[ProductKey, ProductResult] = {(r.marketplace, r.asin): r for r in seen}
        assert len(known) == sum(1 for k in first.products if k[0] == access.marketplace)
        second = await scan(config, access, known_products=known)
    assert second.api_requests == 0
    assert second.products == first.products
    assert len(second.links) == len(first.links)


async def test_stop_during_the_crawl() -> None:
    async with demo_environment(pages=3000) as (config, access):
        report = await stopped_after(0.5, config, access)
    assert report.cancelled
    assert 0 < len(report.pages) < 3000  # stopped mid-crawl, the pages crawled are kept
    assert all(link.page in set(report.pages) for link in report.links)
