"""Product checks against the sandbox Creators API (a real local server, the real client library),
and the scan pipeline against a tiny local site: requests, pacing, retries, fatal account errors."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from ccbb.sandbox.amazon_api import RATE_TOLERANCE, Catalogue, RunningSandbox, running_sandbox
from scanner.amazon import AmazonAccountError, ProductResult
from scanner.classify import Status
from scanner.creators_api import ProductChecker
from scanner.net import NetworkPolicy, make_session
from scanner.ratelimit import LocalRateLimiter
from scanner.scan import ScanFailed, ScanReport, run_scan
from scanner.settings import AmazonAccess, CrawlLimits, ScanConfig
from tests.timing import MachineLag

US = "www.amazon.com"
DE = "www.amazon.de"
TAG = "good-20"
SECRET = "cReD-s3cret-9f8e7d6c-never-shown"
FAST_TPS = 50.0

MIXED: dict[str, Any] = {
    "B0AVAIL001": {"title": "Kettle", "availability": "IN_STOCK", "message": "In Stock"},
    "B0SCARCE01": {
        "title": "Mug",
        "availability": "IN_STOCK_SCARCE",
        "message": "Only 2 left in stock - order soon.",
    },
    "B0PREORD01": {"title": "Novel", "availability": "PREORDER"},
    "B0OUTOFS01": {
        "title": "Toaster",
        "availability": "OUT_OF_STOCK",
        "message": "Currently unavailable.",
    },
    "B0UNAVAIL1": {"title": "Radio", "availability": "UNAVAILABLE"},
    "B0NOOFFER1": {"title": "Lamp", "availability": None},
    "B0UNKNOWN1": {"title": "Clock", "availability": "UNKNOWN"},
    "B0NOTACC01": {
        "error": {
            "code": "ItemNotAccessible",
            "message": "The ItemId B0NOTACC01 is not accessible through the Creators API.",
        }
    },
    "B0GONE0001": {
        "error": {"code": "ItemNotFound", "message": "The ItemId B0GONE0001 was not found."}
    },
    # B0MISSING1 is not in the catalogue: the sandbox answers InvalidParameterValue
}
MIXED_CHUNK = [*MIXED, "B0MISSING1"]

# expected (status, title, availability, error contains)
EXPECTED: dict[str, tuple[Status, str | None, str | None, str | None]] = {
    "B0AVAIL001": (Status.AVAILABLE, "Kettle", "In Stock", None),
    "B0SCARCE01": (Status.AVAILABLE, "Mug", "Only 2 left in stock - order soon.", None),
    "B0PREORD01": (Status.AVAILABLE, "Novel", "Available for pre-order.", None),
    "B0OUTOFS01": (Status.OUT_OF_STOCK, "Toaster", "Currently unavailable.", None),
    "B0UNAVAIL1": (Status.OUT_OF_STOCK, "Radio", "Currently unavailable.", None),
    "B0NOOFFER1": (Status.OUT_OF_STOCK, "Lamp", None, None),
    "B0UNKNOWN1": (Status.ERROR, "Clock", "UNKNOWN", "availability unknown"),
    "B0NOTACC01": (Status.ERROR, None, None, "ItemNotAccessible: The ItemId B0NOTACC01 is not"),
    "B0GONE0001": (Status.REMOVED, None, None, None),
    "B0MISSING1": (Status.REMOVED, None, None, None),
}


def asins(prefix: str, count: int, start: int = 1) -> list[str]:
    """Distinct well-formed ASINs, e.g. ``B0PAGE0001``."""
    assert len(prefix) == 4
    return [f"B0{prefix}{n:04d}" for n in range(start, start + count)]


SCAN_ASINS = asins("SCAN", 40)


def make_catalogue(not_found_mode: str = "200", tps: float = 0) -> Catalogue:
    def cred(cid: str, **kw: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "credential_id": cid,
            "credential_secret": SECRET,
            "version": "2.1",
            "partner_tags": [TAG],
            "marketplaces": [US],
            "tps": tps,
        }
        return base | kw

    items = dict(MIXED)
    items.update({a: {"title": f"Thing {a}", "availability": "IN_STOCK"} for a in SCAN_ASINS})
    return Catalogue.from_dict(
        {
            "credentials": [
                cred("main"),
                cred("lwa", version="3.1"),
                cred("poor", eligible=False),
                cred("paced", tps=5),
            ],
            "not_found_mode": not_found_mode,
            "items": {US: items},
        }
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(make_catalogue()) as sb:
        yield sb


def access_for(sb: RunningSandbox, **kw: Any) -> AmazonAccess:
    args: dict[str, Any] = {
        "credential_id": "main",
        "credential_secret": SECRET,
        "version": "2.1",
        "partner_tag": TAG,
        "marketplace": US,
        "api_host": sb.url,
        "auth_endpoint": sb.auth_endpoint,
        "tps": FAST_TPS,
        "retries": 3,
        "backoff": 0.05,
        "timeout": 5.0,
    }
    return AmazonAccess(**(args | kw))


@asynccontextmanager
async def checker_for(
    sb: RunningSandbox, tps: float = FAST_TPS, **kw: Any
) -> AsyncIterator[ProductChecker]:
    async with ProductChecker(access_for(sb, **kw), LocalRateLimiter(tps)) as checker:
        yield checker


def statuses(sb: RunningSandbox) -> list[int]:
    return [r["status"] for r in sb.requests()]


def by_asin(results: list[ProductResult]) -> dict[str, ProductResult]:
    return {r.asin: r for r in results}


# --------------------------------------------------------------------------
# One chunk
# --------------------------------------------------------------------------


async def test_mixed_chunk_statuses_titles_stock_and_links(sandbox: RunningSandbox) -> None:
    async with checker_for(sandbox) as checker:
        results = await checker.check(MIXED_CHUNK)

    assert [r.asin for r in results] == MIXED_CHUNK
    found = by_asin(results)
    for asin, (status, title, availability, error) in EXPECTED.items():
        result = found[asin]
        assert result.marketplace == US
        assert result.status is status, asin
        assert result.title == title, asin
        assert result.availability == availability, asin
        if error is None:
            assert result.error is None, asin
        else:
            assert result.error is not None and error in result.error, asin
        if title is not None:
            assert result.detail_page_url == (
                f"https://www.amazon.com/dp/{asin}?tag={TAG}&linkCode=ogi&th=1&psc=1"
            )
        else:
            assert result.detail_page_url is None, asin

    [record] = sandbox.requests()
    assert record["item_ids"] == MIXED_CHUNK
    assert record["marketplace"] == US
    assert record["status"] == 200
    assert checker.requests == 1


@pytest.mark.parametrize("mode", ["404", "200"])
async def test_partial_errors_in_both_not_found_modes(mode: str) -> None:
    chunk = ["B0AVAIL001", "B0NOTACC01", "B0MISSING1", "B0GONE0001"]
    async with running_sandbox(make_catalogue(mode)) as sb, checker_for(sb) as checker:
        found = by_asin(await checker.check(chunk))
        assert statuses(sb) == [200]
    assert found["B0AVAIL001"].status is Status.AVAILABLE
    assert found["B0NOTACC01"].status is Status.ERROR
    assert "not accessible" in (found["B0NOTACC01"].error or "")
    assert found["B0MISSING1"].status is Status.REMOVED
    assert found["B0GONE0001"].status is Status.REMOVED


@pytest.mark.parametrize("mode", ["404", "200"])
async def test_nothing_found_is_removed_in_both_modes(mode: str) -> None:
    chunk = ["B0MISSING1", "B0MISSING2", "B0GONE0001"]
    async with running_sandbox(make_catalogue(mode)) as sb, checker_for(sb) as checker:
        results = await checker.check(chunk)
        assert statuses(sb) == [int(mode)]
    assert [(r.asin, r.status) for r in results] == [(a, Status.REMOVED) for a in chunk]
    assert all(r.error is None and r.title is None for r in results)


async def test_lwa_credentials_of_version_3(sandbox: RunningSandbox) -> None:
    async with checker_for(sandbox, credential_id="lwa", version="3.1") as checker:
        [result] = await checker.check(["B0AVAIL001"])
    assert result.status is Status.AVAILABLE
    assert [r["credential_id"] for r in sandbox.requests()] == ["lwa"]


# --------------------------------------------------------------------------
# Requests: one per chunk, paced
# --------------------------------------------------------------------------


async def test_one_request_per_chunk(sandbox: RunningSandbox) -> None:
    chunks = [SCAN_ASINS[:10], SCAN_ASINS[10:20], SCAN_ASINS[20:25]]
    async with checker_for(sandbox) as checker:
        for chunk in chunks:
            results = await checker.check(chunk)
            assert [r.status for r in results] == [Status.AVAILABLE] * len(chunk)
    assert [r["item_ids"] for r in sandbox.requests()] == chunks
    assert checker.requests == 3


@pytest.mark.parametrize("size", [0, 11, 25])
async def test_check_refuses_chunks_outside_1_to_10(sandbox: RunningSandbox, size: int) -> None:
    async with checker_for(sandbox) as checker:
        with pytest.raises(ValueError, match="1 to 10"):
            await checker.check(SCAN_ASINS[:size])
    assert sandbox.requests() == []
    assert checker.requests == 0


async def test_requests_are_paced_at_the_credential_tps(sandbox: RunningSandbox) -> None:
    tps = 5.0
    chunks = [SCAN_ASINS[n : n + 10] for n in range(0, 40, 10)] + [MIXED_CHUNK]
    with MachineLag() as lag:
        async with checker_for(sandbox, tps=tps, credential_id="paced") as checker:
            results = await asyncio.gather(*(checker.check(chunk) for chunk in chunks))

    records = sandbox.requests()
    assert len(records) == len(chunks)
    assert [r["status"] for r in records] == [200] * len(chunks)  # no 429
    times = sorted(r["t"] for r in records)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # arrival jitter: the sandbox's tolerance, and what a busy machine took from this process
    assert min(gaps) >= 1 / tps - RATE_TOLERANCE - lag.stolen, (gaps, lag.stolen)
    assert sorted(map(tuple, (r["item_ids"] for r in records))) == sorted(map(tuple, chunks))
    assert all(len(r) == len(c) for r, c in zip(results, chunks, strict=True))


async def test_retries_are_paced_too(sandbox: RunningSandbox) -> None:
    tps = 5.0
    sandbox.inject_fault(503, count=1)
    chunks = [SCAN_ASINS[:10], SCAN_ASINS[10:20]]
    with MachineLag() as lag:
        async with checker_for(sandbox, tps=tps, credential_id="paced", backoff=0.0) as checker:
            results = await asyncio.gather(*(checker.check(chunk) for chunk in chunks))
    assert all(r.status is Status.AVAILABLE for chunk in results for r in chunk)
    records = sandbox.requests()
    assert [r["status"] for r in records] == [503, 200, 200]
    gaps = [b - a for a, b in itertools.pairwise(r["t"] for r in records)]
    assert min(gaps) >= 1 / tps - RATE_TOLERANCE - lag.stolen, (gaps, lag.stolen)


# --------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------


async def test_503_twice_then_success_is_retried(sandbox: RunningSandbox) -> None:
    sandbox.inject_fault(503, count=2)
    async with checker_for(sandbox) as checker:
        found = by_asin(await checker.check(["B0AVAIL001", "B0OUTOFS01"]))
    assert found["B0AVAIL001"].status is Status.AVAILABLE
    assert found["B0OUTOFS01"].status is Status.OUT_OF_STOCK
    assert statuses(sandbox) == [503, 503, 200]
    assert checker.requests == 3
    assert all(r["item_ids"] == ["B0AVAIL001", "B0OUTOFS01"] for r in sandbox.requests())


async def test_429_with_retry_after_is_retried(sandbox: RunningSandbox) -> None:
    sandbox.inject_fault(429, count=1, retry_after=0.1)
    async with checker_for(sandbox) as checker:
        [result] = await checker.check(["B0AVAIL001"])
    assert result.status is Status.AVAILABLE
    assert statuses(sandbox) == [429, 200]


@pytest.mark.parametrize(
    ("status", "named"),
    [(503, "503"), (500, "500"), (429, "Rate limit exceeded")],
)
async def test_failure_past_the_retries_is_an_error_for_every_asin(
    sandbox: RunningSandbox, status: int, named: str
) -> None:
    sandbox.inject_fault(status, count=3)
    chunk = ["B0AVAIL001", "B0OUTOFS01", "B0MISSING1"]
    async with checker_for(sandbox, retries=2) as checker:
        results = await checker.check(chunk)
    assert statuses(sandbox) == [status] * 3
    for result in results:
        assert result.status is Status.ERROR
        assert result.error is not None
        assert "3 attempts" in result.error
        assert named in result.error


async def test_network_failure_past_the_retries(sandbox: RunningSandbox) -> None:
    closed = free_port()
    access = access_for(sandbox, api_host=f"http://127.0.0.1:{closed}", retries=1)
    async with ProductChecker(access, LocalRateLimiter(FAST_TPS)) as checker:
        results = await checker.check(["B0AVAIL001", "B0OUTOFS01"])
    assert checker.requests == 2
    for result in results:
        assert result.status is Status.ERROR
        assert result.error is not None
        assert "unavailable after 2 attempts" in result.error
        assert "Request failed" in result.error


# --------------------------------------------------------------------------
# Fatal account errors
# --------------------------------------------------------------------------

FATAL_ON_CHECK = [
    pytest.param(
        {"credential_secret": "not-the-secret"},
        ["Credential Secret", "Credential ID", "version"],
        0,
        id="wrong-secret",
    ),
    pytest.param(
        {"credential_id": "nobody"}, ["Credential ID", "Credential Secret"], 0, id="unknown-id"
    ),
    pytest.param(
        {"partner_tag": "someone-else-20"},
        ["someone-else-20", "tracking ID"],
        1,
        id="partner-tag-not-tied",
    ),
    pytest.param({"marketplace": DE}, [DE, "country"], 1, id="marketplace-not-allowed"),
    pytest.param({"credential_id": "poor"}, ["not eligible", "sales"], 1, id="not-eligible"),
    pytest.param({"version": "2.2"}, ["version (2.2)"], 2, id="wrong-version-of-the-family"),
    pytest.param({"version": "3.1"}, ["version (3.1)"], 0, id="wrong-version-family"),
]


@pytest.mark.parametrize(("changes", "says", "requests"), FATAL_ON_CHECK)
async def test_account_errors_raise_with_the_fix(
    sandbox: RunningSandbox, changes: dict[str, Any], says: list[str], requests: int
) -> None:
    async with checker_for(sandbox, **changes) as checker:
        with pytest.raises(AmazonAccountError) as caught:
            await checker.check(["B0AVAIL001", "B0OUTOFS01"])
    message = str(caught.value)
    for words in says:
        assert words in message
    assert SECRET not in message
    assert "not-the-secret" not in message
    # an account error is not retried: nothing more can succeed
    assert len(sandbox.requests()) == requests


@pytest.mark.parametrize(
    "changes",
    [{"credential_secret": "not-the-secret"}, {"credential_id": "nobody"}],
)
async def test_verify_refuses_wrong_credentials_without_any_lookup(
    sandbox: RunningSandbox, changes: dict[str, Any]
) -> None:
    async with checker_for(sandbox, **changes) as checker:
        with pytest.raises(AmazonAccountError, match="Credential Secret") as caught:
            await checker.verify()
    assert SECRET not in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    assert sandbox.requests() == []
    assert [r["status"] for r in sandbox.token_requests()] == [401]


async def test_verify_accepts_good_credentials(sandbox: RunningSandbox) -> None:
    async with checker_for(sandbox) as checker:
        await checker.verify()
    assert sandbox.requests() == []
    assert [r["status"] for r in sandbox.token_requests()] == [200]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        pytest.param(
            {"credential_id": "AKIAIOSFODNN7EXAMPLE"},
            ["AKIA", "Creators API", "Credential ID"],
            id="old-pa-api-keys",
        ),
        pytest.param(
            {"credential_id": " akiaiosfodnn7example "}, ["AKIA"], id="old-keys-lower-case"
        ),
        pytest.param({"version": "5.0"}, ["'5.0'", "version", "2.1"], id="unknown-version"),
        pytest.param({"version": ""}, ["version"], id="empty-version"),
        pytest.param({"credential_secret": " "}, ["Credential Secret"], id="no-secret"),
        pytest.param({"partner_tag": ""}, ["partner tag"], id="no-tag"),
    ],
)
async def test_unusable_credentials_are_refused_before_any_request(
    sandbox: RunningSandbox, changes: dict[str, Any], says: list[str]
) -> None:
    with pytest.raises(AmazonAccountError) as caught:
        ProductChecker(access_for(sandbox, **changes), LocalRateLimiter(FAST_TPS))
    for words in says:
        assert words in str(caught.value)
    assert SECRET not in str(caught.value)
    assert sandbox.requests() == []
    assert sandbox.token_requests() == []


async def test_old_keys_fail_the_scan_before_any_request(sandbox: RunningSandbox) -> None:
    async with serve_site({"/": page([])}) as site:
        with pytest.raises(ScanFailed, match="AKIA"):
            await scan(site.url, sandbox, credential_id="AKIAIOSFODNN7EXAMPLE")
        assert site.log == []
    assert sandbox.requests() == []
    assert sandbox.token_requests() == []


def test_the_secret_never_shows_in_a_repr() -> None:
    access = AmazonAccess("my-id", SECRET, partner_tag=TAG)
    assert SECRET not in repr(access)
    assert SECRET not in str(access)
    assert "my-id" in repr(access)


# --------------------------------------------------------------------------
# The scan pipeline, against a local site
# --------------------------------------------------------------------------


class Site:
    def __init__(self, url: str, log: list[tuple[str, float, float]]) -> None:
        self.url = url
        self.log = log  # (path, start, served) of every request, in monotonic seconds

    def served(self, path: str) -> float:
        return next(end for p, _, end in self.log if p == path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def page(links: list[str], *, internal: list[str] | None = None) -> str:
    body = "".join(f'<p><a href="{href}">product</a></p>' for href in links)
    body += "".join(f'<a href="{href}">next</a>' for href in internal or [])
    return f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>"


def amazon(asin: str, host: str = US, shape: str = "/dp/{}") -> str:
    return f"https://{host}{shape.format(asin)}?tag={TAG}"


@asynccontextmanager
async def serve_site(
    pages: dict[str, str], delay: Callable[[str], float] = lambda path: 0.0
) -> AsyncIterator[Site]:
    log: list[tuple[str, float, float]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        wait = delay(request.path)
        if wait:
            await asyncio.sleep(wait)
        html = pages.get(request.path)
        log.append((request.path, start, time.monotonic()))
        if html is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        port = runner.addresses[0][1]
        yield Site(f"http://127.0.0.1:{port}/", log)
    finally:
        await runner.cleanup()


async def scan(site_url: str, sb: RunningSandbox, **kw: Any) -> ScanReport:
    config = ScanConfig(
        site=site_url,
        marketplace=US,
        partner_tag=TAG,
        limits=CrawlLimits(retries=1, backoff=0.01, timeout=10.0),
        network=NetworkPolicy(allow_private=True),
    )
    access = access_for(sb, **kw)
    async with make_session(config.network) as session:
        return await run_scan(config, access, session=session, limiter=LocalRateLimiter(access.tps))


@pytest.mark.parametrize("count", [1, 10, 11, 25])
async def test_scan_costs_one_request_per_10_unique_asins(
    sandbox: RunningSandbox, count: int
) -> None:
    us = SCAN_ASINS[:count]
    de = asins("GERM", 2) + us[:1]  # the same ASIN on another marketplace is another product
    thirds = [us[0::3], us[1::3], us[2::3]]
    pages = {
        "/": page(
            [amazon(a) for a in thirds[0]] + [amazon(a, DE) for a in de],
            internal=["/a", "/b"],
        ),
        # the same products again, under other URL shapes and on several pages
        "/a": page(
            [amazon(a) for a in thirds[1]] + [amazon(a, shape="/gp/product/{}") for a in us],
            internal=["/b"],
        ),
        "/b": page([amazon(a) for a in thirds[2]] + [amazon(a, DE) for a in de]),
    }
    async with serve_site(pages) as site:
        report = await scan(site.url, sandbox)

    records = sandbox.requests()
    assert len(records) == math.ceil(count / 10)
    assert report.api_requests == len(records)
    asked = [a for r in records for a in r["item_ids"]]
    assert sorted(asked) == sorted(us)  # each once, none from another marketplace
    assert all(len(r["item_ids"]) <= 10 and r["marketplace"] == US for r in records)

    assert len(report.products) == count + len(de)
    for asin in us:
        assert report.products[(US, asin)].status is Status.AVAILABLE
    for asin in de:
        result = report.products[(DE, asin)]
        assert result.status is Status.ERROR
        assert result.error is not None
        assert DE in result.error
    assert sorted(report.pages) == sorted(site.url.rstrip("/") + p for p in pages)


async def test_lookups_start_while_the_crawl_goes_on(sandbox: RunningSandbox) -> None:
    first = SCAN_ASINS[:10]
    later = SCAN_ASINS[10:14]
    chain = ["/", "/p1", "/p2", "/p3", "/p4"]
    pages = {"/": page([amazon(a) for a in first], internal=["/p1"])}
    for n, path in enumerate(chain[1:]):
        nxt = chain[n + 2 : n + 3]
        pages[path] = page([amazon(later[n])], internal=nxt)
    slow = {p: 0.2 for p in chain[1:]}

    async with serve_site(pages, delay=lambda path: slow.get(path, 0.0)) as site:
        report = await scan(site.url, sandbox)

    records = sandbox.requests()
    assert len(records) == 2
    assert records[0]["item_ids"] == first
    assert sorted(records[1]["item_ids"]) == sorted(later)
    last_page = site.served("/p4")
    last_started = next(start for p, start, _ in site.log if p == "/p4")
    # the full batch went out while the slow pages were still being crawled
    assert records[0]["t"] < last_started < last_page
    assert records[0]["t"] < site.served("/p2")
    assert len(report.products) == 14
    assert {r.status for r in report.products.values()} == {Status.AVAILABLE}


async def test_a_fatal_amazon_error_stops_the_scan_quickly(sandbox: RunningSandbox) -> None:
    chain = ["/", *(f"/p{n}" for n in range(1, 11))]
    pages = {"/": page([amazon(a) for a in SCAN_ASINS[:10]], internal=["/p1"])}
    for n, path in enumerate(chain[1:]):
        pages[path] = page([amazon(SCAN_ASINS[10 + n])], internal=chain[n + 2 : n + 3])
    slow = {p: 0.3 for p in chain[1:]}  # a 3 s crawl

    async with serve_site(pages, delay=lambda path: slow.get(path, 0.0)) as site:
        with MachineLag() as lag:
            started = time.monotonic()
            with pytest.raises(ScanFailed) as caught:
                await scan(site.url, sandbox, credential_id="poor")
            elapsed = time.monotonic() - started
        served = [p for p, _, _ in site.log]

    assert elapsed < lag.bound(sum(slow.values()) / 2), (elapsed, lag.stolen)  # half the crawl
    assert "not eligible" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert statuses(sandbox) == [403]  # the first batch, and nothing after it
    assert "/p10" not in served


async def test_an_unreachable_site_fails_the_scan(sandbox: RunningSandbox) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(ScanFailed) as caught:
        await scan(url, sandbox)
    assert str(caught.value).startswith("site unreachable")
    assert url in str(caught.value)
    assert sandbox.requests() == []


async def test_wrong_credentials_fail_the_scan_before_the_crawl(sandbox: RunningSandbox) -> None:
    async with serve_site({"/": page([amazon("B0AVAIL001")])}) as site:
        with pytest.raises(ScanFailed, match="Credential Secret") as caught:
            await scan(site.url, sandbox, credential_secret="not-the-secret")
        assert site.log == []
    assert SECRET not in str(caught.value)
    assert sandbox.requests() == []


async def test_the_secret_never_shows_in_the_logs(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pages = {
        "/": page([amazon(a) for a in MIXED_CHUNK] + [amazon("B0GERM0001", DE)], internal=["/a"]),
        "/a": page([amazon(a) for a in SCAN_ASINS[:5]]),
    }
    sandbox.inject_fault(503, count=1)
    async with serve_site(pages) as site:
        report = await scan(site.url, sandbox)
        with pytest.raises(ScanFailed):
            await scan(site.url, sandbox, credential_id="poor")
        with pytest.raises(ScanFailed):
            await scan(site.url, sandbox, credential_secret=SECRET + "-old")
    assert report.products[(US, "B0AVAIL001")].status is Status.AVAILABLE
    assert caplog.records  # the scan did log something
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.name
    assert SECRET not in caplog.text


async def test_a_fatal_amazon_error_after_the_crawl_stops_the_lookups(
    sandbox: RunningSandbox,
) -> None:
    # one fast page with 5 batches: the crawl is over long before the paced batches are sent
    pages = {"/": page([amazon(a) for a in SCAN_ASINS[:50]])}
    async with serve_site(pages) as site:
        with MachineLag() as lag:
            started = time.monotonic()
            with pytest.raises(ScanFailed, match="not eligible"):
                await scan(site.url, sandbox, credential_id="poor", tps=4.0)
            elapsed = time.monotonic() - started
    # the first refusal ends the scan: no more requests, no waiting for the other batches (four
    # more at 4 TPS: one second)
    assert statuses(sandbox) == [403]
    assert elapsed < lag.bound(0.2 + 1 / 4.0), (elapsed, lag.stolen)
