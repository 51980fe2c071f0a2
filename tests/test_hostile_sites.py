"""Hostile or broken sites against the real crawler and real local servers: charsets that are
not text encodings, a server that never sends headers, HTML nested 100,000 deep."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from aiohttp import web

from scanner.crawl import Crawler, FailedPage
from scanner.extract import MAX_NESTING, decode_body, extract_links, text_encoding, too_deep
from scanner.fetch import Fetcher
from scanner.net import NetworkPolicy, make_session, parse_connect_to
from scanner.page_workers import PageWorkers
from scanner.redirects import MemoryLinkCache, RedirectResolver
from scanner.settings import ScanConfig
from scanner.urls import SiteScope
from tests.sites import Site, page, raw
from tests.test_crawl import FAST, HOME, KETTLE, KETTLE_T, TOASTER, crawl
from tests.timing import MachineLag


@pytest.fixture
async def site() -> Site:
    s = await Site({}).start()
    yield s  # type: ignore[misc]
    await s.close()


@pytest.mark.parametrize("label", ["idna", "punycode", "rot13", "base64", "hex", "zlib", "bogus"])
async def test_a_charset_that_is_not_a_text_encoding_is_read_as_utf8(
    site: Site, label: str
) -> None:
    body = page(KETTLE, "/a", body="Café").encode("utf-8")
    site.routes.update({"/": raw(body, f"text/html; charset={label}"), "/a": page()})
    run = await crawl(site.connect("site.test"))
    assert run.failed == []
    assert run.pages == [HOME, "http://site.test/a"]
    assert [(link.href, link.target) for link in run.links] == [(KETTLE, KETTLE_T)]


def test_charset_labels_are_the_browsers() -> None:
    assert text_encoding("idna").name == "utf-8"
    assert text_encoding("punycode").name == "utf-8"
    assert text_encoding("latin1").name == "windows-1252"
    assert text_encoding("Shift_JIS").name == "shift_jis"
    assert decode_body("Café".encode("cp1252"), "iso-8859-1") == "Café"
    assert extract_links(b'<a href="/x">x</a>', "http://s.test/", "idna").hrefs == ["/x"]


async def test_a_site_that_never_sends_headers_fails_in_about_one_timeout(site: Site) -> None:
    """Every URL hangs. robots.txt, the three well-known sitemaps and the start page used to
    wait one timeout per attempt each, one after the other (~5 minutes with the defaults); now
    robots.txt, then the sitemaps and the page together, each once."""

    async def never(request: web.Request) -> web.StreamResponse:
        await site.closing.wait()
        return web.Response()

    for path in ("/", "/robots.txt", "/sitemap.xml", "/sitemap_index.xml", "/wp-sitemap.xml"):
        site.routes[path] = never
    limits = replace(FAST, timeout=0.5, budget=0.75, retries=2)  # the defaults' ratio, 30 / 45
    with MachineLag() as lag:
        started = time.monotonic()
        run = await crawl(site.connect("site.test"), limits=limits)
        elapsed = time.monotonic() - started
    assert run.pages == []
    assert run.failed == [FailedPage(HOME, None, "timed out: the site did not answer in time")]
    assert sorted(site.paths()) == sorted(
        ["/", "/robots.txt", "/sitemap.xml", "/sitemap_index.xml", "/wp-sitemap.xml"]
    )  # each once: a timed-out attempt is not repeated past the budget
    # two timeouts in a row (robots.txt, then the rest at once); the old way was 12
    assert elapsed < lag.bound(4 * limits.timeout), (elapsed, lag.stolen)


async def test_sitemaps_are_read_concurrently(site: Site) -> None:
    arrived: list[float] = []

    async def slow_sitemap(request: web.Request) -> web.StreamResponse:
        arrived.append(time.monotonic())
        await asyncio.sleep(0.3)
        return web.Response(status=404)

    site.routes.update({"/": page(), "/sitemap.xml": slow_sitemap,
                        "/sitemap_index.xml": slow_sitemap, "/wp-sitemap.xml": slow_sitemap})  # fmt: skip
    with MachineLag() as lag:
        await crawl(site.connect("site.test"))
    assert len(arrived) == 3
    # all three asked before the first answered
    assert max(arrived) - min(arrived) < lag.bound(0.3), (arrived, lag.stolen)


@pytest.mark.parametrize(
    "deep",
    [
        "<html><body>" + "<div>" * 100_000 + f'<a href="{KETTLE}">x</a></body></html>',
        # an end tag closes nothing when no element of its name is open: "<div></span>" nests a
        # div each time (40,000 of them took lexbor 3 s; the 10 MB a page may weigh, hours)
        "<div></span>" * 40_000,
    ],
    ids=["100000 divs", "stray end tags"],
)
async def test_html_nested_too_deep_is_skipped_with_a_reason(site: Site, deep: str) -> None:
    site.routes.update({"/": page("/deep", "/fine"), "/deep": deep, "/fine": page(KETTLE)})
    with MachineLag() as lag:
        started = time.monotonic()
        run = await crawl(site.connect("site.test"))
        elapsed = time.monotonic() - started
    assert run.pages == [HOME, "http://site.test/fine"]
    assert run.failed == [
        FailedPage(
            "http://site.test/deep",
            200,
            f"skipped: HTML nested deeper than {MAX_NESTING:,} elements",
            [HOME],  # the page that links to it
        )
    ]
    # parsing it took minutes (lexbor is quadratic in depth); the check, milliseconds
    assert elapsed < lag.bound(2.0), (elapsed, lag.stolen)


async def test_html_nested_100000_deep_is_skipped_by_page_workers_too(site: Site) -> None:
    site.routes["/deep"] = "<div>" * 100_000
    policy = NetworkPolicy(connect_to=parse_connect_to(site.connect("site.test")))
    async with (
        make_session(policy) as session,
        PageWorkers(1, session, policy, FAST, SiteScope.of(HOME), ()) as pages,
    ):
        response, digest = await pages.fetch("http://site.test/deep")
    assert digest is None
    assert response.error == f"skipped: HTML nested deeper than {MAX_NESTING:,} elements"


async def test_a_page_whose_html_takes_too_long_to_read_is_given_up_and_its_worker_replaced(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    # the depth check lets it through (it never nests deeper than 4,000); lexbor reads it in ~1 s
    slow = ("<div>" * 4000 + "</div>" * 4000) * 100
    assert not too_deep(slow.encode())
    site.routes.update({"/": page("/slow", "/fine"), "/slow": slow, "/fine": page(KETTLE, "/later"),
                        "/later": page(TOASTER)})  # fmt: skip
    limits = replace(FAST, page_workers=1, parse_timeout=0.2)
    policy = NetworkPolicy(connect_to=parse_connect_to(site.connect("site.test")))
    config = ScanConfig(site=HOME, limits=limits, network=policy)
    with MachineLag() as lag:
        started = time.monotonic()
        async with (
            make_session(policy) as session,
            PageWorkers(1, session, policy, limits, SiteScope.of(HOME), ()) as pages,
        ):
            fetcher = Fetcher(session, policy, limits)
            resolver = RedirectResolver(fetcher, MemoryLinkCache())
            run = await Crawler(config, fetcher, resolver, lambda _: None, pages=pages).run()
            await pages.fetch("http://site.test/fine")  # the worker started in its place answers
            alive = [worker.alive for worker in pages._workers]
        elapsed = time.monotonic() - started
    assert sorted(run.pages) == [HOME, "http://site.test/fine", "http://site.test/later"]
    assert [(f.url, f.status, f.error) for f in run.failed] == [
        ("http://site.test/slow", 200, "skipped: reading its HTML took over 0.2 s")
    ]
    assert sorted({link.href for link in run.links}) == sorted({KETTLE, TOASTER})
    assert alive == [False, True]
    assert "gave up on a page whose HTML took over 0.2 s to read" in caplog.text
    assert elapsed < lag.bound(3.0), (elapsed, lag.stolen)


def test_the_depth_check_counts_only_end_tags_that_close_something() -> None:
    assert too_deep(b"<div></span>" * (MAX_NESTING + 1))
    assert too_deep(b"<span><div></span>" * MAX_NESTING)  # each </span> closes one span at most
    assert not too_deep(b"<div><span></span></div>" * 20_000)  # what is closed is closed
    assert not too_deep(b"<div>" * MAX_NESTING + b"</span>" * 10_000)


def test_the_depth_check_does_not_count_what_does_not_nest() -> None:
    assert not too_deep(b"<p>x" * 20_000)  # unclosed paragraphs close each other
    assert not too_deep(b"<li>x<br><img src=a>" * 10_000)
    assert not too_deep(b"<div>x</div>" * 20_000)
    assert not too_deep(b"<div>" * MAX_NESTING)
    assert too_deep(b"<div>" * (MAX_NESTING + 1))
    assert too_deep(b"<span><b>" * MAX_NESTING)
