"""URL handling for the crawl: resolution like a browser, normalisation, same-site scope. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import idna

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SKIPPED_SCHEMES = ("javascript:", "mailto:", "tel:", "data:", "sms:", "ftp:", "file:")
_STRIP_TABLE = {ord(c): None for c in "\t\n\r"}
_C0_AND_SPACE = "".join(map(chr, range(0x21)))  # what the URL standard trims from an href


class BadSiteUrl(ValueError):
    """The URL given for a scan cannot be crawled; the message says how to write it."""


def site_url(raw: str) -> str:
    """A user's site as a start URL: ``example.com`` becomes ``https://example.com/``."""
    text = raw.strip()
    if not text:
        raise BadSiteUrl("the site URL is empty: give a domain such as example.com")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in _DEFAULT_PORTS:
        raise BadSiteUrl(f"{raw!r} is not a web address: use http:// or https://")
    if not parts.hostname or ("." not in parts.hostname and parts.hostname != "localhost"):
        raise BadSiteUrl(f"{raw!r} has no domain name: give one such as example.com")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise BadSiteUrl(f"{raw!r} has an invalid port") from exc
    return normalize(text)


def is_bare_domain(raw: str) -> bool:
    """Was the site typed without a scheme (``example.com``)? Then https:// is tried first, and
    http:// when https:// does not work at all."""
    return "://" not in raw.strip()


def normalize(url: str) -> str:
    """Canonical form used as a crawl key: lower-case scheme and host (IDN as punycode), no
    default port, no fragment, ``/`` for an empty path, path and query percent-encoded (an IRI's
    raw non-ASCII characters as UTF-8 escapes, every escape in upper-case hex), so a link written
    ``/café/`` and one written ``/caf%c3%a9/`` are one page. Query order, reserved escapes
    (``%3F``, ``%2F``…) and the case of the path are kept. Never raises: what cannot be parsed
    as a URL (a bad port, a broken ``[IPv6]`` host) is only escaped and loses its fragment."""
    if is_normal(url):  # most links of a site are written so: nothing to parse
        return url
    return _normalize_parsed(url)


# A URL already in the form normalize() gives, recognised without parsing it: lower-case
# http(s) scheme and ASCII host (no trailing dot, no user, no brackets), a port only when it is
# not the scheme's default, a path, maybe a non-empty query, no fragment, and only characters
# that stay as written (no escape at all, whose hex case would need a look).
_NORMAL = re.compile(
    r"(https?)://[a-z0-9-]+(?:\.[a-z0-9-]+)*(?::([1-9][0-9]{0,4}))?"
    r"/[A-Za-z0-9/!$&'()*+,;=:@~._-]*(?:\?[A-Za-z0-9/!$&'()*+,;=:@~._?-]+)?"
)


def is_normal(url: str) -> bool:
    """Is ``url`` its own :func:`normalize` form, as far as one regular expression can tell?
    (False says nothing: such a URL may be normal too.)"""
    match = _NORMAL.fullmatch(url)
    if match is None:
        return False
    port = match.group(2)
    return port is None or _DEFAULT_PORTS[match.group(1)] != int(port) <= 65535


def _normalize_parsed(url: str) -> str:
    """:func:`normalize`, the whole way."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _escape(drop_fragment(url), _SAFE_QUERY)
    scheme = parts.scheme.lower()
    host = _ascii_host((parts.hostname or "").rstrip("."))
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = _escape(parts.path, _SAFE_PATH) or "/"
    query = _escape(parts.query, _SAFE_QUERY)
    return urlunsplit((scheme, netloc, path, query, ""))


# What stays as written in a path and a query: RFC 3986 unreserved and reserved characters and
# "%" (an existing escape, or a lone "%" that browsers keep too). Everything else is escaped.
_SAFE_PATH = "/%!$&'()*+,;=:@~-._[]"
_SAFE_QUERY = _SAFE_PATH + "?"
_NEEDS_ESCAPING = re.compile(r"[^A-Za-z0-9/%!$&'()*+,;=:@~\-._\[\]?]|%[0-9A-Fa-f]{2}")
_LOWER_ESCAPE = re.compile(r"%(?:[0-9a-f][a-f]|[a-f][0-9A-F])")


def _escape(text: str, safe: str) -> str:
    """``text`` with its raw non-ASCII and unsafe characters percent-encoded (UTF-8) and its
    escapes in upper-case hex. Idempotent."""
    found = _NEEDS_ESCAPING.search(text)
    if found is None:
        return text
    if not (found.group().startswith("%") and _NEEDS_ESCAPING.search(text, found.end()) is None):
        text = quote(text, safe=safe, errors="surrogatepass")  # lone surrogates too
    if _LOWER_ESCAPE.search(text):
        text = _LOWER_ESCAPE.sub(lambda m: m.group().upper(), text)
    return text


def _ascii_host(host: str) -> str:
    """An internationalised host name in its ASCII (punycode) form, when it has one."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (UnicodeError, ValueError):  # IDNAError is a UnicodeError
        return host


def drop_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def resolve(base: str, href: str) -> str | None:
    """Absolute URL of ``href`` on a page at ``base``, as a browser resolves it, fragment dropped.

    None for hrefs that lead nowhere crawlable (``javascript:``, ``mailto:``, empty, malformed).
    """
    return Base(base).resolve(href)


class Base:
    """An absolute http(s) base URL split once, for resolving the many hrefs of one page."""

    __slots__ = ("_dir", "_origin", "_path", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        cut = len(url)
        for mark in "?#":
            at = url.find(mark)
            if 0 <= at < cut:
                cut = at
        path_start = url.find("/", url.find("//") + 2)
        if path_start < 0 or path_start > cut:
            self._origin, self._path = url[:cut], "/"
        else:
            self._origin, self._path = url[:path_start], url[path_start:cut]
        self._dir = self._path[: self._path.rfind("/") + 1]

    def resolve(self, href: str) -> str | None:
        """See :func:`resolve`."""
        href = href.strip(_C0_AND_SPACE)  # as browsers do: not str.strip(), which eats U+00A0 too
        if "\n" in href or "\t" in href or "\r" in href:
            href = href.translate(_STRIP_TABLE)
        if not href or href.startswith("#"):
            return None
        low = href[:11].lower()
        if low.startswith(_SKIPPED_SCHEMES):
            return None
        if low.startswith(("http://", "https://")):
            absolute = href
        elif href.startswith("//"):
            absolute = self.url[: self.url.find(":") + 1] + href
        else:  # relative to the page: same origin as the base, nothing to validate
            return drop_fragment(self._join_relative(href))
        if not absolute[:8].lower().startswith(("http://", "https://")):
            return None
        if is_normal(absolute):  # a valid URL, no need to parse it to know
            return absolute
        try:
            urlsplit(absolute).port  # noqa: B018  (raises on a bad port or a broken [IPv6] host)
        except ValueError:
            return None
        return drop_fragment(absolute)

    def _join_relative(self, href: str) -> str:
        """RFC 3986 §5.2 for a reference without scheme or authority: the hot path of link
        extraction (urljoin does the same, several times slower)."""
        if href.startswith("../") and "/." not in self._dir:
            # ``../../x/``, as themes write links between posts: climb, then append
            directory = self._dir
            while href.startswith("../"):
                href = href[3:]
                directory = directory[: directory.rfind("/", 0, len(directory) - 1) + 1] or "/"
            if not href.startswith(".") and "/." not in href:
                return self._origin + directory + href
            return self._join_general(directory + href)  # dot segments left: the whole way
        return self._join_general(href)

    def _join_general(self, href: str) -> str:
        """:meth:`_join_relative` for any reference without scheme or authority."""
        if href.startswith("?"):
            return self._origin + self._path + href
        merged = href if href.startswith("/") else self._dir + href
        if "/." in merged or merged.startswith("."):
            tail = ""
            for mark in "?#":
                at = merged.find(mark)
                if at >= 0:
                    merged, tail = merged[:at], merged[at:] + tail
                    break
            merged = _remove_dot_segments(merged) + tail
        return self._origin + merged


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    joined = "/".join(out)
    return joined if joined.startswith("/") else "/" + joined


def memo_key(origin: str, href: str) -> str | None:
    """A key under which ``href`` resolves the same on every page of ``origin``
    (``scheme://host[:port]``): absolute and root-relative hrefs. None for page-relative ones."""
    if href.startswith(("http://", "https://")):
        return href
    if href.startswith("/"):
        return (origin[: origin.find(":") + 1] + href) if href.startswith("//") else origin + href
    return None


def origin_of(url: str) -> str:
    end = url.find("/", url.find("//") + 2)
    return url if end < 0 else url[:end]


@dataclass(frozen=True, slots=True)
class SiteScope:
    """Which URLs belong to the scanned site: same host, apex and ``www.`` being one site."""

    key: str  # host without "www."
    port: int | None  # an explicit non-default port of the start URL, else None

    @classmethod
    def of(cls, start_url: str) -> SiteScope:
        parts = urlsplit(start_url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
        if port == _DEFAULT_PORTS.get(parts.scheme):
            port = None
        return cls(key=host.removeprefix("www."), port=port)

    def contains(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = _ascii_host((parts.hostname or "").rstrip("."))
            port = parts.port
        except ValueError:
            return False
        if host.removeprefix("www.") != self.key:
            return False
        if port == _DEFAULT_PORTS.get(parts.scheme.lower()):
            port = None
        return port == self.port


def cloak_prefix(raw: str) -> str:
    """A user's cloaking prefix in the form a normalised link is compared with
    (``PageDigester.classify``)."""
    return normalize(raw.strip())
