"""SSRF: every spelling of a loopback address, as a start URL and behind every kind of redirect
hop, is refused before a connection is made; every other address is judged by the guard's one
decision function (tests only ever connect to loopback).

The victim is a real TCP server on 127.0.0.1 (and one on ::1) that counts every connection it
accepts: it must see none. The crawler runs with private networks refused, as in production; the
sites that redirect are reached through ``--connect-to`` mappings, which the operator allows.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from scanner.fetch import Fetcher
from scanner.net import (
    NetworkPolicy,
    address_refusal,
    embedded_ipv4,
    is_address_allowed,
    literal_ip,
    make_session,
    parse_connect_to,
)
from scanner.settings import CrawlLimits
from scanner.urls import BadSiteUrl, site_url
from tests.sites import Listener, Site, page, redirect, text
from tests.test_crawl import crawl

LIMITS = CrawlLimits(timeout=2.0, connect_timeout=0.5, backoff=0.01, retries=0)

# Spellings of 127.0.0.1 (host part of a URL; the port is the victim's).
LOOPBACK_V4 = [
    "127.0.0.1",
    "127.0.0.1.",
    "localhost",
    "LOCALHOST",
    "localhost.",
    "127.1",
    "127.0.1",
    "2130706433",  # decimal integer
    "0x7f000001",  # hex integer
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",  # octal
    "017700000001",
    "１２７.０.０.１",  # full-width digits
    "１２７．０．０．１",  # full-width digits and dots
    "127。0。0。1",  # ideographic full stops
    "127｡0｡0｡1",  # half-width ideographic full stops
    "①②⑦.0.0.1",  # circled digits
    "127.0.0.１",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6: a dual-stack socket reaches 127.0.0.1
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
]
LOOPBACK_V6 = ["[::1]", "[0:0:0:0:0:0:0:1]", "[0000::1]"]


# what a hop into a spelling that names no address says (yarl refuses "127.1"; "localhost." has
# no address here): no connection either way
UNREACHABLE = ("refused to connect", "127.1 - is not a canonical", "no such domain")


class Victim:
    """Counting servers on 127.0.0.1 and ::1, same port where the system allows."""

    def __init__(self) -> None:
        self.v4 = Listener()
        self.v6_connections = 0
        self.v6_port = 0
        self._v6: asyncio.Server | None = None

    @property
    def connections(self) -> int:
        return self.v4.connections + self.v6_connections

    async def start(self) -> Victim:
        await self.v4.start()
        if socket.has_ipv6:

            async def seen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self.v6_connections += 1
                writer.close()

            try:
                self._v6 = await asyncio.start_server(seen, "::1", 0)
                self.v6_port = self._v6.sockets[0].getsockname()[1]
            except OSError:
                self._v6 = None
        return self

    async def close(self) -> None:
        await self.v4.close()
        if self._v6 is not None:
            self._v6.close()
            await self._v6.wait_closed()

    def url(self, host: str, path: str = "/") -> str:
        port = self.v6_port if host in LOOPBACK_V6 else self.v4.port
        return f"http://{host}:{port}{path}"


def spellings() -> list[str]:
    return LOOPBACK_V4 + LOOPBACK_V6


@pytest.fixture
async def victim() -> AsyncIterator[Victim]:
    v = await Victim().start()
    yield v
    await v.close()
    assert v.connections == 0, "the crawler connected to a loopback address"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = await Site({}).start()
    yield s
    await s.close()


def skip_without_v6(victim: Victim, host: str) -> None:
    if host in LOOPBACK_V6 and not victim.v6_port:
        pytest.skip("no IPv6 loopback on this machine")


@pytest.mark.parametrize("host", spellings())
async def test_a_start_url_in_any_loopback_spelling_is_refused(victim: Victim, host: str) -> None:
    skip_without_v6(victim, host)
    start = victim.url(host)
    try:
        site_url(start)
    except BadSiteUrl:
        return  # refused where the scan is created (integer hosts have no dot); hops are below
    run = await crawl([], site=start, allow_private=False, limits=LIMITS)
    assert run.pages == []
    [failure] = run.failed
    assert "refused to connect" in failure.error
    assert "loopback" in failure.error


@pytest.mark.parametrize("host", spellings())
async def test_redirects_into_any_loopback_spelling_are_refused(
    victim: Victim, site: Site, host: str
) -> None:
    """A page redirect, a cloaked link and a short link, each leading to the victim."""
    skip_without_v6(victim, host)
    target = victim.url(host, "/admin")
    short = await Site({"/x": redirect(target, 302)}).start()
    try:
        site.routes.update(
            {
                "/": page("/moved", "/go/steal", "http://amzn.to/x"),
                "/moved": redirect(target),
                "/go/steal": redirect(target, 307),
            }
        )
        run = await crawl(
            site.connect("site.test") + short.connect("amzn.to"),
            site="http://site.test/",
            cloak=["http://site.test/go/"],
            allow_private=False,
            limits=LIMITS,
        )
    finally:
        await short.close()
    assert run.pages == ["http://site.test/"]
    assert run.links == []
    assert [u.href for u in run.unresolved] == ["http://amzn.to/x", "http://site.test/go/steal"]
    for unresolved in run.unresolved:  # (yarl refuses "127.1"; "localhost." has no address)
        assert unresolved.error.startswith(UNREACHABLE), unresolved


@pytest.mark.parametrize("host", ["１２７.０.０.１", "127。0。0。1", "①②⑦.0.0.1", "2130706433"])
async def test_sitemaps_and_robots_leading_to_loopback_are_not_fetched(
    victim: Victim, site: Site, host: str
) -> None:
    site.routes.update(
        {
            "/": page(),
            "/robots.txt": text(f"User-agent: *\nSitemap: {victim.url(host, '/sitemap.xml')}\n"),
            "/sitemap.xml": redirect(victim.url(host, "/sitemap.xml")),
        }
    )
    run = await crawl(
        site.connect("site.test"), site="http://site.test/", allow_private=False, limits=LIMITS
    )
    assert run.pages == ["http://site.test/"]


@pytest.mark.parametrize(
    "host", ["１２７.０.０.１", "①②⑦.0.0.1", "[::ffff:127.0.0.1]", "0x7f000001", "localhost"]
)
async def test_the_session_itself_refuses_literals_whatever_the_caller_checked(
    victim: Victim, host: str
) -> None:
    """The check is in the connector, not only in the Fetcher: a bare GET through the crawler's
    session (what page workers do) does not connect either."""
    async with make_session(NetworkPolicy()) as session:
        fetcher = Fetcher(session, NetworkPolicy(allow_private=True), LIMITS)  # no early check
        response = await fetcher.get(victim.url(host))
    assert response.status is None
    assert response.error is not None and "refused to connect" in response.error


async def test_a_mapped_host_reaches_its_target_and_the_same_server_unmapped_does_not(
    site: Site, victim: Victim
) -> None:
    """The demo's rule: the operator's mapping allows its own target, nothing else private."""
    site.routes["/"] = page(f"http://127.0.0.1:{victim.v4.port}/")
    run = await crawl(
        site.connect("site.test"), site="http://site.test/", allow_private=False, limits=LIMITS
    )
    assert run.pages == ["http://site.test/"]
    other = await crawl([], site=f"http://localhost:{site.port}/", allow_private=False)
    assert other.pages == []
    assert "refused to connect" in other.failed[0].error


def test_the_mapped_targets_are_the_only_private_addresses_allowed() -> None:
    policy = NetworkPolicy(connect_to=parse_connect_to(["demo.example:80:127.0.0.1:8123"]))
    assert policy.refusal("127.0.0.1", 8123) is None
    assert policy.refusal("127.0.0.1", 8124) == "loopback"
    assert policy.refusal("10.0.0.1", 8123) == "private"
    assert policy.refusal("１２７.０.０.１", 8123) is None  # the same address, however spelt


# ---- the decision function, for addresses a test must never connect to -----------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.100.100.200", "not publicly routable"),  # Alibaba metadata, shared space
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "private"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),  # AWS metadata over IPv6
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        # IPv6 addresses carrying an IPv4 address are judged by it
        ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1 inside ::ffff:a00:1)"),
        ("::ffff:169.254.169.254", "link-local (IPv4 169.254.169.254 inside ::ffff:a9fe:a9fe)"),
        ("::127.0.0.1", "loopback (IPv4 127.0.0.1 inside ::7f00:1)"),  # IPv4-compatible
        ("::10.1.2.3", "private (IPv4 10.1.2.3 inside ::a01:203)"),
        ("64:ff9b::a9fe:a9fe", "link-local (IPv4 169.254.169.254 inside 64:ff9b::a9fe:a9fe)"),
        ("64:ff9b::127.0.0.1", "loopback (IPv4 127.0.0.1 inside 64:ff9b::7f00:1)"),
        ("64:ff9b:1::a00:1", "private (IPv4 10.0.0.1 inside 64:ff9b:1::a00:1)"),
        ("2002:7f00:1::1", "loopback (IPv4 127.0.0.1 inside 2002:7f00:1::1)"),  # 6to4
        ("2002:a9fe:a9fe::", "link-local (IPv4 169.254.169.254 inside 2002:a9fe:a9fe::)"),
        ("2002:c0a8:0101::1", "private (IPv4 192.168.1.1 inside 2002:c0a8:101::1)"),
        # Teredo: client 10.8.8.8 (stored inverted) behind a public server
        (
            "2001:0:4136:e378:8000:63bf:f5f7:f7f7",
            "private (IPv4 10.8.8.8 inside 2001:0:4136:e378:8000:63bf:f5f7:f7f7)",
        ),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert address_refusal(address) == reason
    assert is_address_allowed(address) is False
    assert is_address_allowed(address, allow_private=True) is True


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
        "2002:0808:0808::1",  # 6to4 of 8.8.8.8
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, client 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(address) is None
    assert is_address_allowed(address) is True


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("１２７.０.０.１", "127.0.0.1"),
        ("127。0。0。1", "127.0.0.1"),
        ("①②⑦.0.0.1", "127.0.0.1"),
        ("１０.０.０.１", "10.0.0.1"),
        ("⑯⑨.②⑤④.⑯⑨.②⑤④", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("[::ffff:a9fe:a9fe]", "::ffff:a9fe:a9fe"),
        ("example.com", None),
        ("1e100.net", None),
        ("xn--80ak6aa92e.com", None),
    ],
)
def test_literal_spellings_are_read_as_the_address_connected_to(
    host: str, address: str | None
) -> None:
    assert literal_ip(host) == address


def test_a_refused_literal_fails_in_the_fetcher_with_the_reason() -> None:
    policy = NetworkPolicy()
    with pytest.raises(OSError, match=r"169\.254\.169\.254: link-local"):
        policy.check_literal("⑯⑨.②⑤④.⑯⑨.②⑤④")


def test_embedded_ipv4_of_plain_ipv6_is_none() -> None:
    import ipaddress

    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700:4700::1111")) is None
    assert embedded_ipv4(ipaddress.IPv6Address("::1")) is None


def test_the_demo_allows_its_own_site_and_no_other_private_address() -> None:
    """``ccbb run --demo`` used to set the global allow-private switch: any account could then
    crawl the machine's network. Its workers now get the mappings only."""
    from ccbb.jobs import network_policy
    from ccbb.services import demo_env
    from ccbb.settings import Settings

    settings = Settings(**demo_env(site_port=8123, api_port=8124))  # type: ignore[arg-type]
    policy = network_policy(settings)
    assert policy.allow_private is False
    assert policy.refusal("127.0.0.1", 8123) is None  # the demo site, through its mappings
    for address, port in [
        ("127.0.0.1", 8124),  # the sandbox API
        ("127.0.0.1", 8101),  # the dashboard
        ("10.0.0.1", 80),
        ("169.254.169.254", 80),
        ("::1", 8123),
    ]:
        assert policy.refusal(address, port) is not None, (address, port)
