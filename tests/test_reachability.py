"""A bare domain is scanned over https:// first and over http:// when https:// cannot start,
with a note saying which was scanned; network errors read as sentences, not as the libraries'
words; a refused private address says it is refused for safety. Real local servers throughout."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ccbb.sandbox.amazon_api import RunningSandbox
from scanner.messages import describe, site_unreachable
from scanner.net import NetworkPolicy, make_session, parse_connect_to
from scanner.ratelimit import LocalRateLimiter
from scanner.report import to_json, to_text
from scanner.scan import ScanFailed, ScanReport, run_scan
from scanner.settings import CrawlLimits, ScanConfig
from scanner.urls import is_bare_domain, site_url
from tests.sites import Site, page
from tests.test_amazon import TAG, US, access_for, sandbox  # noqa: F401 (fixture)

LIMITS = CrawlLimits(retries=1, backoff=0.01, timeout=5.0, connect_timeout=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def http_only() -> AsyncIterator[Site]:
    site = await Site({"/": page("/a"), "/a": page()}).start()
    yield site
    await site.close()


async def scan(raw: str, sb: RunningSandbox, connect_to: list[str]) -> ScanReport:
    config = ScanConfig(
        site=site_url(raw),
        marketplace=US,
        partner_tag=TAG,
        limits=LIMITS,
        network=NetworkPolicy(connect_to=parse_connect_to(connect_to)),
        http_fallback=is_bare_domain(raw),
    )
    access = access_for(sb)
    async with make_session(config.network) as session:
        return await run_scan(config, access, session=session, limiter=LocalRateLimiter(50.0))


@pytest.mark.parametrize("https", ["plain http on 443", "nothing on 443"])
async def test_a_bare_domain_falls_back_to_http_and_says_so(
    sandbox: RunningSandbox,  # noqa: F811
    http_only: Site,
    https: str,
) -> None:
    port_443 = http_only.port if https == "plain http on 443" else free_port()
    connect = [f"site.test:80:127.0.0.1:{http_only.port}", f"site.test:443:127.0.0.1:{port_443}"]
    report = await scan("site.test", sandbox, connect)
    assert report.site == "http://site.test/"
    assert sorted(report.pages) == ["http://site.test/", "http://site.test/a"]
    why = (
        "the site does not answer over https"
        if https == "plain http on 443"
        else "the server refused the connection (nothing listens)"
    )
    note = f"https://site.test/ did not work ({why}): scanned http://site.test/ instead"
    assert report.notes == [note]
    assert f"Note: {note}" in to_text(report)
    assert to_json(report)["notes"] == [note]


async def test_a_typed_https_address_is_not_changed_and_the_error_is_a_sentence(
    sandbox: RunningSandbox,  # noqa: F811
    http_only: Site,
) -> None:
    connect = [f"site.test:443:127.0.0.1:{http_only.port}"]
    with pytest.raises(ScanFailed) as caught:
        await scan("https://site.test/", sandbox, connect)
    message = str(caught.value)
    assert message.startswith(
        "site unreachable: https://site.test/: the site does not answer over https."
    )
    assert "SSL" not in message and "WRONG_VERSION_NUMBER" not in message
    assert http_only.log == []  # TLS bytes reached it, but no HTTP request


async def test_a_private_address_is_refused_for_safety_not_blamed_on_the_host(
    sandbox: RunningSandbox,  # noqa: F811
    http_only: Site,
) -> None:
    with pytest.raises(ScanFailed) as caught:
        await scan(f"http://localhost:{http_only.port}/", sandbox, [])
    message = str(caught.value)
    assert "is refused for safety" in message
    assert "ask it to allow" not in message
    assert http_only.log == []


async def _error_of(url: str) -> BaseException:
    async with aiohttp.ClientSession() as session:
        try:
            await session.get(url, timeout=aiohttp.ClientTimeout(total=5))
        except Exception as exc:
            return exc
    raise AssertionError("no error")


async def test_library_errors_become_sentences(http_only: Site) -> None:
    tls = await _error_of(f"https://127.0.0.1:{http_only.port}/")
    assert "WRONG_VERSION_NUMBER" in str(tls)
    assert describe(tls).sentence == "the site does not answer over https"
    assert describe(tls).https_failed
    refused = await _error_of(f"http://127.0.0.1:{free_port()}/")
    assert describe(refused).sentence == "the server refused the connection (nothing listens)"
    dns = await _error_of("http://no-such-domain.invalid/")
    assert "Name or service not known" in str(dns) or "not known" in str(dns)
    assert describe(dns).sentence == "no such domain: check the spelling"
    assert not describe(dns).https_failed
    assert describe(TimeoutError()).sentence.startswith("timed out")
    bad_cert = aiohttp.ClientConnectorCertificateError(
        None,  # type: ignore[arg-type]
        ssl.SSLCertVerificationError("certificate verify failed"),
    )
    assert describe(bad_cert).kind == "certificate"


def test_unreachable_sentences() -> None:
    blocked = "refused to connect to x.test (10.0.0.1: private): private, loopback or reserved…"
    assert "refused for safety" in site_unreachable("http://x.test/", blocked)
    assert "ask it to allow" in site_unreachable("http://x.test/", "timed out")
