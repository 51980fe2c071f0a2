"""Polite fetching: per-host slots, Retry-After backoff, retries, timeouts and a body cap.

Redirects are never followed here: the caller decides what a ``Location`` means (a same-site page,
a cloaked affiliate link, or Amazon itself, which is never requested).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit

import aiohttp

from scanner.messages import Trouble, describe
from scanner.net import BlockedAddress, NetworkPolicy
from scanner.settings import CrawlLimits
from scanner.urls import drop_fragment, origin_of

log = logging.getLogger(__name__)

T = TypeVar("T")

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@dataclass(slots=True)
class Response:
    url: str
    status: int | None = None
    content_type: str = ""
    charset: str | None = None
    body: bytes | None = None  # only for accepted content types
    location: str | None = None  # absolute Location of a redirect
    error: str | None = None
    retry_after: float | None = None  # seconds a 429/503 asked to wait
    transient: bool = False  # a network error that another attempt may not meet
    trouble: Trouble | None = None  # the kind of network error (scanner.messages)

    def __reduce__(self) -> tuple[type[Response], tuple[object, ...]]:
        # one per page from each page worker: the slots-dataclass default (a state dict walked
        # field by field on both sides) costs several times these positional arguments
        return (Response, (self.url, self.status, self.content_type, self.charset, self.body,
                           self.location, self.error, self.retry_after, self.transient,
                           self.trouble))  # fmt: skip

    @property
    def is_redirect(self) -> bool:
        return self.status is not None and 300 <= self.status < 400 and self.location is not None

    @property
    def is_html(self) -> bool:
        return self.content_type in HTML_TYPES


class HostSlot:
    """At most ``concurrency`` requests in flight to one host, starts spaced by ``interval``
    (robots.txt Crawl-delay), and a pause for the whole host after a 429/503."""

    def __init__(self, concurrency: int, interval: float = 0.0) -> None:
        self._sem = asyncio.Semaphore(concurrency)
        self.interval = interval
        self._next_start = 0.0

    def pause(self, seconds: float) -> None:
        self._next_start = max(self._next_start, time.monotonic() + seconds)

    async def __aenter__(self) -> None:
        await self._sem.acquire()
        while (wait := self._next_start - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)  # a pause may grow while we wait: check again
        if self.interval:
            self._next_start = time.monotonic() + self.interval

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """Decompress a ``.gz`` body, refusing one that inflates past ``cap`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, cap + 1)
    if len(out) > cap:
        raise ValueError(f"decompresses to more than {_size(cap)}")
    return out


def _size(n: int) -> str:
    """``10 MB``, ``100 kB``, ``512 bytes``: a body cap as people read it."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} MB"
    if n >= 1_000:
        return f"{n / 1_000:g} kB"
    return f"{n} bytes"


class Fetcher:
    """Politeness and retries (this process) around single attempts (here or in a worker)."""

    def __init__(
        self, session: aiohttp.ClientSession, policy: NetworkPolicy, limits: CrawlLimits
    ) -> None:
        self.session = session
        self._policy = policy
        self._limits = limits
        self._slots: dict[str, HostSlot] = {}
        self._refused: dict[tuple[str, int | None], str | None] = {}  # IP-literal host check
        self._origins: dict[str, tuple[str, tuple[str, int | None]]] = {}  # see _where
        self.requests = 0

    def slot(self, host: str) -> HostSlot:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = HostSlot(self._limits.per_host_concurrency)
        return slot

    def _where(self, url: str) -> tuple[str, tuple[str, int | None]]:
        """The host of ``url`` and the (host, port) it connects to, remembered per origin: the
        part before the path decides them (a crawl asks for thousands of URLs of one site)."""
        origin = origin_of(url)
        known = self._origins.get(origin)
        if known is None:
            parts = urlsplit(url)
            host = parts.hostname or ""
            known = (host, (host, _port(parts.scheme, parts)))
            if len(self._origins) < 10_000:
                self._origins[origin] = known
        return known

    async def get(self, url: str, *, accept: str = "html") -> Response:
        """GET ``url`` without following redirects.

        The body is read, up to the body cap, for ``accept="html"`` pages, any ``"any"`` type,
        never with ``"none"``. Never raises for network trouble: the Response carries the error.
        """
        response, _ = await self.retrying(url, lambda: self._get_once(url, accept))
        return response

    async def _get_once(self, url: str, accept: str) -> tuple[Response, None]:
        return await attempt(self.session, url, accept, self._limits), None

    async def retrying(
        self, url: str, once: Callable[[], Awaitable[tuple[Response, T]]]
    ) -> tuple[Response, T | None]:
        """Run ``once`` (one GET of ``url``) within the host's slot, again after a 5xx, a 429 or a
        network error, waiting as the server asks (Retry-After) or with exponential backoff,
        as long as another whole attempt fits in the URL's budget (``limits.budget``): a site
        that never answers costs one timeout per URL, not one per attempt."""
        limits = self._limits
        host, where = self._where(url)
        refused = self._refused.get(where, "")
        if refused == "":  # not judged yet: the policy's answer never changes during a scan
            try:
                self._policy.check_literal(*where)
                refused = None
            except BlockedAddress as exc:
                refused = str(exc)
            if len(self._refused) < 10_000:
                self._refused[where] = refused
        if refused is not None:
            return Response(url, error=refused), None
        slot = self.slot(host)
        tries = 0
        deadline = time.monotonic() + limits.budget
        while True:
            delay = 0.0
            async with slot:
                self.requests += 1
                response, extra = await once()
                status = response.status or 0
                retry = response.transient or status == 429 or status >= 500
                if tries >= limits.retries or not retry:
                    return response, extra
                wait = limits.backoff * 2**tries
                if time.monotonic() + wait + limits.timeout > deadline:
                    return response, extra  # another attempt could outlast the URL's budget
                if status in (429, 503):
                    if response.retry_after is not None:
                        wait = response.retry_after
                    wait = min(wait, limits.max_retry_after)
                    slot.pause(wait)  # the whole host slows down, not only this URL
                    log.info("%s asked to slow down (%s): pausing %.1fs", host, status, wait)
                else:
                    delay = wait
            tries += 1
            if delay:
                await asyncio.sleep(delay)


async def attempt(
    session: aiohttp.ClientSession, url: str, accept: str, limits: CrawlLimits
) -> Response:
    """One GET, no redirect followed, never raising: network trouble is in ``error``, with
    ``transient`` set when trying again may help."""
    try:
        return await _once(session, url, accept, limits)
    except BlockedAddress as exc:
        return Response(url, error=str(exc), trouble="blocked")
    except (aiohttp.ClientError, TimeoutError) as exc:
        # aiohttp wraps the resolver's and the socket factory's refusals: say what happened
        if isinstance(exc.__cause__, BlockedAddress):
            return Response(url, error=str(exc.__cause__), trouble="blocked")
        trouble = describe(exc)
        transient = trouble.kind in ("refused", "reset", "timeout", "other") and not isinstance(
            exc, aiohttp.InvalidURL
        )
        return Response(url, error=trouble.sentence, transient=transient, trouble=trouble.kind)


async def _once(
    session: aiohttp.ClientSession, url: str, accept: str, limits: CrawlLimits
) -> Response:
    async with session.get(
        url, allow_redirects=False, timeout=_timeout(limits), max_line_size=16384
    ) as resp:
        status = resp.status
        ctype = resp.content_type.lower()
        out = Response(url, status=status, content_type=ctype, charset=resp.charset)
        if 300 <= status < 400:
            location = resp.headers.get("Location")
            if location:
                out.location = drop_fragment(urljoin(url, location.strip()))
            return out
        if status >= 400:
            out.retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            out.error = f"HTTP {status}"
            return out
        if accept == "none" or (accept == "html" and ctype not in HTML_TYPES):
            return out
        too_large = f"page larger than {_size(limits.max_body)}: skipped"
        length = resp.content_length
        if length is not None and length > limits.max_body:
            out.error = too_large
            return out
        if length is not None and "Content-Encoding" not in resp.headers:
            out.body = await resp.read()  # exactly Content-Length bytes: under the cap
            return out
        # Content-Length counts compressed bytes: the cap applies to what is inflated.
        buf = bytearray()
        async for chunk in resp.content.iter_any():
            buf += chunk
            if len(buf) > limits.max_body:
                out.error = too_large
                return out
        out.body = bytes(buf)
        return out


def _port(scheme: str, parts: SplitResult) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None


@functools.lru_cache(maxsize=16)
def _timeout(limits: CrawlLimits) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=limits.timeout, sock_connect=limits.connect_timeout)
