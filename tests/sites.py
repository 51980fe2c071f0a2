"""Local web sites for crawler tests: real aiohttp servers on 127.0.0.1 with a request log.

The crawler reaches them under real host names through ``--connect-to`` style mappings
(``Site.connect("site.test")``), so nothing of aiohttp or of our code is mocked.

A site is a table of routes: ``path`` (or ``path?query``, or ``host/path`` for one host only) →
a handler ``async (request) -> response``, or a ``str`` served as an HTML page. Unknown paths
answer 404. Every request is logged before its handler runs.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = Handler | str


@dataclass(frozen=True)
class Hit:
    host: str  # the Host header, without port
    path: str  # decoded path
    query: str
    at: float  # time.monotonic() when the request arrived


@dataclass
class Site:
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)
    port: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> Site:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        tcp = web.TCPSite(self._runner, "127.0.0.1", 0)
        await tcp.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def connect(self, *hosts: str, port: int = 80) -> list[str]:
        """``--connect-to`` values sending ``host:port`` to this server."""
        return [f"{host}:{port}:127.0.0.1:{self.port}" for host in hosts]

    def url(self, path: str = "/") -> str:
        """This server's address as a literal loopback URL."""
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str | None = None, *, host: str | None = None) -> list[Hit]:
        return [
            hit
            for hit in self.log
            if (path is None or hit.path == path) and (host is None or hit.host == host)
        ]

    def paths(self) -> list[str]:
        return [hit.path for hit in self.log]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = request.host or ""
        if not host.startswith("["):
            host = host.split(":", 1)[0]
        path = request.path
        query = request.query_string
        self.log.append(Hit(host, path, query, time.monotonic()))
        with_query = f"{path}?{query}" if query else path
        for key in (f"{host}{with_query}", with_query, f"{host}{path}", path):
            route = self.routes.get(key)
            if route is not None:
                break
        else:
            return web.Response(status=404, text="not found", content_type="text/html")
        if isinstance(route, str):
            return web.Response(text=route, content_type="text/html")
        return await route(request)


class Listener:
    """A bare TCP port that counts connections and never answers: stands in for hosts that
    must never be contacted (Amazon), on any port and protocol."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Listener:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def connect(self, *hosts: str, ports: Iterable[int] = (80, 443)) -> list[str]:
        return [f"{host}:{port}:127.0.0.1:{self.port}" for host in hosts for port in ports]

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


# ---- route builders ---------------------------------------------------------------------------


def page(*hrefs: str, canonical: str | None = None, head: str = "", body: str = "") -> str:
    """An HTML page with one ``<a>`` per href (escaped as an author would write them)."""
    links = "\n".join(f'<a href="{html.escape(h)}">link {i}</a>' for i, h in enumerate(hrefs))
    if canonical is not None:
        head += f'<link rel="canonical" href="{html.escape(canonical)}">'
    return f"<!doctype html><html><head>{head}</head><body>{links}{body}</body></html>"


def redirect(location: str, status: int = 301) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handler


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=f"HTTP {code}", headers=headers)

    return handler


def text(body: str, content_type: str = "text/plain") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body, content_type=content_type)

    return handler


def raw(body: bytes, content_type: str, headers: dict[str, str] | None = None) -> Handler:
    """Bytes as they are, with a Content-Type header written verbatim (charset included)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type, **(headers or {})})

    return handler


def sequence(*handlers: Handler) -> Handler:
    """The n-th request gets the n-th handler; later ones get the last."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        chosen = handlers[min(calls, len(handlers) - 1)]
        calls += 1
        return await chosen(request)

    return handler


def urlset(*locs: str, extra: str = "") -> str:
    entries = "".join(f"<url><loc>{html.escape(loc)}</loc>{extra}</url>" for loc in locs)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
        f"{entries}</urlset>"
    )


def sitemapindex(*locs: str) -> str:
    entries = "".join(f"<sitemap><loc>{html.escape(loc)}</loc></sitemap>" for loc in locs)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}'
        "</sitemapindex>"
    )


def xml(document: str) -> Handler:
    return text(document, "application/xml")


def gzipped_xml(document: str) -> Handler:
    return raw(gzip.compress(document.encode()), "application/x-gzip")
