"""Extraction: page bytes + page URL → the links on it. Pure functions over selectolax (lexbor).

Attribute values are decoded by lexbor exactly as browsers decode them (``&amp;`` → ``&``, while a
bare ``&region=`` stays ``&region=``); text inside ``<script>`` is never markup, so links in
script strings are not seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import webencodings
from selectolax.lexbor import LexborHTMLParser

from scanner.urls import resolve

_LINKING = "a[href], area[href], iframe[src]"
MAX_NESTING = 4096  # open elements a page may nest (real pages: tens)
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9-]*)")
_NOT_NESTING = frozenset(
    b"area base br col embed hr img input link meta param source track wbr "
    b"p li dt dd option optgroup tr td th thead tbody tfoot caption colgroup rb rt rp".split()
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


@dataclass(slots=True)
class PageLinks:
    """What a page links to: every ``<a>``/``<area>`` ``href`` and ``<iframe>`` ``src`` as
    written (entities decoded), in document order, and the base they resolve against."""

    base: str
    hrefs: list[str] = field(default_factory=list)
    canonical: str | None = None  # absolute
    refresh: str | None = None  # absolute: where an immediate <meta http-equiv=refresh> sends
    script_redirect: str | None = None  # absolute: where a script sends at once (see below)

    @property
    def links(self) -> list[str]:
        """The hrefs resolved as a browser does, fragments dropped; unusable ones left out."""
        base = self.base
        return [url for href in self.hrefs if (url := resolve(base, href)) is not None]


def sniff_charset(body: bytes, header_charset: str | None) -> str:
    """The page's encoding: the Content-Type charset, else a ``<meta charset>``, else UTF-8."""
    if header_charset:
        return header_charset
    match = _META_CHARSET.search(body, 0, 2048)
    return match.group(1).decode("ascii").lower() if match else "utf-8"


def text_encoding(label: str) -> webencodings.Encoding:
    """The encoding a browser uses for a charset label (the WHATWG Encoding Standard's labels:
    ``latin1`` is windows-1252, ``sjis`` is Shift_JIS). A label that names no text encoding —
    unknown, or one of Python's other codecs such as ``idna``, ``punycode``, ``rot13`` — is
    ignored, and the page read as UTF-8."""
    return webencodings.lookup(label) or webencodings.UTF8


def decode_body(body: bytes, charset: str) -> str:
    text: str = text_encoding(charset).codec_info.decode(body, "replace")[0]
    return text


class PageTooDeep(ValueError):
    """HTML nested so deep that parsing it would take seconds to minutes: the page is skipped."""


def too_deep(body: bytes, limit: int = MAX_NESTING) -> bool:
    """Could ``body`` nest elements deeper than ``limit``? A byte scan that estimates the
    open-element depth (start tags minus the end tags that close something, void and
    self-closing-by-sibling elements left out); the HTML parser's time grows with the square of
    that depth (100,000 nested ``<div>`` take minutes), so the check runs before parsing. An end
    tag counts only while an element of its name is open: a stray ``</span>`` closes nothing, and
    ``<div></span>`` repeated nests as deep as ``<div>`` alone. Only pages with more than
    ``limit`` tags are scanned at all."""
    if len(body) - len(body.replace(b"<", b"")) <= limit:  # a count, twice as fast as count()
        return False
    depth = 0
    open_by_name: dict[bytes, int] = {}
    for closing, name in _TAG.findall(body):
        name = name.lower()
        if name in _NOT_NESTING:
            continue
        if closing:
            if open_by_name.get(name):
                open_by_name[name] -= 1
                depth -= 1
        else:
            open_by_name[name] = open_by_name.get(name, 0) + 1
            depth += 1
            if depth > limit:
                return True
    return False


def extract_links(body: bytes, page_url: str, header_charset: str | None = None) -> PageLinks:
    """The links of a page (see :class:`PageLinks`) and its ``rel=canonical`` URL (read in
    ``<head>`` only). Raises :class:`PageTooDeep` for a page nested deeper than
    :data:`MAX_NESTING`."""
    if too_deep(body):
        raise PageTooDeep(f"HTML nested deeper than {MAX_NESTING:,} elements")
    encoding = text_encoding(sniff_charset(body, header_charset))
    html: str | bytes = body if encoding.name == "utf-8" else decode_body(body, encoding.name)
    tree = LexborHTMLParser(html)
    out = PageLinks(page_url)
    # one walk of the tree per tag name is several times cheaper than a selector; <area> and
    # <iframe> (rare) are taken with the <a> in document order by the selector when present
    rare = tree.tags("area") or tree.tags("iframe")
    if rare:
        out.hrefs = [
            value
            for node in tree.css(_LINKING)
            if (value := node.attrs.get("src" if node.tag == "iframe" else "href"))
        ]
    else:
        out.hrefs = [value for node in tree.tags("a") if (value := node.attrs.get("href"))]
    hrefs = out.hrefs
    for node in tree.tags("base"):  # the first usable <base href> is the document's base URL
        if (value := node.attrs.get("href")) and (base := resolve(page_url, value)):
            out.base = base
            break
    for node in tree.tags("meta"):
        attrs = node.attrs
        content = attrs.get("content")
        if content is not None and (attrs.get("http-equiv") or "").strip().lower() == "refresh":
            out.refresh = immediate_refresh(content)
            if out.refresh is not None:
                break
    canonical_raw: str | None = None
    head = tree.head
    if head is not None:  # as search engines read it: a canonical in <body> is ignored
        for node in head.css("link[rel][href]"):
            rel = node.attributes.get("rel") or ""
            if "canonical" in rel.lower().split() and (value := node.attributes.get("href")):
                canonical_raw = value
                break
    if canonical_raw is not None:
        out.canonical = resolve(out.base, canonical_raw)
    if out.refresh is not None:
        out.refresh = resolve(out.base, out.refresh)
    if len(hrefs) <= _REDIRECT_PAGE_MAX_LINKS and _JS_NAVIGATION_HINT.search(body):
        for node in tree.css("script"):
            target = script_navigation(node.text())
            if target is not None:
                out.script_redirect = resolve(out.base, target)
                break
    return out


_REFRESH_TIME = re.compile(r"\s*(\d*)(?:\.[\d.]*)?")
_REFRESH_URL_KEY = re.compile(r"url\s*=\s*", re.I)


def immediate_refresh(content: str) -> str | None:
    """The URL of a ``<meta http-equiv="refresh">`` content that sends the browser on at once
    (a delay of 0 seconds), as written; None for a later refresh or a reload of the page itself.

    Parsed as the HTML standard's "shared declarative refresh steps" parse it:
    ``0; url=https://amzn.to/x``, ``0;URL='…'``, ``0, …`` and ``0; https://…`` all count.
    """
    match = _REFRESH_TIME.match(content)
    if match is None or (match.group(1) == "" and not match.group(0).strip().startswith(".")):
        return None
    if match.group(1) and int(match.group(1)) != 0:
        return None
    rest = content[match.end() :]
    if not rest or rest[0] not in ";, \t\n\f\r":
        return None
    rest = rest.lstrip(" \t\n\f\r")
    if rest[:1] in (";", ","):
        rest = rest[1:]
    rest = rest.lstrip(" \t\n\f\r")
    if key := _REFRESH_URL_KEY.match(rest):
        rest = rest[key.end() :]
    if rest[:1] in ("'", '"'):
        quote, rest = rest[0], rest[1:]
        rest = rest.split(quote, 1)[0]
    url = rest.strip()
    return url or None


# A script whose first statement sends the browser elsewhere: ``location.replace("…")``,
# ``window.location.href = '…'``, ``location = "…"`` (what static-site redirect pages write),
# on a page that exists to send its visitor on: a few links at most (its "click here"), not an
# article (whose scripts are not searched: that scan of the whole body cost 4 % of a crawl).
# A navigation later in a script (in a handler, after a test) is not an immediate one.
_REDIRECT_PAGE_MAX_LINKS = 3
_JS_NAVIGATION_HINT = re.compile(rb"location(?:\.href)?\s*=|location\.(?:replace|assign)\s*\(")
_JS_NAVIGATION = re.compile(
    r"""^\s*(?:(?:window|self|top|document)\.)?location"""
    r"""(?:(?:\.href)?\s*=\s*|\.(?:replace|assign)\s*\(\s*)(["'])((?:(?!\1)[^\\\n]|\\.)*)\1"""
)


def script_navigation(script: str) -> str | None:
    """The URL an inline script sends the browser to as its first statement, else None."""
    match = _JS_NAVIGATION.match(script)
    if match is None:
        return None
    url = re.sub(r"\\(.)", r"\1", match.group(2)).strip()  # JavaScript escapes: \/ is /
    return url or None
