"""The crawler's HTTP client: one aiohttp session whose every connection is checked against SSRF.

Every host name is resolved by :class:`GuardedResolver`, which refuses loopback, private,
link-local, multicast and reserved addresses unless the operator allows private networks, and
which applies curl-style ``--connect-to HOST:PORT:HOST2:PORT2`` mappings (how tests and the demo
reach local servers under real host names).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

USER_AGENT = "Mozilla/5.0 (compatible; AffiliateLink/1.0; +https://clickclickbankbank.com/bot)"
ROBOTS_AGENT = "AffiliateLink"


class BlockedAddress(OSError):
    """A URL resolves only to addresses a SaaS crawler must not connect to."""


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


def is_public(address: str) -> bool:
    """Can a SaaS crawler connect to this address without reaching someone's private network?"""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        not ip.is_global  # also the shared space 100.64/10 (cloud metadata, carrier NAT)
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


@functools.lru_cache(maxsize=4096)
def literal_ip(host: str) -> str | None:
    """The IP address an IP-literal host names (None for a host name)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


@dataclass(frozen=True)
class NetworkPolicy:
    allow_private: bool = False
    connect_to: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    def check_literal(self, host: str) -> None:
        """Raise :class:`BlockedAddress` for an IP-literal host that the policy refuses."""
        ip = literal_ip(host)
        if ip is not None and not self.allow_private and not is_public(ip):
            raise BlockedAddress(refusal(host, [ip]))


def refusal(host: str, addresses: list[str]) -> str:
    shown = ", ".join(addresses[:3])
    return (
        f"refused to connect to {host} ({shown}): private, loopback or reserved addresses "
        "are not crawled"
    )


class GuardedResolver(AbstractResolver):
    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target_host, target_port = self._policy.connect_to.get((host.lower(), port), (host, port))
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
        if self._policy.allow_private:
            return infos
        allowed = [info for info in infos if is_public(info["host"])]
        if not allowed:
            raise BlockedAddress(refusal(host, [info["host"] for info in infos]))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def make_session(
    policy: NetworkPolicy, *, limit: int = 100, **kwargs: Any
) -> aiohttp.ClientSession:
    """The one crawler session of a process. Not following redirects is up to each request."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy),
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
