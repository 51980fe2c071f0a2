"""What the crawler says when a site cannot be read: one sentence per kind of network trouble,
in one place (so a translation pass finds them all), instead of the libraries' own words
(``[SSL: WRONG_VERSION_NUMBER]``, ``Name or service not known``). Pure functions."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

import aiohttp

# what went wrong, for the code that decides (retry, fall back to http://); the text is for people
Trouble = Literal["tls", "certificate", "refused", "dns", "timeout", "reset", "blocked", "other"]


@dataclass(frozen=True, slots=True)
class NetworkTrouble:
    kind: Trouble
    sentence: str

    @property
    def https_failed(self) -> bool:
        """https:// could not even start: http:// may still answer (a bare domain is retried)."""
        return self.kind in ("tls", "refused", "reset")


def describe(exc: BaseException) -> NetworkTrouble:
    """The sentence for an exception from one request (aiohttp's, the OS's, a timeout)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) or isinstance(
        cause, ssl.SSLCertVerificationError
    ):
        return NetworkTrouble(
            "certificate", "the site's https certificate is not valid (expired, or another name's)"
        )
    if isinstance(exc, aiohttp.ClientSSLError) or isinstance(cause, ssl.SSLError):
        return NetworkTrouble("tls", "the site does not answer over https")
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(cause, socket.gaierror):
        return NetworkTrouble("dns", "no such domain: check the spelling")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return NetworkTrouble("timeout", "timed out: the site did not answer in time")
    if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) in (
        errno.ECONNREFUSED,
    ):
        return NetworkTrouble("refused", "the server refused the connection (nothing listens)")
    if isinstance(exc, aiohttp.ServerDisconnectedError) or isinstance(
        cause, ConnectionResetError | BrokenPipeError
    ):
        return NetworkTrouble("reset", "the site closed the connection before answering")
    if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return NetworkTrouble("other", "the site's address cannot be reached from here")
    if isinstance(exc, aiohttp.InvalidURL):
        return NetworkTrouble("other", "the address is not a valid URL")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return NetworkTrouble("other", "the site sent a broken answer")
    text = str(exc) or type(exc).__name__
    return NetworkTrouble("other", text.splitlines()[0][:300])


def refused_for_safety(host: str, addresses: list[str], reason: str | None = None) -> str:
    """A connection the SSRF guard refused (see scanner.net)."""
    shown = ", ".join(addresses[:3]) + (f": {reason}" if reason else "")
    return (
        f"refused to connect to {host} ({shown}): private, loopback or reserved addresses "
        "are not crawled"
    )


def is_refused_for_safety(error: str) -> bool:
    return error.startswith("refused to connect to ")


def site_unreachable(url: str, error: str) -> str:
    """Why a scan read no page at all, and what to do."""
    if is_refused_for_safety(error):
        return f"{url} is refused for safety: {error}. Scan the site's public address instead"
    return (
        f"site unreachable: {url}: {error}. Check the address; if your host limits crawlers, "
        "ask it to allow the user-agent AffiliateLink"
    )


def scanned_over_http(https_url: str, http_url: str, why: str) -> str:
    """The note of a bare domain scanned over http:// because https:// did not work."""
    return f"{https_url} did not work ({why}): scanned {http_url} instead"


def skipped_page(reason: str) -> str:
    return f"skipped: {reason}"


def too_slow_to_read(seconds: float) -> str:
    """Why a page whose HTML a page worker gave up reading is skipped."""
    return f"reading its HTML took over {seconds:g} s"
