"""The engine's sentences in pages: the engine writes its messages in English (the JSON API and
the CLI show them so); web.engine_messages recognises each one and pages show it in their
language. Here the engine writes them for real (its own functions, with the values it would
have), so a message reworded in the engine without its pattern here fails."""

from __future__ import annotations

import errno
import re
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from amazon_creatorsapi.errors import (
    AccessDeniedError,
    AssociateValidationError,
    AuthenticationError,
)

from scanner import messages
from scanner.amazon import AmazonAccountError, check_access
from scanner.crawl import CrawlResult, FailedPage
from scanner.creators_api import _explain
from scanner.extract import MAX_NESTING, PageTooDeep, extract_links
from scanner.scan import ScanFailed, _check_reached
from scanner.settings import AmazonAccess, ScanConfig
from scanner.urls import BadSiteUrl, site_url
from web import engine_messages, i18n

ROOT = Path(__file__).resolve().parent.parent
GOOD = AmazonAccess("CID-1", "secret-1", "2.1", "me-20", "www.amazon.fr")


def _account_errors() -> list[str]:
    out = []
    for access in (
        AmazonAccess("AKIAOLDKEY", "x", "2.1", "me-20"),
        AmazonAccess("", "", "2.1", "me-20"),
        AmazonAccess("CID-1", "secret", "9.9", "me-20"),
        AmazonAccess("CID-1", "secret", "2.1", ""),
    ):
        with pytest.raises(AmazonAccountError) as caught:
            check_access(access)
        out.append(str(caught.value))
    for exc in (
        AssociateValidationError("InvalidPartnerTag: the tag is not valid"),
        AccessDeniedError("AssociateNotEligible: not eligible"),
        AccessDeniedError("AccessDenied: something else"),
        AuthenticationError("invalid_client"),
    ):
        explained = _explain(exc, GOOD)
        assert explained is not None, exc
        out.append(str(explained))
    return out


def _scan_failures() -> list[str]:
    config = ScanConfig(site="https://blog.example/")
    out = []
    for crawl in (
        CrawlResult(start_redirect="https://elsewhere.example/"),
        CrawlResult(robots_skipped=3),
        CrawlResult(failed=[FailedPage("https://blog.example/", 503, "HTTP 503")]),
        CrawlResult(),
    ):
        with pytest.raises(ScanFailed) as caught:
            _check_reached(config, crawl)
        out.append(str(caught.value))
    return out


def _network_troubles() -> list[str]:
    """What scanner.messages says of each kind of network trouble, and the sentences made of
    them (a site unreachable, refused for safety, scanned over http://, a page skipped)."""
    certificate = ssl.SSLCertVerificationError("certificate verify failed")
    reset = aiohttp.ServerDisconnectedError()
    troubles = [
        aiohttp.ClientConnectorCertificateError(_KEY, certificate),
        aiohttp.ClientSSLError(_KEY, ssl.SSLError("WRONG_VERSION_NUMBER")),
        aiohttp.ClientConnectorDNSError(_KEY, socket.gaierror(-2, "Name or service not known")),
        TimeoutError(),
        _caused(aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused"))),
        reset,
        _caused(aiohttp.ClientConnectorError(_KEY, OSError(errno.ENETUNREACH, "unreachable"))),
        aiohttp.InvalidURL("http://[::1"),
        aiohttp.ClientPayloadError("broken"),
    ]
    sentences = [messages.describe(exc).sentence for exc in troubles]
    assert len(set(sentences)) == len(sentences), sentences  # one sentence per kind
    refused = messages.refused_for_safety("10.0.0.5", ["10.0.0.5"], "private")
    return [
        *sentences,
        refused,
        messages.site_unreachable("https://blog.example/", sentences[2]),
        messages.site_unreachable("https://intranet.example/", refused),
        messages.scanned_over_http("https://blog.example/", "http://blog.example/", sentences[1]),
        messages.skipped_page(_too_deep()),
        messages.skipped_page(messages.too_slow_to_read(10.0)),
    ]


def _too_deep() -> str:
    deep = b"<html><body>" + b"<div>" * (MAX_NESTING + 10) + b"</body></html>"
    with pytest.raises(PageTooDeep) as caught:
        extract_links(deep, "https://blog.example/deep")
    return str(caught.value)


_KEY = aiohttp.client_reqrep.ConnectionKey("blog.example", 443, True, True, None, None, None)


def _caused(exc: BaseException) -> BaseException:
    exc.__cause__ = exc.os_error if hasattr(exc, "os_error") else None
    return exc


def _site_problems() -> list[str]:
    out = []
    for typed in ("", "ftp://blog.example/", "blog", "https://blog.example:99999/"):
        with pytest.raises(BadSiteUrl) as caught:
            site_url(typed)
        out.append(str(caught.value))
    return out


def _job_failures() -> list[str]:
    """The reasons ccbb/jobs.py gives as literal text."""
    source = (ROOT / "ccbb" / "jobs.py").read_text(encoding="utf-8")
    found = re.findall(r'_fail\(\s*ctx,\s*scan_id,\s*"([^"]+)"', source)
    assert found, "no literal failure reason in ccbb/jobs.py: has _fail changed?"
    return found


def _all() -> list[str]:
    return [
        *_account_errors(),
        *_scan_failures(),
        *_network_troubles(),
        *_site_problems(),
        *_job_failures(),
    ]


def test_every_message_the_engine_writes_is_recognised() -> None:
    unknown = [m for m in _all() if not engine_messages.known(m)]
    assert not unknown, f"add these to web.engine_messages.MESSAGES: {unknown}"


def test_pages_show_them_in_french_with_their_values() -> None:
    i18n.use("fr")
    try:
        for message in _all():
            french = engine_messages.translate(message)
            assert french != message, message
        tag = engine_messages.translate(_account_errors()[4])
        assert (
            tag.startswith("l'ID partenaire 'me-20' n'est pas associé") and "www.amazon.fr" in tag
        )
        unreachable = engine_messages.translate(_scan_failures()[2])
        assert unreachable.startswith("site injoignable : https://blog.example/ : HTTP 503.")
        # as Test connection writes them: a sentence
        sentence = _account_errors()[7]
        sentence = sentence[:1].upper() + sentence[1:] + "."
        french = engine_messages.translate(sentence)
        assert french.startswith("Amazon a refusé les identifiants") and french.endswith(".")
        nested = engine_messages.translate(
            "Amazon did not answer the test lookup: Amazon API unavailable after 2 attempts: "
            "HTTP 503. Try again later."
        )
        assert nested == (
            "Amazon n'a pas répondu à la recherche de test : API Amazon indisponible après 2 "
            "tentatives : HTTP 503. Réessayez plus tard."
        )
    finally:
        i18n.use("en")


def test_english_pages_and_unknown_messages_are_unchanged() -> None:
    for message in _all():
        assert engine_messages.translate(message) == message
    i18n.use("fr")
    try:
        assert engine_messages.translate("something new the engine says") == (
            "something new the engine says"
        )
        assert engine_messages.translate(None) == ""
    finally:
        i18n.use("en")
