"""Properties of the URL functions, on inputs nobody thought of (hypothesis): they never raise,
normalising is idempotent, and a link written as an IRI and the same link percent-encoded agree."""

from __future__ import annotations

import random
from urllib.parse import quote, urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scanner.amazon_urls import AMAZON_TLDS, parse_amazon_url
from scanner.digest import PageDigester, page_key
from scanner.extract import immediate_refresh, script_navigation
from scanner.fetch import Fetcher, _port
from scanner.net import NetworkPolicy
from scanner.settings import CrawlLimits
from scanner.urls import Base, SiteScope, _normalize_parsed, is_normal, normalize, resolve

# any string at all, lone surrogates included (what a broken decoder could hand over)
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)
URL_CHARS = st.characters(exclude_categories=("Cs",))  # characters a page can really hold
BASE_URLS = [
    "https://blog.example.com/reviews/kettles/",
    "http://site.test/",
    "http://site.test:8080/a/b;p?q=1",
    "https://xn--caf-dma.example/men%C3%BC/",
    "http://[::1]:8000/x/",
]
BASES = st.sampled_from(BASE_URLS)
SEGMENT = st.text(alphabet=URL_CHARS.filter(lambda c: c not in "/?#%\\"), max_size=12)
HOST = st.sampled_from(
    ["site.test", "www.site.test", "café.example", "blog.example.com", "www.amazon.com",
     "amazon.de", "smile.amazon.co.uk", "amzn.to"]
)  # fmt: skip
ASIN = st.from_regex(r"B0[0-9A-Z]{8}|\d{9}[\dX]", fullmatch=True)


@st.composite
def iris(draw: st.DrawFn) -> str:
    """An absolute URL whose path and query may hold any character, written raw."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    host = draw(HOST)
    path = "/".join(draw(st.lists(SEGMENT, max_size=4)))
    query = draw(st.none() | st.lists(st.tuples(SEGMENT, SEGMENT), max_size=3))
    url = f"{scheme}://{host}/{path}"
    if query is not None:
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    return url


def percent_encoded(iri: str, rng: random.Random) -> str:
    """``iri`` as a careful author writes it: every non-ASCII character of its path and query as
    UTF-8 escapes, their hex digits in upper or lower case (the host is left as it is)."""
    cut = iri.find("/", iri.find("//") + 2) if "//" in iri else 0
    out = [iri[:cut]] if cut > 0 else []
    for char in iri[max(cut, 0) :]:
        if char.isascii():
            out.append(char)
            continue
        escaped = quote(char, safe="")
        out.append(escaped.lower() if rng.random() < 0.5 else escaped)
    return "".join(out)


@given(ANY_TEXT)
@example("http://[")
@example("https://www.amazon.com:99999/dp/B00TEST123")
@example("//www.amazon.com/dp/\udcff")
def test_parse_amazon_url_never_raises(text: str) -> None:
    parse_amazon_url(text)


@given(st.sampled_from(AMAZON_TLDS), ASIN, ANY_TEXT, ANY_TEXT)
def test_parse_amazon_url_never_raises_on_amazon_looking_urls(
    tld: str, asin: str, before: str, after: str
) -> None:
    for url in (
        f"https://www.amazon.{tld}/{before}/dp/{asin}{after}",
        f"https://www.amazon.{tld}/dp/{asin}%3F{after}",
        f"https://ws-na.amazon-adsystem.com/widgets/q?asins={asin}{after}",
    ):
        target = parse_amazon_url(url)
        if target is not None:
            assert all(a == a.upper() and len(a) == 10 for a in target.asins)


@given(ANY_TEXT)
@example("http://[::1")
@example("http://site.test:80x/")
@example("http://site.test/%e2%80%8b\u200b")
def test_normalize_never_raises_and_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@st.composite
def near_normal_urls(draw: st.DrawFn) -> str:
    """URLs one detail away from their normal form, or in it: case, dots, ports, escapes."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https", "ftp", "http:"]))
    host = draw(
        st.sampled_from(
            ["site.test", "Site.test", "site.test.", "127.0.0.1", "xn--caf-dma.example",
             "a..b", "-a.b", "café.example", "[::1]", "me@site.test", "", "www.site.test"]
        )
    )  # fmt: skip
    port = draw(
        st.sampled_from(
            ["", ":", ":0", ":80", ":443", ":080", ":0443", ":8080", ":65535", ":65536",
             ":99999", ":x"]
        )
    )  # fmt: skip
    path = draw(st.sampled_from(["/", "", "//"])) + draw(
        st.text(alphabet="abZ09/-._~!$&'()*+,;=:@", max_size=12)
    )
    tail = draw(
        st.sampled_from(
            ["", "?", "?q=1", "?a?b=/", "#top", "?q#", "%7e", "%7E", "%", " ", "é", "[x]",
             "\t", "\\", "\n"]
        )
    )  # fmt: skip
    return f"{scheme}://{host}{port}{path}{tail}"


@settings(max_examples=2000)
@given(near_normal_urls() | ANY_TEXT)
@example("http://Site.test/")
@example("http://site.test:80/")
@example("https://site.test:443/")
@example("http://site.test:0443/")
@example("http://site.test:65536/")
@example("http://site.test./")
@example("http://site.test?q")
@example("http://site.test/x?")
@example("http://site.test/%7e")
def test_a_url_taken_as_normal_is_what_normalising_gives(url: str) -> None:
    # normalize() and resolve() skip parsing for these: the shortcut must change nothing
    if is_normal(url):
        assert _normalize_parsed(url) == url
        urlsplit(url).port  # noqa: B018  (a valid URL: raises on a bad port)
    assert normalize(url) == _normalize_parsed(url)


SCOPES = [SiteScope.of("http://site.test/"), SiteScope.of("https://site.test:8080/")]
DIGESTERS = [PageDigester(scope, ()) for scope in SCOPES]  # shared: their memory is under test


@given(near_normal_urls() | iris())
def test_the_digester_knows_the_site_as_the_scope_does(url: str) -> None:
    # the digester remembers the answer per origin and asks it for the normalised form
    for scope, digester in zip(SCOPES, DIGESTERS, strict=True):
        assert digester._is_in_scope(normalize(url)) == scope.contains(url)


@given(iris())
def test_normalized_urls_are_ascii_with_upper_case_escapes(iri: str) -> None:
    key = normalize(iri)
    assert key.isascii()
    for at in range(len(key)):
        if key[at] == "%" and key[at + 1 : at + 3].isalnum() and len(key[at + 1 : at + 3]) == 2:
            assert key[at + 1 : at + 3] == key[at + 1 : at + 3].upper()


@given(iris(), st.randoms(use_true_random=False))
@example("http://site.test/caf\u00e9\u200b/?q=cr\u00e8me", random.Random(1))
def test_an_iri_and_its_percent_encoded_form_are_one_url(iri: str, rng: random.Random) -> None:
    encoded = percent_encoded(iri, rng)
    assert normalize(iri) == normalize(encoded)
    assert page_key(iri) == page_key(encoded)
    assert parse_amazon_url(normalize(iri)) == parse_amazon_url(normalize(encoded))


@given(iris())
def test_page_keys_are_idempotent(iri: str) -> None:
    key = page_key(iri)
    assert page_key(key) == key


@given(BASES, ANY_TEXT)
@example("http://site.test/", "//[")
@example("http://site.test/", "http://a.com:99999/")
@example("http://site.test/", " \t../../\n")
def test_resolution_never_raises_and_gives_web_urls(base: str, href: str) -> None:
    url = resolve(base, href)
    if url is not None:
        assert url.lower().startswith(("http://", "https://"))
        assert "#" not in url
        assert normalize(normalize(url)) == normalize(url)


RELATIVE_PART = st.sampled_from(
    ["..", ".", "x", "Y-1", "", ".hidden", "a.b", "?q=/./", "#f", "%2e%2e"]
)


@given(
    st.sampled_from([*BASE_URLS, "http://site.test/a/./b/", "http://site.test/a/b/c"]),
    st.lists(RELATIVE_PART, max_size=6),
)
@settings(max_examples=500)
@example("http://site.test/a/b/", ["..", "..", "..", "x"])
@example("http://site.test/a/b/", ["..", "x", ".", "y"])
@example("http://site.test/a/./b/", ["..", "x"])
@example("http://site.test/a/b/", ["..", "x?y=", ".", ""])
def test_climbing_out_of_a_directory_is_resolved_as_the_whole_way_does(
    base: str, parts: list[str]
) -> None:
    # ``../../x/`` takes a shortcut (Base._join_relative): the same URL as the general path
    href = "/".join(parts)
    assert Base(base)._join_relative(href) == Base(base)._join_general(href)


@given(BASES, SEGMENT, st.randoms(use_true_random=False))
def test_resolving_an_iri_and_its_encoded_form_agree(
    base: str, segment: str, rng: random.Random
) -> None:
    href = f"../{segment}/x?y={segment}"
    raw, encoded = resolve(base, href), resolve(base, percent_encoded(href, rng))
    assert raw is not None and encoded is not None
    assert normalize(raw) == normalize(encoded)


@settings(max_examples=300)
@given(ANY_TEXT)
def test_refresh_and_script_parsers_never_raise(text: str) -> None:
    immediate_refresh(text)
    script_navigation(text)


FETCHER = Fetcher(None, NetworkPolicy(), CrawlLimits())  # type: ignore[arg-type]  # shared


@given(near_normal_urls() | iris() | ANY_TEXT)
@example("http://site.test?x/y")
@example("http://[::1]:8080/a")
def test_the_fetcher_knows_where_a_url_connects_as_parsing_it_says(url: str) -> None:
    # the fetcher remembers the host and port per origin: the same answer as parsing each URL
    try:
        parts = urlsplit(url)
        expected = (parts.hostname or "", _port(parts.scheme, parts))
    except ValueError:
        return
    host, where = FETCHER._where(url)
    assert (host, where) == (expected[0], expected)
