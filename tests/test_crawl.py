"""The crawl against real local sites: robots.txt, sitemaps, scope, canonical URLs, redirects,
short and cloaked links, HTTP failures, body caps, charsets, the page budget and SSRF refusals.

Fakes only at the network edge: every site is a real aiohttp server on 127.0.0.1, reached under
real host names through ``--connect-to`` mappings, and the real crawler talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

import pytest
from aiohttp import web

from scanner.amazon_urls import AmazonTarget
from scanner.crawl import Crawler, CrawlResult, FailedPage, LinkOccurrence, UnresolvedLink
from scanner.fetch import Fetcher
from scanner.net import (
    BadConnectTo,
    NetworkPolicy,
    is_public,
    make_session,
    parse_connect_to,
)
from scanner.redirects import MemoryLinkCache, RedirectResolver
from scanner.settings import CrawlLimits, ScanConfig
from scanner.urls import cloak_prefix, site_url
from tests.sites import (
    Listener,
    Site,
    gzipped_xml,
    page,
    raw,
    redirect,
    sequence,
    sitemapindex,
    status,
    text,
    urlset,
    xml,
)
from tests.timing import MachineLag

FAST = CrawlLimits(timeout=3.0, connect_timeout=0.5, backoff=0.05, retries=2)
SITE = "http://site.test/"
HOME = "http://site.test/"
AMAZON_HOSTS = ("www.amazon.com", "amazon.com", "smile.amazon.com")

KETTLE = "https://www.amazon.com/dp/B000000001?tag=good-20"
KETTLE_T = AmazonTarget("www.amazon.com", ("B000000001",), "good-20")
TOASTER = "https://www.amazon.com/gp/product/B000000002?tag=other-21"
TOASTER_T = AmazonTarget("www.amazon.com", ("B000000002",), "other-21")


def refused(host: str, ip: str, reason: str = "loopback") -> str:
    return (
        f"refused to connect to {host} ({ip}: {reason}): private, loopback or reserved addresses "
        "are not crawled"
    )


def html(document: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    return text(document, "text/html")


@dataclass
class Crawl:
    result: CrawlResult
    targets: list[AmazonTarget]  # what on_target heard, in order

    @property
    def pages(self) -> list[str]:
        return sorted(self.result.pages)

    @property
    def links(self) -> list[LinkOccurrence]:
        return sorted(self.result.links, key=lambda o: (o.page, o.href))

    @property
    def failed(self) -> list[FailedPage]:
        return sorted(self.result.failed, key=lambda f: f.url)

    @property
    def unresolved(self) -> list[UnresolvedLink]:
        return sorted(self.result.unresolved, key=lambda u: (u.page, u.href))


async def crawl(
    connect_to: Iterable[str],
    *,
    site: str = SITE,
    limits: CrawlLimits = FAST,
    cloak: Iterable[str] = (),
    allow_private: bool = False,
    fetch_policy: NetworkPolicy | None = None,
) -> Crawl:
    """Crawl ``site`` the way ``scanner.scan`` wires the engine."""
    policy = NetworkPolicy(allow_private=allow_private, connect_to=parse_connect_to(connect_to))
    config = ScanConfig(
        site=site_url(site),
        cloak_prefixes=tuple(cloak_prefix(p) for p in cloak),
        limits=limits,
        network=policy,
    )
    targets: list[AmazonTarget] = []
    async with make_session(policy) as session:
        fetcher = Fetcher(session, fetch_policy or policy, limits)
        resolver = RedirectResolver(fetcher, MemoryLinkCache(), limits.max_redirect_hops)
        result = await Crawler(config, fetcher, resolver, targets.append).run()
    return Crawl(result, targets)


Serve = Callable[..., Awaitable[Site]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Site] = []

    async def start(routes: dict[str, object] | None = None) -> Site:
        site = await Site(dict(routes or {})).start()  # type: ignore[arg-type]
        started.append(site)
        return site

    yield start
    for site in started:
        await site.close()


@pytest.fixture
async def amazon() -> AsyncIterator[Listener]:
    """Amazon's hosts, mapped to a port that counts connections: must stay at zero."""
    listener = await Listener().start()
    yield listener
    await listener.close()


# ---- robots.txt -------------------------------------------------------------------------------


async def test_robots_disallowed_pages_are_neither_fetched_nor_counted(serve: Serve) -> None:
    site = await serve(
        {
            "/robots.txt": text("User-agent: *\nDisallow: /private\n"),
            "/": page("/private/offer", "/public"),
            "/public": page(),
            "/private/offer": page(KETTLE),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/public"]
    assert run.result.robots_skipped == 1
    assert site.hits("/private/offer") == []
    assert run.failed == []
    assert run.links == []


async def test_robots_group_for_affiliatelink_replaces_the_star_group(serve: Serve) -> None:
    robots = (
        "User-agent: *\nDisallow: /\n\n"
        "User-agent: OtherBot\nAllow: /\n\n"
        "User-agent: AffiliateLink\nDisallow: /members\n"
    )
    site = await serve(
        {
            "/robots.txt": text(robots),
            "/": page("/members/deal", "/reviews"),
            "/reviews": page(),
            "/members/deal": page(),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/reviews"]  # "*" says Disallow: / — not for us
    assert run.result.robots_skipped == 1
    assert site.hits("/members/deal") == []


async def test_robots_disallowing_everything_means_only_robots_txt_is_requested(
    serve: Serve,
) -> None:
    site = await serve(
        {
            "/robots.txt": text(
                "User-agent: *\nAllow: /\n\nUser-agent: AffiliateLink\nDisallow: /\n\n"
                "Sitemap: http://site.test/sitemap.xml\n"
            ),
            "/": page("/a"),
            "/sitemap.xml": xml(urlset("http://site.test/a")),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == []
    assert run.result.robots_skipped == 1
    assert site.paths() == ["/robots.txt"]  # not even the sitemaps


async def test_robots_txt_that_redirects_to_www_is_obeyed(serve: Serve) -> None:
    site = await serve(
        {
            "site.test/robots.txt": redirect("http://www.site.test/robots.txt"),
            "www.site.test/robots.txt": text("User-agent: *\nDisallow: /secret\n"),
            "/": page("/secret/x", "/open"),
            "/open": page(),
            "/secret/x": page(),
        }
    )
    run = await crawl(site.connect("site.test", "www.site.test"))
    assert run.pages == [HOME, "http://site.test/open"]
    assert site.hits("/secret/x") == []
    assert run.result.robots_skipped == 1


async def test_crawl_delay_spaces_the_requests(serve: Serve) -> None:
    site = await serve(
        {
            "/robots.txt": text("User-agent: AffiliateLink\nCrawl-delay: 0.2\n"),
            "/": page("/a", "/b"),
            "/a": page(),
            "/b": page(),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/a", "http://site.test/b"]
    # robots.txt, 3 well-known sitemaps, 3 pages; every request after robots.txt is spaced
    assert len(site.log) == 7
    times = [hit.at for hit in site.log[1:]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.19, gaps


async def test_crawl_delay_of_the_www_host_robots_redirect_to_applies_there(
    serve: Serve,
) -> None:
    """The apex redirects to www.: the Crawl-delay of www.'s robots.txt spaces www. requests."""
    site = await serve(
        {
            "site.test/robots.txt": redirect("http://www.site.test/robots.txt"),
            "www.site.test/robots.txt": text("User-agent: *\nCrawl-delay: 0.2\n"),
            "site.test/": redirect("http://www.site.test/"),
            "www.site.test/": page("/a", "/b"),
            "www.site.test/a": page(),
            "www.site.test/b": page(),
        }
    )
    run = await crawl(site.connect("site.test", "www.site.test"))
    assert run.pages == [
        "http://www.site.test/",
        "http://www.site.test/a",
        "http://www.site.test/b",
    ]
    times = [hit.at for hit in site.log if hit.host == "www.site.test"][1:]  # after robots.txt
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 3 and min(gaps) >= 0.19, gaps


# ---- sitemaps ---------------------------------------------------------------------------------


async def test_sitemap_lines_of_robots_txt_are_read(serve: Serve) -> None:
    site = await serve(
        {
            "/robots.txt": text("User-agent: *\nAllow: /\nSitemap: http://site.test/maps/a.xml\n"),
            "/maps/a.xml": xml(urlset("http://site.test/orphan")),
            "/": page(),
            "/orphan": page(KETTLE),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/orphan"]
    assert run.links == [LinkOccurrence("http://site.test/orphan", KETTLE, "direct", KETTLE_T)]
    assert run.failed == []


@pytest.mark.parametrize(
    "routes",
    [
        {"/sitemap.xml": xml(urlset("http://site.test/orphan"))},
        {
            "/sitemap_index.xml": xml(sitemapindex("http://site.test/post-sitemap.xml")),
            "/post-sitemap.xml": xml(urlset("http://site.test/orphan")),
        },
        {
            "/wp-sitemap.xml": xml(sitemapindex("http://site.test/wp-sitemap-posts-post-1.xml")),
            "/wp-sitemap-posts-post-1.xml": xml(urlset("http://site.test/orphan")),
        },
    ],
    ids=["sitemap.xml", "sitemap_index.xml", "wp-sitemap.xml"],
)
async def test_well_known_sitemaps_seed_orphan_pages(serve: Serve, routes: dict) -> None:
    site = await serve({"/": page(), "/orphan": page(), **routes})
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/orphan"]
    assert run.failed == []  # missing sitemaps and sitemap files themselves are not pages


async def test_nested_sitemap_indexes_and_gzipped_sitemaps(serve: Serve) -> None:
    site = await serve(
        {
            "/": page(),
            "/sitemap_index.xml": xml(sitemapindex("http://site.test/maps/level1.xml")),
            "/maps/level1.xml": xml(
                sitemapindex(
                    "http://site.test/maps/posts.xml.gz", "http://site.test/maps/level2.xml"
                )
            ),
            "/maps/posts.xml.gz": gzipped_xml(urlset("http://site.test/from-gz")),
            "/maps/level2.xml": xml(sitemapindex("http://site.test/maps/pages.xml")),
            "/maps/pages.xml": xml(urlset("http://site.test/deep")),
            "/from-gz": page(),
            "/deep": page(),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/deep", "http://site.test/from-gz"]
    assert len(site.hits("/maps/posts.xml.gz")) == 1
    assert run.failed == []


async def test_off_site_urls_in_sitemaps_are_ignored(serve: Serve) -> None:
    site = await serve(
        {
            "/": page(),
            "/sitemap.xml": xml(
                urlset(
                    "http://other.test/page",
                    "http://sub.site.test/page",
                    "http://site.test/mine",
                    "http://www.site.test/also-mine",
                )
            ),
            "/mine": page(),
            "/also-mine": page(),
        }
    )
    elsewhere = await serve({"/page": page()})
    run = await crawl(
        site.connect("site.test", "www.site.test")
        + elsewhere.connect("other.test", "sub.site.test")
    )
    assert run.pages == [HOME, "http://site.test/mine", "http://www.site.test/also-mine"]
    assert elsewhere.log == []


async def test_image_entries_of_a_sitemap_are_not_fetched(serve: Serve) -> None:
    image = "<image:image><image:loc>http://site.test/uploads/kettle</image:loc></image:image>"
    site = await serve(
        {
            "/": page(),
            "/sitemap.xml": xml(urlset("http://site.test/post", extra=image)),
            "/post": page(),
            "/uploads/kettle": raw(b"\x89PNG\r\n", "image/png"),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/post"]
    assert site.hits("/uploads/kettle") == []


# ---- scope ------------------------------------------------------------------------------------


async def test_apex_and_www_are_one_site_and_other_hosts_are_not_crawled(serve: Serve) -> None:
    site = await serve(
        {
            "site.test/": page(
                "http://www.site.test/guide",
                "http://other.test/",
                "http://sub.site.test/",
                "http://site.test.evil.test/",
            ),
            "www.site.test/": redirect("http://site.test/"),
            "www.site.test/guide": page("http://www.site.test/", "/tips"),
            "www.site.test/tips": page(),
        }
    )
    elsewhere = await serve({"/": page()})
    run = await crawl(
        site.connect("site.test", "www.site.test")
        + elsewhere.connect("other.test", "sub.site.test", "site.test.evil.test")
    )
    assert run.pages == [HOME, "http://www.site.test/guide", "http://www.site.test/tips"]
    assert elsewhere.log == []
    assert run.failed == []


# ---- canonical URLs ---------------------------------------------------------------------------


async def test_canonical_duplicates_count_once_with_their_links(serve: Serve) -> None:
    post = page(KETTLE, canonical="http://site.test/post")
    site = await serve(
        {
            "/": page("/post?replytocom=1", "/post?replytocom=2#respond", "/post"),
            "/post": post,
            "/post?replytocom=1": post,
            "/post?replytocom=2": post,
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/post"]
    assert run.links == [LinkOccurrence("http://site.test/post", KETTLE, "direct", KETTLE_T)]


async def test_duplicates_only_a_canonical_can_merge_count_once(serve: Serve) -> None:
    # AMP, shortlink (?p=) and print views of one post: different crawl keys, one canonical URL
    post = page(KETTLE, canonical="http://site.test/post/")
    site = await serve(
        {
            "/": page("/amp/post/", "/?p=12", "/post/print/", "/post/?print=1"),
            "/amp/post/": post,
            "/?p=12": post,
            "/post/print/": post,
            "/post/?print=1": post,
            "/post/": post,
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/post/"]
    assert run.links == [LinkOccurrence("http://site.test/post/", KETTLE, "direct", KETTLE_T)]
    assert site.hits("/post/") != []  # the canonical URL is crawled even though nothing links it


async def test_a_canonical_in_the_body_is_not_the_page_s_canonical(serve: Serve) -> None:
    stray = '<link rel="canonical" href="http://site.test/">'  # e.g. pasted by a page builder
    site = await serve({"/": page("/guide/"), "/guide/": page(KETTLE, body=stray)})
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/guide/"]
    assert run.links == [LinkOccurrence("http://site.test/guide/", KETTLE, "direct", KETTLE_T)]


async def test_a_link_written_as_an_iri_and_percent_encoded_is_one_page(serve: Serve) -> None:
    site = await serve(
        {
            "/": page(
                "/caf\u00e9\u200b/", "/caf%c3%a9%E2%80%8B/", "http://site.test/caf%C3%A9%e2%80%8b/"
            ),
            "/caf\u00e9\u200b/": page(KETTLE),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/caf%C3%A9%E2%80%8B/"]
    assert run.links == [
        LinkOccurrence("http://site.test/caf%C3%A9%E2%80%8B/", KETTLE, "direct", KETTLE_T)
    ]
    assert len(site.hits("/caf\u00e9\u200b/")) == 1


# ---- redirects, cloaked and short links -------------------------------------------------------


async def test_same_site_redirects_are_followed_and_not_counted(serve: Serve) -> None:
    site = await serve(
        {
            "/": page("/old-review"),
            "/old-review": redirect("/review"),
            "/review": page("/moved"),
            "/moved": redirect("http://www.site.test/final", 308),
            "www.site.test/final": page(),
        }
    )
    run = await crawl(site.connect("site.test", "www.site.test"))
    assert run.pages == [HOME, "http://site.test/review", "http://www.site.test/final"]
    assert run.failed == []
    assert run.links == []


async def test_same_site_url_redirecting_to_amazon_is_a_cloaked_link_on_every_page(
    serve: Serve, amazon: Listener
) -> None:
    site = await serve(
        {
            "/": page("/recommends/kettle", "/other"),
            "/other": page("/recommends/kettle"),
            "/recommends/kettle": redirect(KETTLE, 302),
        }
    )
    run = await crawl(site.connect("site.test") + amazon.connect(*AMAZON_HOSTS))
    cloaked = "http://site.test/recommends/kettle"
    assert run.pages == [HOME, "http://site.test/other"]
    assert run.links == [
        LinkOccurrence(HOME, cloaked, "cloaked", KETTLE_T),
        LinkOccurrence("http://site.test/other", cloaked, "cloaked", KETTLE_T),
    ]
    assert len(site.hits("/recommends/kettle")) == 1
    assert KETTLE_T in run.targets
    assert amazon.connections == 0


async def test_redirect_chain_to_amazon_is_one_cloaked_link(serve: Serve, amazon: Listener) -> None:
    site = await serve({"/": page("/a"), "/a": redirect("/b"), "/b": redirect(KETTLE, 302)})
    run = await crawl(site.connect("site.test") + amazon.connect(*AMAZON_HOSTS))
    assert run.pages == [HOME]
    assert run.links == [LinkOccurrence(HOME, "http://site.test/a", "cloaked", KETTLE_T)]
    assert amazon.connections == 0


async def test_same_site_chain_longer_than_the_hop_limit_is_not_followed_to_amazon(
    serve: Serve,
) -> None:
    routes: dict[str, object] = {"/": page("/five/1", "/six/1")}
    for name, hops in (("five", 5), ("six", 6)):
        for i in range(1, hops):
            routes[f"/{name}/{i}"] = redirect(f"/{name}/{i + 1}")
        routes[f"/{name}/{hops}"] = redirect(KETTLE)
    site = await serve(routes)
    run = await crawl(site.connect("site.test"))
    assert run.links == [LinkOccurrence(HOME, "http://site.test/five/1", "cloaked", KETTLE_T)]


def refresh_page(to: str, *, delay: int = 0, script: bool = True) -> str:
    """A static site's redirect page (jekyll-redirect-from, Hugo aliases, hand-made /go/ pages)."""
    js = f'<script>location.replace("{to}")</script>' if script else ""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Redirecting…</title>'
        f'<meta http-equiv="refresh" content="{delay}; url={to}">{js}</head>'
        f'<body><a href="{to}">Click here if you are not redirected.</a></body></html>'
    )


async def test_a_same_site_page_refreshing_to_a_short_link_is_a_cloaked_link(
    serve: Serve, amazon: Listener
) -> None:
    short = await serve({"/kettle": redirect(KETTLE)})
    site = await serve(
        {
            "/": page("/out/kettle/", "/other/"),
            "/other/": page("/out/kettle/", "/out/toaster/"),
            "/out/kettle/": refresh_page("http://amzn.to/kettle"),
            "/out/toaster/": f"<script>window.location.replace('{TOASTER}')</script>",
        }
    )
    run = await crawl(
        site.connect("site.test") + short.connect("amzn.to") + amazon.connect(*AMAZON_HOSTS)
    )
    kettle, toaster = "http://site.test/out/kettle/", "http://site.test/out/toaster/"
    assert run.pages == [HOME, "http://site.test/other/"]  # the refresh pages are not pages
    assert run.links == [
        LinkOccurrence(HOME, kettle, "cloaked", KETTLE_T),
        LinkOccurrence("http://site.test/other/", kettle, "cloaked", KETTLE_T),
        LinkOccurrence("http://site.test/other/", toaster, "cloaked", TOASTER_T),
    ]
    assert run.unresolved == []  # the "click here" link of a refresh page is not a link
    assert {KETTLE_T, TOASTER_T} <= set(run.targets)
    assert len(site.hits("/out/kettle/")) == 1
    assert len(short.hits("/kettle")) == 1
    assert amazon.connections == 0


async def test_refresh_pages_under_a_cloak_prefix_are_resolved_hop_by_hop(
    serve: Serve, amazon: Listener
) -> None:
    site = await serve(
        {
            "/": page("/go/kettle/", "/go/hop/", "/go/later/"),
            "/go/kettle/": refresh_page(KETTLE, script=False),
            "/go/hop/": refresh_page("/go/moved/"),  # a refresh, then an HTTP redirect
            "/go/moved/": redirect(TOASTER, 302),
            "/go/later/": refresh_page(KETTLE, delay=10, script=False),  # not at once
        }
    )
    run = await crawl(
        site.connect("site.test") + amazon.connect(*AMAZON_HOSTS), cloak=["http://site.test/go/"]
    )
    assert run.pages == [HOME]
    assert run.links == [
        LinkOccurrence(HOME, "http://site.test/go/hop/", "cloaked", TOASTER_T),
        LinkOccurrence(HOME, "http://site.test/go/kettle/", "cloaked", KETTLE_T),
    ]
    assert run.unresolved == [
        UnresolvedLink(
            HOME, "http://site.test/go/later/", "cloaked", "does not redirect to Amazon (HTTP 200)"
        )
    ]
    assert amazon.connections == 0


async def test_a_refresh_to_another_page_of_the_site_is_a_redirect(serve: Serve) -> None:
    site = await serve(
        {
            "/": page("/2019/old-post/", "/news/"),
            "/2019/old-post/": refresh_page("/new-post/", script=False),  # a Hugo alias
            "/new-post/": page(KETTLE),
            "/news/": page(head='<meta http-equiv="refresh" content="300">'),  # reloads itself
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/new-post/", "http://site.test/news/"]
    assert run.links == [LinkOccurrence("http://site.test/new-post/", KETTLE, "direct", KETTLE_T)]


async def test_links_under_a_cloak_prefix_are_resolved(serve: Serve, amazon: Listener) -> None:
    site = await serve(
        {
            "/": page("/go/kettle", "/go/gone", "/go/home"),
            "/go/kettle": redirect(KETTLE, 302),
            "/go/home": redirect("/"),
        }
    )
    run = await crawl(
        site.connect("site.test") + amazon.connect(*AMAZON_HOSTS), cloak=["http://site.test/go/"]
    )
    assert run.pages == [HOME]
    assert run.links == [LinkOccurrence(HOME, "http://site.test/go/kettle", "cloaked", KETTLE_T)]
    assert run.unresolved == [
        UnresolvedLink(
            HOME, "http://site.test/go/gone", "cloaked", "does not redirect to Amazon (HTTP 404)"
        ),
        UnresolvedLink(
            HOME, "http://site.test/go/home", "cloaked", "does not redirect to Amazon (HTTP 200)"
        ),
    ]
    assert amazon.connections == 0


async def test_short_links_are_resolved_once_without_contacting_amazon(
    serve: Serve, amazon: Listener
) -> None:
    short = await serve(
        {
            "/kettle": redirect(KETTLE),
            "/chain": redirect("http://amzn.to/toaster"),
            "/toaster": redirect(TOASTER),
        }
    )
    site = await serve(
        {
            "/": page("http://amzn.to/kettle", "/p2"),
            "/p2": page("http://amzn.to/kettle", "http://amzn.to/chain"),
        }
    )
    run = await crawl(
        site.connect("site.test") + short.connect("amzn.to") + amazon.connect(*AMAZON_HOSTS)
    )
    assert run.pages == [HOME, "http://site.test/p2"]
    assert run.links == [
        LinkOccurrence(HOME, "http://amzn.to/kettle", "short", KETTLE_T),
        LinkOccurrence("http://site.test/p2", "http://amzn.to/chain", "short", TOASTER_T),
        LinkOccurrence("http://site.test/p2", "http://amzn.to/kettle", "short", KETTLE_T),
    ]
    assert short.paths().count("/kettle") == 1  # one request per distinct short link
    assert {KETTLE_T, TOASTER_T} <= set(run.targets)
    assert {hit.host for hit in short.log} == {"amzn.to"}
    assert amazon.connections == 0


async def test_short_link_hop_limit(serve: Serve, amazon: Listener) -> None:
    routes: dict[str, object] = {}
    for name, hops in (("five", 5), ("six", 6)):
        for i in range(1, hops):
            routes[f"/{name}{i}"] = redirect(f"http://amzn.to/{name}{i + 1}")
        routes[f"/{name}{hops}"] = redirect(KETTLE)
    short = await serve(routes)
    site = await serve({"/": page("http://amzn.to/five1", "http://amzn.to/six1")})
    run = await crawl(
        site.connect("site.test") + short.connect("amzn.to") + amazon.connect(*AMAZON_HOSTS)
    )
    assert run.links == [LinkOccurrence(HOME, "http://amzn.to/five1", "short", KETTLE_T)]
    assert run.unresolved == [
        UnresolvedLink(HOME, "http://amzn.to/six1", "short", "more than 5 redirects")
    ]
    assert short.hits("/six6") == []  # gave up after five requests
    assert amazon.connections == 0


async def test_short_link_answering_404_is_unresolved(serve: Serve) -> None:
    short = await serve({})
    site = await serve({"/": page("http://amzn.to/gone")})
    run = await crawl(site.connect("site.test") + short.connect("amzn.to"))
    assert run.links == []
    assert run.unresolved == [
        UnresolvedLink(
            HOME, "http://amzn.to/gone", "short", "does not redirect to Amazon (HTTP 404)"
        )
    ]
    assert run.pages == [HOME]


# ---- HTTP failures, retries, timeouts ---------------------------------------------------------


async def test_404_and_500_pages_are_failed_not_counted_and_500_is_retried(serve: Serve) -> None:
    site = await serve(
        {
            "/": page("/missing", "/broken", "/a"),
            "/a": html(page("/missing")),
            "/broken": status(500),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/a"]
    # each failed page says which pages link to it (where to fix the link)
    assert sorted(run.failed, key=lambda f: f.url) == [
        FailedPage("http://site.test/broken", 500, "HTTP 500", [HOME]),
        FailedPage("http://site.test/missing", 404, "HTTP 404", [HOME, "http://site.test/a"]),
    ]
    assert len(site.hits("/broken")) == 1 + FAST.retries
    assert len(site.hits("/missing")) == 1


async def test_5xx_is_retried_until_the_page_answers(serve: Serve) -> None:
    site = await serve(
        {"/": page("/flaky"), "/flaky": sequence(status(500), status(502), html(page()))}
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/flaky"]
    assert run.failed == []
    assert len(site.hits("/flaky")) == 3


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_is_honoured(serve: Serve, code: int) -> None:
    site = await serve(
        {
            "/": page("/busy"),
            "/busy": sequence(status(code, {"Retry-After": "1"}), html(page())),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/busy"]
    assert run.failed == []
    first, second = site.hits("/busy")
    assert 0.95 <= second.at - first.at < 2.0


async def test_a_page_slower_than_the_timeout_fails_as_timed_out(serve: Serve) -> None:
    site = await serve({"/": page("/slow")})

    async def slow(request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(site.closing.wait(), 5)
        return web.Response(text=page(), content_type="text/html")

    site.routes["/slow"] = slow
    limits = replace(FAST, timeout=0.3, retries=1)
    with MachineLag() as lag:
        started = time.monotonic()
        run = await crawl(site.connect("site.test"), limits=limits)
        took = time.monotonic() - started
    assert run.pages == [HOME]
    assert run.failed == [
        FailedPage(
            "http://site.test/slow", None, "timed out: the site did not answer in time", [HOME]
        )
    ]
    assert len(site.hits("/slow")) == 2
    # two attempts of one timeout each (the page waited 5 s), plus robots.txt and sitemaps
    assert took < lag.bound(4 * limits.timeout + 1.0), (took, lag.stolen)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_fails_without_being_read(serve: Serve, declared: bool) -> None:
    total = 64 * 1024 * 1024
    sent = 0
    done = asyncio.Event()

    async def huge(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        if declared:
            response.content_length = total
        await response.prepare(request)
        chunk = b"<p>" + b"x" * (64 * 1024 - 3)
        try:
            while sent < total:
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        finally:
            done.set()
        return response

    site = await serve({"/": page("/huge"), "/huge": huge})
    run = await crawl(site.connect("site.test"), limits=replace(FAST, max_body=100_000))
    assert run.pages == [HOME]
    assert run.failed == [
        FailedPage("http://site.test/huge", 200, "page larger than 100 kB: skipped", [HOME])
    ]
    await asyncio.wait_for(done.wait(), 5)
    assert sent < total // 4  # the crawler hung up long before the end


async def test_a_compressed_body_inflating_past_the_cap_fails(serve: Serve) -> None:
    bomb = gzip.compress(b"<html><body>" + b" " * 30_000_000)
    assert len(bomb) < 100_000
    site = await serve(
        {
            "/": page("/bomb"),
            "/bomb": raw(bomb, "text/html", {"Content-Encoding": "gzip"}),
        }
    )
    run = await crawl(site.connect("site.test"), limits=replace(FAST, max_body=1_000_000))
    assert run.pages == [HOME]
    assert run.failed == [
        FailedPage("http://site.test/bomb", 200, "page larger than 1 MB: skipped", [HOME])
    ]


async def test_non_html_content_is_neither_counted_nor_failed(serve: Serve) -> None:
    site = await serve(
        {
            "/": page("/files/guide", "/images/banner", "/feed", "/photo.jpg"),
            "/files/guide": raw(b"%PDF-1.4\n" + b"0" * 1000, "application/pdf"),
            "/images/banner": raw(b"\x89PNG\r\n\x1a\n" + b"0" * 1000, "image/png"),
            "/feed": raw(b"<rss></rss>", "application/rss+xml"),
            "/photo.jpg": raw(b"\xff\xd8\xff", "image/jpeg"),
        }
    )
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME]
    assert run.failed == []
    assert site.hits("/photo.jpg") == []  # an asset by its name: never requested


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        ("text/html", '<meta charset="windows-1252">'),
        ("text/html", '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'),
        ("text/html; charset=iso-8859-1", ""),
        ("text/html; charset=windows-1252", '<meta charset="utf-8">'),  # the header wins
    ],
    ids=["meta-charset", "meta-http-equiv", "header", "header-over-meta"],
)
async def test_legacy_charsets_are_decoded(serve: Serve, content_type: str, head: str) -> None:
    slug = "https://www.amazon.com/Bouilloire-électrique/dp/B000000001?tag=good-20"
    document = page("/café", slug, head=head).encode("cp1252")
    site = await serve({"/": raw(document, content_type), "/café": page()})
    run = await crawl(site.connect("site.test"))
    assert run.pages == [HOME, "http://site.test/caf%C3%A9"]  # listed percent-encoded
    assert len(site.hits("/café")) == 1  # requested as /caf%C3%A9, like a browser does
    encoded = slug.replace("é", "%C3%A9")
    assert run.links == [LinkOccurrence(HOME, encoded, "direct", KETTLE_T)]


async def test_a_malformed_href_does_not_lose_the_page(serve: Serve) -> None:
    site = await serve(
        {
            "/": page(
                "http://amazon.com:99999/dp/B000000002",
                "http://[amazon.com/dp/B000000003",
                "http://site.test:99999/x",
                KETTLE,
                "/next",
            ),
            "/next": page(),
        }
    )
    run = await crawl(site.connect("site.test"), cloak=["http://site.test/go/"])
    assert run.pages == [HOME, "http://site.test/next"]
    assert run.failed == []
    assert run.links == [LinkOccurrence(HOME, KETTLE, "direct", KETTLE_T)]


# ---- the page budget --------------------------------------------------------------------------


async def test_the_crawl_stops_at_max_pages_and_says_so(serve: Serve) -> None:
    routes: dict[str, object] = {"/": page(*(f"/p{i}" for i in range(10)))}
    routes.update({f"/p{i}": page() for i in range(10)})
    site = await serve(routes)
    run = await crawl(site.connect("site.test"), limits=replace(FAST, max_pages=3))
    assert len(run.pages) == 3
    assert HOME in run.pages
    assert run.result.truncated is True


async def test_a_site_that_fits_the_budget_is_not_truncated(serve: Serve) -> None:
    site = await serve({"/": page("/a", "/b"), "/a": page(), "/b": page()})
    run = await crawl(site.connect("site.test"), limits=replace(FAST, max_pages=3))
    assert len(run.pages) == 3
    assert run.result.truncated is False


# ---- SSRF -------------------------------------------------------------------------------------

NO_PRIVATE = replace(FAST, connect_timeout=0.3, timeout=1.0)


async def test_a_site_on_a_loopback_ip_is_refused(serve: Serve) -> None:
    site = await serve({"/": page()})
    run = await crawl([], site=site.url("/"), allow_private=False, limits=NO_PRIVATE)
    assert run.pages == []
    assert run.failed == [FailedPage(site.url("/"), None, refused("127.0.0.1", "127.0.0.1"))]
    assert site.log == []


async def test_a_host_name_mapped_by_the_operator_reaches_loopback_and_nothing_else(
    serve: Serve,
) -> None:
    """A ``--connect-to`` mapping (the demo's, the tests') allows its own target only: a link on
    the mapped site to another loopback server is not followed there."""
    other = await serve({"/x": page()})
    site = await serve({"/": page("/go/x"), "/go/x": redirect(other.url("/x"))})
    run = await crawl(
        site.connect("site.test"),
        cloak=["http://site.test/go/"],
        allow_private=False,
        limits=NO_PRIVATE,
    )
    assert run.pages == [HOME]
    assert run.unresolved == [
        UnresolvedLink(HOME, "http://site.test/go/x", "cloaked", refused("127.0.0.1", "127.0.0.1"))
    ]
    assert other.log == []


async def test_localhost_is_refused(serve: Serve) -> None:
    site = await serve({"/": page()})
    start = f"http://localhost:{site.port}/"
    run = await crawl([], site=start, allow_private=False, limits=NO_PRIVATE)
    assert run.pages == []
    [failure] = run.failed
    assert failure.url == start
    assert failure.error.startswith("refused to connect to localhost (")
    assert failure.error.endswith("private, loopback or reserved addresses are not crawled")
    assert site.log == []


async def test_a_short_form_loopback_ip_is_not_reached(serve: Serve) -> None:
    site = await serve({"/": page()})
    start = f"http://127.1:{site.port}/"
    run = await crawl([], site=start, allow_private=False, limits=NO_PRIVATE)
    assert run.pages == []
    assert [failure.url for failure in run.failed] == [start]
    assert site.log == []


async def test_redirects_to_a_loopback_address_are_refused(serve: Serve) -> None:
    """A site's redirect (cloaked link, short link, page) must not lead the crawler to a private
    address. The site itself must be reachable on loopback here, so the session lets loopback
    through while the Fetcher's policy — the check a redirect to ``http://127.0.0.1/`` meets
    first — refuses private addresses."""
    victim = await serve({"/admin": page(), "/x": page(), "/secret": page()})
    short = await serve({"/x": redirect(victim.url("/x"))})
    site = await serve(
        {
            "/": page("/go/steal", "/moved", "http://amzn.to/x"),
            "/go/steal": redirect(victim.url("/admin"), 302),
            "/moved": redirect(victim.url("/secret")),
        }
    )
    run = await crawl(
        site.connect("site.test") + short.connect("amzn.to"),
        cloak=["http://site.test/go/"],
        fetch_policy=NetworkPolicy(allow_private=False),
    )
    assert run.pages == [HOME]
    assert run.links == []
    assert run.unresolved == [
        UnresolvedLink(HOME, "http://amzn.to/x", "short", refused("127.0.0.1", "127.0.0.1")),
        UnresolvedLink(
            HOME, "http://site.test/go/steal", "cloaked", refused("127.0.0.1", "127.0.0.1")
        ),
    ]
    assert victim.log == []


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses(address: str) -> None:
    assert is_public(address) is True


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.100.100.200",  # shared address space (RFC 6598): Alibaba Cloud's metadata service
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1%eth0",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_private_loopback_and_reserved_addresses(address: str) -> None:
    assert is_public(address) is False


def test_parse_connect_to() -> None:
    assert parse_connect_to([]) == {}
    assert parse_connect_to(["site.test:80:127.0.0.1:8080", "AMZN.to:443:[::1]:8443"]) == {
        ("site.test", 80): ("127.0.0.1", 8080),
        ("amzn.to", 443): ("::1", 8443),
    }


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("site.test:80:127.0.0.1", "write it as HOST:PORT:HOST2:PORT2"),
        ("site.test", "write it as HOST:PORT:HOST2:PORT2"),
        ("", "write it as HOST:PORT:HOST2:PORT2"),
        (":80:127.0.0.1:8080", "write it as HOST:PORT:HOST2:PORT2"),
        ("site.test:80::8080", "write it as HOST:PORT:HOST2:PORT2"),
        ("site.test:http:127.0.0.1:8080", "the ports must be numbers"),
        ("site.test:80:127.0.0.1:", "the ports must be numbers"),
        ("site.test:80:127.0.0.1:99999", "from 1 to 65535"),
        ("site.test:0:127.0.0.1:80", "from 1 to 65535"),
    ],
)
def test_parse_connect_to_rejects_bad_values(value: str, hint: str) -> None:
    with pytest.raises(BadConnectTo) as info:
        parse_connect_to([value])
    assert repr(value) in str(info.value)
    assert hint in str(info.value)
