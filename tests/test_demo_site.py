"""The demo site generator and its server (not any scanner)."""

from __future__ import annotations

import asyncio
import gzip
import html
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import NamedTuple
from xml.etree import ElementTree

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from ccbb.sandbox.demo_site import (
    STATUSES,
    DemoSite,
    LinkSpec,
    generate_site,
    running_site,
)

BASE = "http://demo.example/"
PDF = "/wp-content/uploads/media-kit.pdf"
ALL_SHAPES = {
    "dp", "dp_fragment", "dp_amp", "dp_wp038", "dp_region", "slug", "slug_ref", "slug_pct",
    "slug_utf8", "gp_product", "sitestripe", "dp_product", "gp_aw_d", "obidos", "o_asin",
    "offer_listing", "product_reviews", "paapi", "customer_reviews", "obidos_detail", "cart_add", "query_asin", "upper_host",
    "protocol_relative", "smile", "apex", "lowercase_asin", "area", "short", "short_aco",
    "short_chain", "cloaked", "cloaked_root", "cloaked_relative", "cloaked_to_short",
    "recommends", "cloaked_refresh", "refresh_out", "widget", "widget_multi", "widget_amp", "rcm", "rcm_legacy",
}  # fmt: skip
AVAILABLE = {"IN_STOCK", "IN_STOCK_SCARCE", "PREORDER", "LEADTIME", "AVAILABLE_DATE"}
OUT_OF_STOCK = {"OUT_OF_STOCK", "UNAVAILABLE", None}
REMOVED_CODES = {"InvalidParameterValue", "ItemNotFound", "InvalidItemId"}

ATTR = re.compile(
    r"<(a|area|iframe)\b[^>]*?\s(?:href|src)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')",
    re.IGNORECASE,
)
INTERNAL_HREF = re.compile(r"<a\b[^>]*?\shref\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.IGNORECASE)
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)">')
HIDDEN = re.compile(r"<script\b.*?</script>|<!--.*?-->", re.IGNORECASE | re.DOTALL)


class Answer(NamedTuple):
    status: int
    headers: CIMultiDict[str]
    body: bytes


@pytest.fixture(scope="module")
def tiny() -> DemoSite:
    return generate_site(5)


@pytest.fixture(scope="module")
def site() -> DemoSite:
    return generate_site(60, page_bytes=8000)


def _decode(href: str) -> str:
    # The only character references the generator writes in URLs; a bare
    # `&region=` must stay as it is (browsers do not decode it in attributes).
    return href.replace("&amp;", "&").replace("&#038;", "&")


def _attributes(html: str) -> Counter[tuple[str, str]]:
    visible = HIDDEN.sub("", html)
    return Counter((m[1].lower(), m[2] or m[3]) for m in ATTR.finditer(visible))


def _sitemap_locs(site: DemoSite, path: str) -> list[str]:
    body = site.resources[path].body
    if path.endswith(".gz"):
        body = gzip.decompress(body)
    return [el.text or "" for el in ElementTree.fromstring(body).iter() if el.tag.endswith("loc")]


def _sitemap_pages(site: DemoSite) -> set[str]:
    pages: set[str] = set()
    todo = ["/sitemap_index.xml", "/sitemap.xml", "/wp-sitemap.xml"]
    while todo:
        for loc in _sitemap_locs(site, todo.pop()):
            path = loc[len(BASE) - 1 :]
            if ".xml" in path:
                todo.append(path)
            else:
                pages.add(str(URL(loc)))  # escapes in upper case, as crawl keys
    return pages


# ------------------------------------------------------------------------ generator


def test_same_seed_same_site() -> None:
    one, two = (
        generate_site(40, seed=3, page_bytes=5000),
        generate_site(40, seed=3, page_bytes=5000),
    )
    assert one.resources.keys() == two.resources.keys()
    for path, res in one.resources.items():
        assert (res.status, dict(res.headers), res.body) == (
            two.resources[path].status,
            dict(two.resources[path].headers),
            two.resources[path].body,
        )
    assert {h: {p: r.body for p, r in t.items()} for h, t in one.short_links.items()} == {
        h: {p: r.body for p, r in t.items()} for h, t in two.short_links.items()
    }
    assert one.catalogue == two.catalogue
    assert one.expected == two.expected
    other = generate_site(40, seed=4, page_bytes=5000)
    assert other.resources["/"].body != one.resources["/"].body


def test_tiny_site_hand_checked(tiny: DemoSite) -> None:
    # home, about, one category, two articles; the links are exactly the base
    # table of _base_links: 49 links, of which the fragment variant of the
    # first /dp/ link and the root-relative and relative spellings of the
    # first cloaked link repeat a URL -> 46 unique. Products: 7 available,
    # 3 out of stock, 2 removed (one absent, one ItemNotFound), 2 US errors +
    # 1 UK + 1 DE = 4 errors. No tag: obidos, obidos tg/detail, apex, a cloaked
    # link, a widget; other-20: gp/aw/d, the old API URL (its tag is inside the
    # percent-encoded query), lowercase ASIN, a.co short link, rcm widget.
    exp = tiny.expected
    assert exp.summary() == {
        "urls_scanned": 5,
        "total_links": 49,
        "unique_links": 46,
        "total_products": 16,
        "by_status": {
            "available": 7,
            "removed": 2,
            "out_of_stock": 3,
            "error": 4,
            "not_checked": 0,
        },
        "tag_audit": {"missing_tag": 5, "other_tag": 5},
    }
    articles = sorted(p for p in exp.scanned_pages if p.startswith(BASE + "kitchen/"))
    assert len(articles) == 2
    assert exp.scanned_pages == {BASE, BASE + "about/", BASE + "category/kitchen/", *articles}
    assert exp.failed_pages == {
        BASE + "old-deals-2019/",
        BASE + "broken-page/",
        BASE + "stale-post/",
    }
    assert exp.disallowed_pages == {BASE + "private/deals/"}
    assert len(exp.links[BASE]) == 2
    assert len(exp.links[BASE + "category/kitchen/"]) == 1
    assert exp.links[BASE + "about/"] == ()
    every = [s for specs in exp.links.values() for s in specs]
    assert {s.shape for s in every} == ALL_SHAPES
    markets = Counter(m for m, _ in exp.products)
    assert markets == {"www.amazon.com": 14, "www.amazon.co.uk": 1, "www.amazon.de": 1}
    assert sum(1 for _, asin in exp.products if asin[0].isdigit()) == 2  # ISBN-10s
    assert any(asin.endswith("X") for _, asin in exp.products)
    # the catalogue lists every US product but the absent one
    assert len(tiny.catalogue["items"]["www.amazon.com"]) == 13


def test_counts_are_consistent(site: DemoSite) -> None:
    exp = site.expected
    every = [s for specs in exp.links.values() for s in specs]
    assert exp.urls_scanned == len(exp.scanned_pages) == len(exp.links) == 60
    assert exp.total_links == len(every) >= exp.unique_links == len({s.url for s in every}) > 0
    assert sum(exp.by_status.values()) == exp.total_products == len(exp.products)
    assert set(exp.by_status) == {*STATUSES, "not_checked"} and exp.by_status["not_checked"] == 0
    assert all(exp.by_status[s] for s in STATUSES)
    assert exp.tag_audit["missing_tag"] == sum(1 for s in every if s.tag is None)
    assert exp.tag_audit["other_tag"] == sum(1 for s in every if s.tag not in (None, "demo-20"))
    assert {k for s in every for k in s.products} == set(exp.products)
    assert {s.shape for s in every} == ALL_SHAPES
    assert not exp.failed_pages & exp.scanned_pages
    assert not exp.redirect_urls & exp.scanned_pages


def test_statuses_follow_the_catalogue(site: DemoSite) -> None:
    items = site.catalogue["items"]
    assert set(items) == {"www.amazon.com"}
    assert site.catalogue["credentials"][0]["marketplaces"] == ["www.amazon.com"]
    for (market, asin), status in site.expected.products.items():
        assert re.fullmatch(r"B0[0-9A-Z]{8}|\d{9}[\dX]", asin)
        if market != "www.amazon.com":
            assert status == "error"
            continue
        item = items[market].get(asin)
        if item is None:
            want = "removed"
        elif "error" in item:
            want = "removed" if item["error"]["code"] in REMOVED_CODES else "error"
        elif item["availability"] in AVAILABLE:
            want = "available"
        elif item["availability"] in OUT_OF_STOCK:
            want = "out_of_stock"
        else:
            want = "error"
        assert status == want, (asin, item)


def test_pages_hold_exactly_their_links(site: DemoSite) -> None:
    for page, specs in site.expected.links.items():
        html = site.resources[URL(page).path].body.decode("utf-8")
        found = _attributes(html)
        wanted = Counter((s.element, s.href) for s in specs)
        for key, count in wanted.items():
            assert found[key] == count, (page, key)


def test_link_urls_are_what_a_browser_makes(site: DemoSite) -> None:
    seen: set[LinkSpec] = set()
    for page, specs in site.expected.links.items():
        for spec in set(specs) - seen:
            seen.add(spec)
            decoded = _decode(spec.href)
            # browsers keep the %3D and %26 of an encoded query in the path; yarl decodes
            # them unless told the reference is encoded already
            ref = URL(decoded, encoded=spec.shape == "paapi")
            resolved = URL(page).join(ref).with_fragment(None)
            assert str(resolved) == spec.url, spec
            if spec.shape in ("dp_region", "widget"):
                assert "&region=" in spec.href and "&region=" in spec.url
            if spec.amazon_url != spec.url:  # short and cloaked links
                assert spec.shape.startswith(("short", "cloaked", "recommends", "refresh"))


def test_redirects_lead_to_the_product(site: DemoSite) -> None:
    for specs in site.expected.links.values():
        for spec in specs:
            url, hops = spec.url, 0
            while url != spec.amazon_url:
                u = URL(url)
                res = site.resolve(u.host or "", u.path)
                if res.status == 200:  # a static redirect page
                    refresh = REFRESH.search(res.body.decode())
                    assert refresh is not None, spec
                    assert spec.shape in ("cloaked_refresh", "refresh_out"), spec
                    url, hops = html.unescape(refresh[1]), hops + 1
                    continue
                assert res.status in (301, 302), spec
                url, hops = res.headers["Location"], hops + 1
            assert hops <= 5
            assert hops == 0 or spec.shape.startswith(("short", "cloaked", "recommends", "refresh"))
            for _, asin in spec.products:
                assert asin in spec.amazon_url or asin.lower() in spec.amazon_url


def test_decoys_are_not_links(site: DemoSite) -> None:
    home = site.resources["/"].body.decode()
    assert "https://example.org/dp/B012345678" in home
    assert "amazon.com/s?k=" in home and "<script>var deal" in home and "<!-- old box" in home
    linked = {asin for _, asin in site.expected.products}
    assert not linked & site.decoy_asins
    for specs in site.expected.links.values():
        for spec in specs:
            assert not any(d in spec.href for d in site.decoy_asins)
    private = site.resources["/private/deals/"].body.decode()
    assert "amazon.com/dp/" in private


def test_orphans_only_in_sitemaps(site: DemoSite) -> None:
    reachable, todo = {BASE}, [BASE]
    while todo:
        page = todo.pop()
        res = site.resources.get(URL(page).path)
        if res is None or res.status != 200 or "html" not in res.headers["Content-Type"]:
            continue
        html = HIDDEN.sub("", res.body.decode())
        for m in INTERNAL_HREF.finditer(html):
            url = URL(page).join(URL(_decode(m[1] or m[2]))).with_fragment(None).with_query(None)
            if url.host == "demo.example" and str(url) not in reachable:
                reachable.add(str(url))
                todo.append(str(url))
    in_sitemaps = _sitemap_pages(site)
    orphans = site.expected.scanned_pages - reachable
    assert len(orphans) == 5
    assert orphans <= in_sitemaps
    assert site.expected.scanned_pages <= reachable | in_sitemaps
    assert BASE + "private/deals/" in reachable & in_sitemaps
    assert BASE + "stale-post/" in in_sitemaps
    assert {BASE + "old-deals-2019/", BASE + "broken-page/"} <= reachable
    assert BASE + "wp-content/uploads/media-kit.pdf" in reachable


def test_page_bytes_pads_pages(site: DemoSite) -> None:
    sizes = [len(site.resources[URL(p).path].body) for p in site.expected.scanned_pages]
    assert all(7000 <= n <= 9500 for n in sizes), sorted(sizes)
    plain = generate_site(60)
    assert max(len(plain.resources[URL(p).path].body) for p in plain.expected.scanned_pages) < 7000


def test_larger_site_is_quick_and_scales() -> None:
    started = time.process_time()  # CPU time: what a busy machine does not stretch
    big = generate_site(2000, page_bytes=20000)
    assert time.process_time() - started < 3
    assert big.expected.urls_scanned == 2000
    assert "/post-sitemap2.xml.gz" in big.resources
    assert _sitemap_pages(big) >= big.expected.scanned_pages


def test_rejects_too_few_pages() -> None:
    with pytest.raises(ValueError):
        generate_site(3)


# --------------------------------------------------------------------------- server


async def test_server_answers(tiny: DemoSite) -> None:
    async with running_site(tiny) as running, aiohttp.ClientSession() as http:
        assert running.url == f"http://127.0.0.1:{running.port}/"
        assert f"demo.example:80:127.0.0.1:{running.port}" in running.connect_to
        assert f"amzn.to:443:127.0.0.1:{running.port}" in running.connect_to
        assert f"a.co:80:127.0.0.1:{running.port}" in running.connect_to

        async def get(path: str, host: str = "demo.example") -> Answer:
            async with http.get(
                running.url.rstrip("/") + path, headers={"Host": host}, allow_redirects=False
            ) as resp:
                return Answer(resp.status, resp.headers.copy(), await resp.read())

        robots = await get("/robots.txt")
        text = robots.body.decode()
        assert "Sitemap: http://demo.example/sitemap_index.xml" in text
        assert "Disallow: /private/" in text

        index = await get("/sitemap_index.xml")
        assert b"category-sitemap.xml.gz" in index.body
        gz = await get("/category-sitemap.xml.gz")
        assert b"http://demo.example/category/kitchen/" in gzip.decompress(gz.body)

        # the first article: it has comments (replytocom links) and the special links
        article = next(p for p in tiny.expected.scanned_pages if p.endswith("-1/"))
        path = URL(article).path
        page = await get(path)
        assert page.status == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        body = page.body
        assert f'<link rel="canonical" href="{article}">'.encode() in body
        variant = await get(path + "?replytocom=100")
        assert variant.body == body
        assert f"{article}?replytocom=100#respond".encode() in body

        assert (await get("/old-deals-2019/")).status == 404
        assert (await get("/no/such/page/")).status == 404
        assert (await get("/broken-page/")).status == 500
        assert (await get(PDF)).headers["Content-Type"] == "application/pdf"
        old = await get("/2019/05/old-post/")
        assert (old.status, old.headers["Location"]) == (301, article)

        every = [s for specs in tiny.expected.links.values() for s in specs]
        for spec in every:
            if spec.shape in ("cloaked_refresh", "refresh_out"):
                go = await get(URL(spec.url).path)
                assert go.status == 200
                refresh = REFRESH.search(go.body.decode())
                assert refresh is not None
                want = spec.amazon_url if spec.shape == "cloaked_refresh" else "http://amzn.to/"
                assert html.unescape(refresh[1]).startswith(want)
                if spec.shape == "refresh_out":
                    assert b"location.replace(" in go.body and b"Click here" in go.body
            elif spec.shape.startswith(("cloaked", "recommends")):
                go = await get(URL(spec.url).path)
                assert go.status == (301 if spec.shape == "recommends" else 302)
                want = "http://amzn.to/" if spec.shape == "cloaked_to_short" else spec.amazon_url
                assert go.headers["Location"].startswith(want)

        shorts = [s for s in every if s.shape in ("short", "short_aco")]
        assert shorts
        for spec in shorts:
            u = URL(spec.url)
            resp = await get(u.path, host=f"{u.host}:80")
            assert (resp.status, resp.headers["Location"]) == (301, spec.amazon_url)
            assert (await get(u.path)).status == 404  # not on the site's host
        chain = next(s for s in every if s.shape == "short_chain")
        hop = await get(URL(chain.url).path, host="amzn.to")
        assert hop.headers["Location"].startswith("http://a.co/d/")
        end = await get(URL(hop.headers["Location"]).path, host="a.co")
        assert end.headers["Location"] == chain.amazon_url


async def test_serves_concurrent_requests(tiny: DemoSite) -> None:
    async with running_site(tiny) as running, aiohttp.ClientSession() as http:
        paths = [URL(p).path for p in tiny.expected.scanned_pages] * 20

        async def fetch(path: str) -> int:
            async with http.get(running.url.rstrip("/") + path) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(fetch(p) for p in paths))
        assert set(statuses) == {200}


def test_main_serves_until_killed(tmp_path: Path) -> None:
    expected = tmp_path / "expected.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccbb.sandbox.demo_site", "--pages", "5", "--port", "0",
         "--expected-json", str(expected)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        with urllib.request.urlopen(url + "robots.txt", timeout=5) as resp:
            assert b"Sitemap:" in resp.read()
        assert json.loads(expected.read_text())["total_links"] == 49
    finally:
        proc.terminate()
        proc.wait(timeout=5)
