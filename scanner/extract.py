"""Extraction: page bytes + page URL → the links on it. Pure functions over selectolax (lexbor).

Attribute values are decoded by lexbor exactly as browsers decode them (``&amp;`` → ``&``, while a
bare ``&region=`` stays ``&region=``); text inside ``<script>`` is never markup, so links in
script strings are not seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

from scanner.urls import resolve

_SELECTOR = "a[href], area[href], iframe[src], link[rel][href], base[href]"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


@dataclass(slots=True)
class PageLinks:
    """What a page links to. ``links`` keeps every occurrence, in document order."""

    canonical: str | None = None
    links: list[str] = field(default_factory=list)  # absolute, fragment dropped; a/area/iframe


def sniff_charset(body: bytes, header_charset: str | None) -> str:
    """The page's encoding: the Content-Type charset, else a ``<meta charset>``, else UTF-8."""
    if header_charset:
        return header_charset
    match = _META_CHARSET.search(body, 0, 2048)
    return match.group(1).decode("ascii").lower() if match else "utf-8"


def decode_body(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # unknown charset name: browsers fall back to windows-1252/utf-8
        return body.decode("utf-8", errors="replace")


def extract_links(body: bytes, page_url: str, header_charset: str | None = None) -> PageLinks:
    """Every ``<a>``/``<area>`` ``href`` and ``<iframe>`` ``src`` of a page, resolved against the
    page (or its ``<base href>``), plus its ``rel=canonical`` URL."""
    charset = sniff_charset(body, header_charset)
    html: str | bytes = body if charset in ("utf-8", "utf8") else decode_body(body, charset)
    tree = LexborHTMLParser(html)
    out = PageLinks()
    base = page_url
    raw: list[str] = []
    canonical_raw: str | None = None
    for node in tree.css(_SELECTOR):
        tag = node.tag
        attrs = node.attributes
        value = attrs.get("src") if tag == "iframe" else attrs.get("href")
        if not value:
            continue
        if tag == "link":
            if canonical_raw is None and "canonical" in (attrs.get("rel") or "").lower().split():
                canonical_raw = value
        elif tag == "base":
            if base is page_url:
                base = resolve(page_url, value) or page_url
        else:
            raw.append(value)
    if canonical_raw is not None:
        out.canonical = resolve(base, canonical_raw)
    links = out.links
    for value in raw:
        url = resolve(base, value)
        if url is not None:
            links.append(url)
    return out
