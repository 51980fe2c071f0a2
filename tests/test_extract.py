"""Where ASINs hide: table tests of the pure URL and HTML functions (DESIGN §3)."""

from __future__ import annotations

import pytest

from scanner.amazon_urls import AMAZON_TLDS, AmazonTarget, parse_amazon_url
from scanner.digest import PageDigester, page_key, page_redirect
from scanner.extract import extract_links, immediate_refresh, script_navigation
from scanner.urls import SiteScope, normalize, resolve, site_url

US, UK, DE, JP = "www.amazon.com", "www.amazon.co.uk", "www.amazon.de", "www.amazon.co.jp"


@pytest.mark.parametrize(
    ("url", "marketplace", "asins", "tag"),
    [
        ("https://www.amazon.com/dp/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.com/dp/B00TEST123?tag=me-20", US, ("B00TEST123",), "me-20"),
        ("https://www.amazon.com/dp/b00test123/", US, ("B00TEST123",), None),
        ("https://WWW.AMAZON.COM/DP/B00TEST123", US, ("B00TEST123",), None),
        ("https://amazon.com/dp/B00TEST123", US, ("B00TEST123",), None),
        ("https://smile.amazon.com/dp/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.co.uk/Kettle-Steel/dp/B00TEST123/ref=sr_1_1", UK, ("B00TEST123",), None),
        ("https://www.amazon.de/%C3%9Cber-Produkt/dp/B00TEST123", DE, ("B00TEST123",), None),
        ("https://www.amazon.co.jp/dp/product/B00TEST123", JP, ("B00TEST123",), None),
        ("https://www.amazon.com/gp/product/B00TEST123?tag=x-20", US, ("B00TEST123",), "x-20"),
        ("https://www.amazon.com/gp/aw/d/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.com/gp/offer-listing/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.com/product-reviews/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.com/exec/obidos/ASIN/B00TEST123/me-20", US, ("B00TEST123",), "me-20"),
        ("https://www.amazon.com/exec/obidos/ASIN/0596009208", US, ("0596009208",), None),
        ("https://www.amazon.com/o/ASIN/B00TEST123/ref=nosim/me-21", US, ("B00TEST123",), "me-21"),
        ("https://www.amazon.com/gp/product/059600920X", US, ("059600920X",), None),
        ("https://www.amazon.com/gp/redirect.html?creativeASIN=B00TEST123&tag=a-20", US,
         ("B00TEST123",), "a-20"),
        ("https://www.amazon.com/gp/aws/cart/add.html?ASIN.1=B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.fr/s?k=x&asin=B00TEST123", "www.amazon.fr", ("B00TEST123",), None),
        ("https://www.amazon.com/dp/B00TEST123?tag=me-20&region=us", US, ("B00TEST123",), "me-20"),
        # old Product Advertising API detail-page URLs: the query percent-encoded into the path
        ("https://www.amazon.com/Kettle/dp/B00TEST123%3FSubscriptionId%3DAKIAIOSFODNN7EXAMPLE"
         "%26tag%3Dme-22%26linkCode%3Dxm2%26camp%3D2025%26creative%3D165953"
         "%26creativeASIN%3DB00TEST123", US, ("B00TEST123",), "me-22"),
        ("http://www.amazon.co.uk/dp/0596009208%3fSubscriptionId%3dX%26tag%3duk-21", UK,
         ("0596009208",), "uk-21"),
        ("https://www.amazon.com/dp/B00TEST123%3FSubscriptionId%3DX", US, ("B00TEST123",), None),
        ("https://www.amazon.com/dp/B00TEST123%3Ftag%3Dold-20?tag=new-20", US, ("B00TEST123",),
         "new-20"),  # a real query wins over the encoded one
        ("https://www.amazon.com/gp/product/customer-reviews/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.com/gp/product/customer-reviews/B00TEST123/ref=cm_cr_dp?ie=UTF8&tag=r-20",
         US, ("B00TEST123",), "r-20"),
        ("https://www.amazon.com/exec/obidos/tg/detail/-/0596009208", US, ("0596009208",), None),
        ("https://www.amazon.com/exec/obidos/tg/detail/-/B00TEST123/qid=1/sr=8-1?tag=t-20", US,
         ("B00TEST123",), "t-20"),
        ("https://www.amazon.com/Kettle/product-reviews/B00TEST123", US, ("B00TEST123",), None),
        ("https://www.amazon.com/o/ASIN/B00TEST123/me-21/", US, ("B00TEST123",), "me-21"),
        ("//www.amazon.de/dp/B00TEST123", DE, ("B00TEST123",), None),
        ("https://www.amazon.de/Über-Kaffee/dp/B00TEST123", DE, ("B00TEST123",), None),
        # widgets
        ("https://ws-na.amazon-adsystem.com/widgets/q?ServiceVersion=20070822&MarketPlace=US"
         "&tracking_id=me-20&asins=B00TEST123", US, ("B00TEST123",), "me-20"),
        ("https://ws-eu.amazon-adsystem.com/widgets/q?MarketPlace=DE&asins=B00TEST123,B00TEST124"
         "&tracking_id=de-21", DE, ("B00TEST123", "B00TEST124"), "de-21"),
        ("https://ws-eu.amazon-adsystem.com/widgets/q?asins=B00TEST123", UK, ("B00TEST123",), None),
        ("https://rcm.amazon.co.uk/e/cm?t=uk-21&o=2&asins=B00TEST123", UK, ("B00TEST123",), "uk-21"),
        ("https://rcm-fe.amazon-adsystem.com/e/cm?t=jp-22&o=9&asins=B00TEST123", JP,
         ("B00TEST123",), "jp-22"),
        ("https://rcm-na.amazon-adsystem.com/e/cm?t=us-20&o=1&region=US&asins=B00TEST123", US,
         ("B00TEST123",), "us-20"),
        ("https://ws-fe.amazon-adsystem.com/widgets/q?MarketPlace=JP&asins=B00TEST123"
         "&tracking_id=jp-22", JP, ("B00TEST123",), "jp-22"),
        ("https://rcm-eu.amazon-adsystem.com/e/cm?t=de-21&o=3&asins=B00TEST123", DE,
         ("B00TEST123",), "de-21"),
    ],
)  # fmt: skip
def test_amazon_url_shapes(url: str, marketplace: str, asins: tuple[str, ...], tag: str) -> None:
    target = parse_amazon_url(url)
    assert target is not None, url
    assert (target.marketplace, target.asins, target.tag) == (marketplace, asins, tag)


@pytest.mark.parametrize("tld", AMAZON_TLDS)
@pytest.mark.parametrize("prefix", ["", "www.", "smile.", "WWW."])
def test_every_marketplace_host(tld: str, prefix: str) -> None:
    target = parse_amazon_url(f"https://{prefix}amazon.{tld}/dp/B00TEST123")
    assert target == AmazonTarget(f"www.amazon.{tld}", ("B00TEST123",), None)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/dp/B00TEST123",  # /dp/ on another host
        "https://www.amazon.com/s?k=kettle",  # a search, no product
        "https://www.amazon.com/",  # home page
        "https://www.amazon.com/dp/B00TEST12",  # 9 characters
        "https://www.amazon.com/dp/B00TEST1234",  # 11 characters
        "https://www.amazon.com/dp/ABCDEFGHIJ",  # 10 characters, not an ASIN shape
        "https://www.amazon.com/gp/help/customer/display.html",
        "https://www.amazon.cn/dp/B00TEST123",  # not a marketplace of the Creators API
        "https://amazon.example.com/dp/B00TEST123",
        "https://amzn.to/3abcdef",  # a short link is not a product until resolved
        "https://ws-na.amazon-adsystem.com/widgets/q?asins=",
        "mailto:someone@amazon.com",
        "https://www.amazon.com/gp/product/customer-reviews/",  # no ASIN after the shape
        "https://www.amazon.com/exec/obidos/tg/detail/-/ABCDEFGHIJ",
        "https://www.amazon.com/dp/B00TEST123%3",  # a broken escape is not a query
        "https://www.amazon.com/dp/B00TEST1234%3Ftag%3Dx-20",  # 11 characters before it
    ],
)
def test_not_product_urls(url: str) -> None:
    assert parse_amazon_url(url) is None


PAGE = "https://blog.example.com/reviews/kettles/"


def links_of(html: str, page: str = PAGE, charset: str | None = None) -> list[str]:
    return extract_links(html.encode(charset or "utf-8"), page, charset).links


def test_entities_are_decoded_like_a_browser() -> None:
    html = (
        '<a href="https://www.amazon.com/dp/B00TEST123?tag=me-20&amp;th=1">a</a>'
        '<a href="https://www.amazon.com/dp/B00TEST124?tag=me-20&region=us">b</a>'
        '<a href="https://www.amazon.com/dp/B00TEST125?x=1&reg=2">c</a>'
    )
    assert links_of(html) == [
        "https://www.amazon.com/dp/B00TEST123?tag=me-20&th=1",
        "https://www.amazon.com/dp/B00TEST124?tag=me-20&region=us",  # not "®ion=us"
        "https://www.amazon.com/dp/B00TEST125?x=1&reg=2",
    ]


def test_relative_and_protocol_relative_links_resolve_against_the_page() -> None:
    html = (
        '<a href="../toasters/">up</a><a href="best">rel</a><a href="/go/kettle">root</a>'
        '<a href="//www.amazon.com/dp/B00TEST123">proto</a><a href="?page=2#c">query</a>'
        '<a href="#top">frag</a><a href="javascript:void(0)">js</a><a href="mailto:a@b.c">m</a>'
        '<a href=" https://www.amazon.com/dp/B00TEST124 \n">ws</a>'
    )
    assert links_of(html) == [
        "https://blog.example.com/reviews/toasters/",
        "https://blog.example.com/reviews/kettles/best",
        "https://blog.example.com/go/kettle",
        "https://www.amazon.com/dp/B00TEST123",
        "https://blog.example.com/reviews/kettles/?page=2",
        "https://www.amazon.com/dp/B00TEST124",
    ]


def test_base_href_and_canonical() -> None:
    html = (
        '<head><base href="https://blog.example.com/other/">'
        '<link rel="canonical" href="/reviews/kettles/"></head>'
        '<body><a href="x">x</a></body>'
    )
    page = extract_links(html.encode(), PAGE + "?replytocom=12")
    assert page.links == ["https://blog.example.com/other/x"]
    assert page.canonical == "https://blog.example.com/reviews/kettles/"


def test_area_and_iframe_count_script_and_text_do_not() -> None:
    html = (
        "<p>Our pick: B00TEST123, also see /dp/B00TEST124</p>"
        "<script>var u = '<a href=\"https://www.amazon.com/dp/B00TEST125\">';</script>"
        '<map><area href="https://www.amazon.com/dp/B00TEST126"></map>'
        '<iframe src="//ws-na.amazon-adsystem.com/widgets/q?asins=B00TEST127&MarketPlace=US">'
        "</iframe>"
        '<img src="https://www.amazon.com/dp/B00TEST128">'
    )
    assert links_of(html) == [
        "https://www.amazon.com/dp/B00TEST126",
        "https://ws-na.amazon-adsystem.com/widgets/q?asins=B00TEST127&MarketPlace=US",
    ]


@pytest.mark.parametrize(
    ("charset", "in_header"), [("windows-1252", False), ("iso-8859-1", True), ("utf-8", False)]
)
def test_charsets(charset: str, in_header: bool) -> None:
    meta = "" if in_header else f'<meta charset="{charset}">'
    html = f'<html><head>{meta}</head><body><a href="/caf\u00e9/">caf\u00e9</a></body></html>'
    body = html.encode(charset)
    page = extract_links(body, PAGE, charset if in_header else None)
    assert page.links == ["https://blog.example.com/caf\u00e9/"]


def test_upper_case_hosts_are_one_unique_link() -> None:
    a = normalize("HTTPS://WWW.AMAZON.COM/dp/B00TEST123?tag=me-20")
    b = normalize("https://www.amazon.com:443/dp/B00TEST123?tag=me-20")
    assert a == b == "https://www.amazon.com/dp/B00TEST123?tag=me-20"
    assert parse_amazon_url(a) == AmazonTarget(US, ("B00TEST123",), "me-20")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "https://example.com/"),
        ("  https://Example.com  ", "https://example.com/"),
        ("http://www.example.com/blog", "http://www.example.com/blog"),
        ("localhost:8080", "https://localhost:8080/"),
    ],
)
def test_site_url(raw: str, expected: str) -> None:
    assert site_url(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "ftp://example.com", "https://", "notadomain", "http://a.com:x"]
)
def test_bad_site_url(raw: str) -> None:
    from scanner.urls import BadSiteUrl

    with pytest.raises(BadSiteUrl):
        site_url(raw)


def test_site_scope() -> None:
    scope = SiteScope.of("https://example.com/")
    assert scope.contains("https://www.example.com/a")
    assert scope.contains("http://example.com/b")
    assert not scope.contains("https://shop.example.com/")
    assert not scope.contains("https://example.com:8443/")
    local = SiteScope.of("http://127.0.0.1:8080/")
    assert local.contains("http://127.0.0.1:8080/x")
    assert not local.contains("http://127.0.0.1:8081/x")


def test_resolve_drops_fragments_and_non_web_schemes() -> None:
    assert resolve(PAGE, "https://a.com/x#frag") == "https://a.com/x"
    assert resolve(PAGE, "tel:123") is None
    assert resolve(PAGE, "") is None


RFC_BASE = "http://a/b/c/d;p?q"


@pytest.mark.parametrize(
    ("href", "expected"),
    [  # RFC 3986 §5.4.1 and §5.4.2, fragments dropped
        ("g", "http://a/b/c/g"), ("./g", "http://a/b/c/g"), ("g/", "http://a/b/c/g/"),
        ("/g", "http://a/g"), ("//g", "http://g"), ("?y", "http://a/b/c/d;p?y"),
        ("g?y", "http://a/b/c/g?y"), ("#s", None), ("g#s", "http://a/b/c/g"),
        ("g?y#s", "http://a/b/c/g?y"), (";x", "http://a/b/c/;x"), ("g;x", "http://a/b/c/g;x"),
        ("g;x?y#s", "http://a/b/c/g;x?y"), (".", "http://a/b/c/"), ("./", "http://a/b/c/"),
        ("..", "http://a/b/"), ("../", "http://a/b/"), ("../g", "http://a/b/g"),
        ("../..", "http://a/"), ("../../", "http://a/"), ("../../g", "http://a/g"),
        ("../../../g", "http://a/g"), ("../../../../g", "http://a/g"), ("/./g", "http://a/g"),
        ("/../g", "http://a/g"), ("g.", "http://a/b/c/g."), (".g", "http://a/b/c/.g"),
        ("g..", "http://a/b/c/g.."), ("..g", "http://a/b/c/..g"), ("./../g", "http://a/b/g"),
        ("./g/.", "http://a/b/c/g/"), ("g/./h", "http://a/b/c/g/h"), ("g/../h", "http://a/b/c/h"),
        ("g;x=1/./y", "http://a/b/c/g;x=1/y"), ("g;x=1/../y", "http://a/b/c/y"),
        ("g?y/./x", "http://a/b/c/g?y/./x"), ("g?y/../x", "http://a/b/c/g?y/../x"),
    ],
)  # fmt: skip
def test_relative_resolution_follows_rfc_3986(href: str, expected: str | None) -> None:
    assert resolve(RFC_BASE, href) == expected


def test_only_ascii_whitespace_and_controls_are_trimmed_from_an_href() -> None:
    # found by the property tests: str.strip() also ate a trailing no-break space
    assert (
        resolve(PAGE, "\x00 /caf\u00e9?q=\u00a0\x1f ")
        == "https://blog.example.com/caf\u00e9?q=\u00a0"
    )
    assert (
        resolve(PAGE, "\u2003https://www.amazon.com/dp/B00TEST123")
        == PAGE + "\u2003https://www.amazon.com/dp/B00TEST123"
    )


def test_page_relative_links_keep_what_browsers_keep() -> None:
    assert resolve("http://a.com", "?y") == "http://a.com/?y"  # a URL always has a path
    assert resolve("http://a.com/b/c", "..?") == "http://a.com/?"  # an empty query stays


# ---- crawl keys: IRIs and their percent-encoded form are one URL ------------------------------


@pytest.mark.parametrize(
    ("iri", "encoded", "key"),
    [
        ("http://site.test/caf\u00e9/", "http://site.test/caf%c3%a9/", "http://site.test/caf%C3%A9/"),
        ("http://site.test/best\u200b-kettles/", "http://site.test/best%E2%80%8B-kettles/",
         "http://site.test/best%E2%80%8B-kettles/"),
        ("http://site.test/s?q=cr\u00e8me br\u00fbl\u00e9e", "http://site.test/s?q=cr%C3%A8me%20br%c3%bbl%C3%A9e",
         "http://site.test/s?q=cr%C3%A8me%20br%C3%BBl%C3%A9e"),
        ("http://Caf\u00e9.Example/men\u00fc", "http://xn--caf-dma.example/men%C3%BC",
         "http://xn--caf-dma.example/men%C3%BC"),
        ("http://site.test/a b/\"q\"", "http://site.test/a%20b/%22q%22", "http://site.test/a%20b/%22q%22"),
    ],
)  # fmt: skip
def test_iris_and_their_percent_encoded_form_are_one_crawl_key(
    iri: str, encoded: str, key: str
) -> None:
    assert normalize(iri) == normalize(encoded) == key
    assert page_key(iri) == page_key(encoded) == key


def test_normalize_keeps_reserved_escapes_and_plain_urls() -> None:
    same = "https://www.amazon.com/dp/B00TEST123%3Ftag%3Dme-22%26x%3D1?a=1&b=%2F#frag"
    assert normalize(same) == same.split("#")[0]
    assert normalize("http://site.test/%7euser/") == "http://site.test/%7Euser/"
    assert normalize("http://site.test/50%off") == "http://site.test/50%off"  # not an escape


def test_noise_parameters_go_without_re_encoding_the_rest() -> None:
    assert (
        page_key("http://site.test/p?q=a%2Fb&replytocom=3&utm_source=x&s=caf\u00e9")
        == "http://site.test/p?q=a%2Fb&s=caf%C3%A9"
    )


def test_canonical_counts_only_inside_head() -> None:
    body_only = (
        "<html><head><title>t</title></head><body>"
        '<link rel="canonical" href="/elsewhere/"><a href="x">x</a></body></html>'
    )
    assert extract_links(body_only.encode(), PAGE).canonical is None
    # a stray element ends <head> early, as in browsers and search engines
    pushed_out = '<head><title>t</title><div>ad</div><link rel="canonical" href="/x/"></head>'
    assert extract_links(pushed_out.encode(), PAGE).canonical is None
    in_head = '<head><link rel="Canonical" href="/reviews/kettles/"></head><body></body>'
    assert extract_links(in_head.encode(), PAGE).canonical == PAGE


# ---- pages that send the browser on at once (static sites' cloaked links) ---------------------


@pytest.mark.parametrize(
    ("content", "url"),
    [
        ("0; url=https://amzn.to/3abc", "https://amzn.to/3abc"),
        ("0;URL='https://amzn.to/3abc'", "https://amzn.to/3abc"),
        ('0; url="https://amzn.to/3abc"', "https://amzn.to/3abc"),
        ("0, https://amzn.to/3abc", "https://amzn.to/3abc"),
        ("0 https://amzn.to/3abc", "https://amzn.to/3abc"),
        ("  0.5 ; url = /go/kettle/", "/go/kettle/"),
        (".2;url=/x", "/x"),
        ("0", None),  # reloads itself
        ("0; url=", None),
        ("5; url=https://amzn.to/3abc", None),  # not at once
        ("1;url=https://amzn.to/3abc", None),
        ("now; url=https://amzn.to/3abc", None),
        ("0x; url=https://amzn.to/3abc", None),
    ],
)
def test_immediate_refresh(content: str, url: str | None) -> None:
    assert immediate_refresh(content) == url


@pytest.mark.parametrize(
    ("script", "url"),
    [
        ('window.location.replace("https:\\/\\/amzn.to\\/3abc");', "https://amzn.to/3abc"),
        ("  location.href = 'https://www.amazon.com/dp/B00TEST123';", "https://www.amazon.com/dp/B00TEST123"),
        ('location="https://amzn.to/x"', "https://amzn.to/x"),
        ("document.location.assign('/go/x')", "/go/x"),
        ('function go() { location.href = "https://amzn.to/x"; }', None),  # not at once
        ('if (ok) location.href = "https://amzn.to/x";', None),
        ("var location = 'x';", None),
        ("location.href = url;", None),  # not a literal
    ],
)  # fmt: skip
def test_script_navigation(script: str, url: str | None) -> None:
    assert script_navigation(script) == url


REFRESH_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Redirecting…</title>'
    '<meta http-equiv="refresh" content="0; url=https://amzn.to/3abc">'
    '<script>location.replace("https://amzn.to/3abc")</script></head>'
    '<body><a href="https://amzn.to/3abc">Click here if you are not redirected.</a></body></html>'
)


@pytest.mark.parametrize(
    ("html", "redirect"),
    [
        (REFRESH_PAGE, "https://amzn.to/3abc"),
        (REFRESH_PAGE.replace('http-equiv="refresh"', 'HTTP-EQUIV="Refresh"'), "https://amzn.to/3abc"),
        # a script alone counts only when it leads to Amazon or a short link
        ('<script>window.location.replace("https://www.amazon.com/dp/B00TEST123?tag=me-20")</script>',
         "https://www.amazon.com/dp/B00TEST123?tag=me-20"),
        ('<script>location.replace("/members/login/")</script><a href="/x">x</a>', None),
        # an article is not a redirect page, whatever its scripts say
        ('<script>location.replace("https://amzn.to/3abc")</script>' + '<a href="/a">a</a>' * 4,
         None),
        # a meta refresh counts wherever it leads, in <body> too (browsers obey it there)
        ('<body><meta http-equiv="refresh" content="0;url=/new-post/"></body>',
         "https://blog.example.com/new-post/"),
        ('<meta http-equiv="refresh" content="30">', None),  # a news page reloading itself
        ('<meta http-equiv="refresh" content="0; url=' + PAGE + '">', None),
        ('<meta http-equiv="content-type" content="text/html; charset=utf-8">', None),
    ],
)  # fmt: skip
def test_a_page_that_sends_on_at_once_is_a_redirect(html: str, redirect: str | None) -> None:
    assert page_redirect(html.encode(), PAGE, None) == redirect
    scope = SiteScope.of("https://blog.example.com/")
    digest = PageDigester(scope, ()).digest(html.encode(), PAGE, None)
    assert digest.redirect == redirect
    if redirect is not None:  # nothing else of the page counts
        assert (digest.internal, digest.short, digest.amazon) == ([], [], [])


def test_one_digester_reads_each_page_against_its_own_base() -> None:
    # the digester remembers how hrefs classify: absolute and root-relative ones (and those that
    # lead nowhere) per origin, never a page-relative one, which leads elsewhere on each page
    scope = SiteScope.of("https://blog.example.com/")
    digester = PageDigester(scope, ("https://blog.example.com/go/",))
    html = (
        b'<a href="../shared/">up</a><a href="next/">down</a><a href="/about/">about</a>'
        b'<a href="#top">top</a><a href="mailto:me@example.com">me</a><a href="go/x">x</a>'
        b'<a href="https://www.amazon.com/dp/B00X4WHP5E?tag=me-20">buy</a>'
    )
    first = digester.digest(html, "https://blog.example.com/2024/a/", None)
    second = digester.digest(html, "https://blog.example.com/2025/b/c/", None)
    other_origin = digester.digest(html, "http://blog.example.com/x/", None)
    assert first.internal == [
        "https://blog.example.com/2024/shared/",
        "https://blog.example.com/2024/a/next/",
        "https://blog.example.com/about/",
        "https://blog.example.com/2024/a/go/x",
    ]
    assert second.internal == [
        "https://blog.example.com/2025/b/shared/",
        "https://blog.example.com/2025/b/c/next/",
        "https://blog.example.com/about/",
        "https://blog.example.com/2025/b/c/go/x",
    ]
    assert other_origin.internal[2] == "http://blog.example.com/about/"
    for digest in (first, second, other_origin):
        assert [href for href, _ in digest.amazon] == [
            "https://www.amazon.com/dp/B00X4WHP5E?tag=me-20"
        ]
    # a page-relative href under the cloaking prefix is cloaked on the page it resolves there
    on_root = digester.digest(html, "https://blog.example.com/", None)
    assert on_root.cloaked == ["https://blog.example.com/go/x"]
    assert first.cloaked == second.cloaked == []
