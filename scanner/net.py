"""The crawler's HTTP client: one aiohttp session whose every connection is checked against SSRF.

One pure decision, :func:`address_refusal` (and :func:`is_address_allowed`), judges an IP
address: loopback, private, link-local, multicast, reserved and other non-global addresses are
refused unless the operator allows private networks; an IPv6 address that carries an IPv4
address (IPv4-mapped or -compatible, NAT64, 6to4, Teredo) is judged by the IPv4 address inside.

It is applied where the connection is made, to the address actually connected to, whatever
spelling led there: :class:`GuardedResolver` filters what a host name resolves to, and the
connector's socket factory refuses, just before ``connect()``, any address the policy does not
allow — including IP literals, which aiohttp connects to without asking the resolver (after
yarl's IDNA normalisation has turned ``１２７.０.０.１`` or ``①②⑦.0.0.1`` into ``127.0.0.1``).
Every request, hence every redirect hop, goes through that socket factory.

curl-style ``--connect-to HOST:PORT:HOST2:PORT2`` mappings (how tests and the demo reach local
servers under real host names) are the one exception: the operator named those targets, so the
address and port a mapping leads to are allowed, and nothing else private is.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from scanner.messages import refused_for_safety

USER_AGENT = "Mozilla/5.0 (compatible; AffiliateLink/1.0; +https://clickclickbankbank.com/bot)"
ROBOTS_AGENT = "AffiliateLink"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_LEGACY_NUMERIC = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$", re.I)


class BlockedAddress(OSError):
    """A URL leads only to addresses a SaaS crawler must not connect to."""


class BadConnectTo(ValueError):
    pass


def parse_connect_to(values: Iterable[str]) -> dict[tuple[str, int], tuple[str, int]]:
    """``["demo.example:80:127.0.0.1:8080"]`` → ``{("demo.example", 80): ("127.0.0.1", 8080)}``."""
    mapping: dict[tuple[str, int], tuple[str, int]] = {}
    for value in values:
        parts = value.rsplit(":", 3) if "[" not in value else _split_v6(value)
        if len(parts) != 4 or not parts[0] or not parts[2]:
            raise BadConnectTo(
                f"--connect-to {value!r}: write it as HOST:PORT:HOST2:PORT2, "
                "e.g. amzn.to:443:127.0.0.1:8443"
            )
        host, port, host2, port2 = parts
        try:
            ports = int(port), int(port2)
        except ValueError as exc:
            raise BadConnectTo(
                f"--connect-to {value!r}: the ports must be numbers from 1 to 65535"
            ) from exc
        if not all(0 < p < 65536 for p in ports):
            raise BadConnectTo(f"--connect-to {value!r}: the ports must be numbers from 1 to 65535")
        mapping[(host.lower(), ports[0])] = (host2.strip("[]"), ports[1])
    return mapping


def _split_v6(value: str) -> list[str]:
    out, buf, depth = [], "", 0
    for ch in value:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == ":" and depth == 0:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    out.append(buf)
    return out


def parse_ip(address: str) -> IPAddress | None:
    """``"::1"``, ``"[::1]"``, ``"fe80::1%eth0"`` → the address (None when it is not one)."""
    try:
        return ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, where packets to it end up: IPv4-mapped
    (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``), 6to4
    (``2002:AABB:CCDD::/48``) and Teredo (``2001::/32``, the client's address)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    value = int(ip)
    if any(ip in net for net in _NAT64) or (value >> 32 == 0 and value > 1):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def _category(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # also the shared space 100.64/10 (cloud metadata, carrier NAT)
        return "not publicly routable"
    return None


def address_refusal(address: str | IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a SaaS crawler must not connect to ``address`` (``"loopback"``, ``"private"``, …;
    ``"private (6to4 of 10.0.0.1)"``), or None when it may. The one decision of the SSRF guard:
    pure, for any spelling :func:`parse_ip` reads. ``allow_private`` lets everything through."""
    ip = address if not isinstance(address, str) else parse_ip(address)
    if ip is None:
        return "not an IP address"
    if allow_private:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            reason = _category(inner)
            if ip.teredo is not None and reason is None:
                reason = _category(ip.teredo[0])  # the Teredo server relays the packets
            return f"{reason} (IPv4 {inner} inside {ip})" if reason else None
    return _category(ip)


def is_address_allowed(address: str | IPAddress, allow_private: bool = False) -> bool:
    """May the crawler connect to ``address``? See :func:`address_refusal`."""
    return address_refusal(address, allow_private=allow_private) is None


def is_public(address: str) -> bool:
    """Can a SaaS crawler connect to this address without reaching someone's private network?"""
    return is_address_allowed(address, allow_private=False)


@functools.lru_cache(maxsize=4096)
def literal_ip(host: str) -> str | None:
    """The IP address an IP-literal host names, in whatever spelling the URL had: after yarl's
    IDNA normalisation (full-width digits, ideographic dots, circled digits) and the legacy
    numeric forms the system resolver reads (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
    ``127.1``). None for a host name."""
    with contextlib.suppress(ValueError, UnicodeError):
        host = yarl.URL.build(scheme="http", host=host.strip("[]")).host or host
    ip = parse_ip(host)
    if ip is None and _LEGACY_NUMERIC.match(host.rstrip(".")):
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None if ip is None else str(ip)


@dataclass(frozen=True)
class NetworkPolicy:
    allow_private: bool = False
    connect_to: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    @functools.cached_property
    def mapped_targets(self) -> frozenset[tuple[str, int]]:
        """The (address, port) pairs the operator's mappings lead to: allowed even if private."""
        return frozenset(
            (ip, port)
            for host, port in self.connect_to.values()
            if (ip := literal_ip(host)) is not None
        )

    def refusal(self, address: str, port: int | None = None) -> str | None:
        """Why the policy refuses a connection to ``address`` (port ``port``), or None."""
        ip = literal_ip(address)
        if ip is None:
            return "not an IP address"
        if port is not None and (ip, port) in self.mapped_targets:
            return None
        return address_refusal(ip, allow_private=self.allow_private)

    def check_literal(self, host: str, port: int | None = None) -> None:
        """Raise :class:`BlockedAddress` for an IP-literal host that the policy refuses."""
        ip = literal_ip(host)
        if ip is not None and (reason := self.refusal(ip, port)) is not None:
            raise BlockedAddress(refusal(host, [ip], reason))


refusal = refused_for_safety


class GuardedResolver(AbstractResolver):
    """Applies the mappings, then keeps only the addresses the policy allows. The operator's
    mapped targets are remembered as allowed for the socket factory."""

    def __init__(self, policy: NetworkPolicy, mapped: set[tuple[str, int]]) -> None:
        self._policy = policy
        self._mapped = mapped
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        mapping = self._policy.connect_to.get((host.lower().rstrip("."), port))
        target_host, target_port = mapping or (host, port)
        ip = literal_ip(target_host)
        if ip is not None:
            infos: list[ResolveResult] = [
                {
                    "hostname": host,
                    "host": ip,
                    "port": target_port,
                    "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]
        else:
            infos = await self._inner.resolve(target_host, target_port, family)
            for info in infos:
                info["hostname"] = host
        if mapping is not None:
            self._mapped.update((info["host"], info["port"]) for info in infos)
            return infos
        allowed = [
            info
            for info in infos
            if (info["host"], info["port"]) in self._mapped
            or self._policy.refusal(info["host"], info["port"]) is None
        ]
        if not allowed:
            first = infos[0]["host"] if infos else ""
            raise BlockedAddress(
                refusal(host, [info["host"] for info in infos], self._policy.refusal(first))
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class ConnectGuard:
    """The socket factory of the crawler's connector: the last check, on the address a socket
    is about to connect to, whatever led there (a name, a literal, a redirect)."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.mapped: set[tuple[str, int]] = set(policy.mapped_targets)

    def __call__(self, addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address, port = str(sockaddr[0]), int(sockaddr[1])
        if (address, port) not in self.mapped:
            reason = address_refusal(address, allow_private=self.policy.allow_private)
            if reason is not None:
                raise BlockedAddress(refusal(address, [address], reason))
        return socket.socket(family=family, type=type_, proto=proto)


def make_session(
    policy: NetworkPolicy, *, limit: int = 100, **kwargs: Any
) -> aiohttp.ClientSession:
    """The one crawler session of a process. Not following redirects is up to each request."""
    guard = ConnectGuard(policy)
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, guard.mapped),
        socket_factory=guard,
        limit=limit,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        trust_env=False,
        auto_decompress=True,
        **kwargs,
    )
