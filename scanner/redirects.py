"""Short (``amzn.to``) and cloaked (``site/go/…``) links: where do they lead?

Each hop is requested without following redirects, so Amazon itself is never requested: the
chain stops at the first Amazon URL. A hop may be an HTTP redirect or an HTML page that sends on
at once (``<meta http-equiv="refresh" content="0; url=…">``, ``location.replace(…)``), as static
sites (GitHub Pages, Hugo aliases, jekyll-redirect-from) cloak their links. Results of short
links never change and can be cached across scans (the cache is an interface; issue "persistent
scans" backs it with Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from scanner.amazon_urls import AmazonTarget, host_of, is_amazon_host, parse_amazon_url
from scanner.digest import page_redirect
from scanner.fetch import Fetcher


@dataclass(frozen=True, slots=True)
class Resolution:
    final_url: str | None  # the Amazon URL the chain ends at
    target: AmazonTarget | None  # the products it leads to (None: not an Amazon product)
    error: str | None = None


class LinkCache(Protocol):
    async def get(self, url: str) -> str | None: ...
    async def put(self, url: str, final_url: str) -> None: ...


class MemoryLinkCache:
    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    async def get(self, url: str) -> str | None:
        return self._data.get(url)

    async def put(self, url: str, final_url: str) -> None:
        self._data[url] = final_url


class RedirectResolver:
    """Resolves each distinct URL once per scan, however many pages carry it."""

    def __init__(self, fetcher: Fetcher, cache: LinkCache, max_hops: int = 5) -> None:
        self._fetcher = fetcher
        self._cache = cache
        self._max_hops = max_hops
        self._tasks: dict[str, asyncio.Task[Resolution]] = {}

    def start(
        self, url: str, *, cacheable: bool, on_target: Callable[[AmazonTarget], None]
    ) -> None:
        """Resolve ``url`` in the background; ``on_target`` hears of the products it leads to."""
        if url in self._tasks:
            return
        task = self._tasks[url] = asyncio.create_task(self._resolve(url, cacheable))

        def done(task: asyncio.Task[Resolution]) -> None:
            if not task.cancelled() and task.exception() is None:
                target = task.result().target
                if target is not None:
                    on_target(target)

        task.add_done_callback(done)

    async def results(self) -> dict[str, Resolution]:
        if self._tasks:
            await asyncio.gather(*self._tasks.values())
        return {url: task.result() for url, task in self._tasks.items()}

    def finished(self) -> dict[str, Resolution]:
        """The resolutions done so far."""
        return {
            url: task.result()
            for url, task in self._tasks.items()
            if task.done() and not task.cancelled() and task.exception() is None
        }

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    async def _resolve(self, url: str, cacheable: bool) -> Resolution:
        if cacheable and (final := await self._cache.get(url)) is not None:
            return Resolution(final, parse_amazon_url(final))
        result = await self.follow(url)
        if cacheable and result.target is not None and result.final_url is not None:
            await self._cache.put(url, result.final_url)
        return result

    async def follow(self, url: str) -> Resolution:
        current = url
        for hop in range(self._max_hops + 1):
            target = parse_amazon_url(current)
            if target is not None:
                return Resolution(current, target)
            if is_amazon_host(host_of(current)):
                return Resolution(current, None, "leads to an Amazon page that is not a product")
            if hop == self._max_hops:
                break
            response = await self._fetcher.get(current, accept="html")
            if response.is_redirect and response.location:
                current = response.location
                continue
            if response.body is not None and response.is_html:
                # a static site's redirect page: <meta http-equiv="refresh" content="0; url=…">
                refresh = page_redirect(response.body, current, response.charset)
                if refresh is not None:
                    current = refresh
                    continue
            if response.error and response.status is None:
                return Resolution(None, None, response.error)
            return Resolution(None, None, f"does not redirect to Amazon (HTTP {response.status})")
        return Resolution(None, None, f"more than {self._max_hops} redirects")
