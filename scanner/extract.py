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

_SELECTOR = "a[href], area[href], iframe[src], base[href]"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


@dataclass(slots=True)
class PageLinks:
    """What a page links to: every ``<a>``/``<area>`` ``href`` and ``<iframe>`` ``src`` as
    written (entities decoded), in document order, and the base they resolve against."""

    base: str
    hrefs: list[str] = field(default_factory=list)
    canonical: str | None = None  # absolute

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


def decode_body(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # unknown charset name: browsers fall back to windows-1252/utf-8
        return body.decode("utf-8", errors="replace")


def extract_links(body: bytes, page_url: str, header_charset: str | None = None) -> PageLinks:
    """The links of a page (see :class:`PageLinks`) and its ``rel=canonical`` URL (read in
    ``<head>`` only)."""
    charset = sniff_charset(body, header_charset)
    html: str | bytes = body if charset in ("utf-8", "utf8") else decode_body(body, charset)
    tree = LexborHTMLParser(html)
    out = PageLinks(page_url)
    hrefs = out.hrefs
    canonical_raw: str | None = None
    for node in tree.css(_SELECTOR):
        tag = node.tag
        attrs = node.attributes
        value = attrs.get("src") if tag == "iframe" else attrs.get("href")
        if not value:
            continue
        if tag == "base":
            if out.base is page_url:
                out.base = resolve(page_url, value) or page_url
        else:
            hrefs.append(value)
    head = tree.head
    if head is not None:  # as search engines read it: a canonical in <body> is ignored
        for node in head.css("link[rel][href]"):
            rel = node.attributes.get("rel") or ""
            if "canonical" in rel.lower().split() and (value := node.attributes.get("href")):
                canonical_raw = value
                break
    if canonical_raw is not None:
        out.canonical = resolve(out.base, canonical_raw)
    return out
