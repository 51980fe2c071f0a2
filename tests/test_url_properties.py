"""Properties of the URL functions, on inputs nobody thought of (hypothesis): they never raise,
normalising is idempotent, and a link written as an IRI and the same link percent-encoded agree."""

from __future__ import annotations

import random
from urllib.parse import quote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scanner.amazon_urls import AMAZON_TLDS, parse_amazon_url
from scanner.digest import page_key
from scanner.extract import immediate_refresh, script_navigation
from scanner.urls import normalize, resolve

# any string at all, lone surrogates included (what a broken decoder could hand over)
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)
URL_CHARS = st.characters(exclude_categories=("Cs",))  # characters a page can really hold
BASES = st.sampled_from(
    [
        "https://blog.example.com/reviews/kettles/",
        "http://site.test/",
        "http://site.test:8080/a/b;p?q=1",
        "https://xn--caf-dma.example/men%C3%BC/",
        "http://[::1]:8000/x/",
    ]
)
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
