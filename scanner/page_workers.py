"""Fetching and digesting pages, here or on other cores.

Parsing HTML is the crawl's main CPU cost and holds the GIL, so by default pages are fetched
and digested by worker processes (``python -m scanner.page_workers``), each with its own event
loop and SSRF-guarded session, fed through stdin/stdout with length-prefixed pickle frames. They
make single attempts: the crawler's process keeps every decision of politeness (per-host
concurrency, Crawl-delay, Retry-After pauses, retries), robots.txt and the frontier, so the
site sees the same traffic whatever the number of workers. A worker that dies is replaced by
fetching in-process: the scan goes on, slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import struct
import sys
from typing import Protocol

import aiohttp

from scanner.digest import PageDigest, PageDigester
from scanner.extract import PageTooDeep
from scanner.fetch import Response, attempt
from scanner.messages import skipped_page
from scanner.net import NetworkPolicy, make_session
from scanner.settings import CrawlLimits
from scanner.urls import SiteScope

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
PageResult = tuple[Response, PageDigest | None]


class Pages(Protocol):
    async def fetch(self, url: str) -> PageResult:
        """One GET of a page and, when it is HTML, its digest (the body itself is dropped)."""


class LocalPages:
    """Fetches and digests in this process."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        limits: CrawlLimits,
        scope: SiteScope,
        cloak_prefixes: tuple[str, ...],
    ) -> None:
        self._session = session
        self._limits = limits
        self._digester = PageDigester(scope, cloak_prefixes)

    async def fetch(self, url: str) -> PageResult:
        response = await attempt(self._session, url, "html", self._limits)
        digest = None
        if response.body is not None and response.is_html:
            try:
                digest = self._digester.digest(response.body, url, response.charset)
            except PageTooDeep as exc:
                response.error = skipped_page(str(exc))
        response.body = None
        return response, digest

    async def ready(self) -> None:
        return None

    async def __aenter__(self) -> LocalPages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pending: dict[int, asyncio.Future[PageResult]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.alive = True


class PageWorkers:
    """``count`` worker processes fetching and digesting pages. Use ``async with``."""

    def __init__(
        self,
        count: int,
        session: aiohttp.ClientSession,
        policy: NetworkPolicy,
        limits: CrawlLimits,
        scope: SiteScope,
        cloak_prefixes: tuple[str, ...],
    ) -> None:
        self._count = count
        self._init = pickle.dumps((policy, limits, scope.key, scope.port, cloak_prefixes))
        self._fallback = LocalPages(session, limits, scope, cloak_prefixes)
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._closing = False
        self._ready: asyncio.Future[None] | None = None
        self.peak_rss_mb = 0.0

    async def __aenter__(self) -> PageWorkers:
        """Start the workers and return at once: they import their modules meanwhile (the scan
        checks the Amazon credentials); :meth:`ready`, or the first :meth:`fetch`, waits."""
        for _ in range(self._count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scanner.page_workers",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdin is not None
            proc.stdin.write(_HEADER.pack(len(self._init)) + self._init)
            self._workers.append(_Worker(proc))
        self._ready = asyncio.ensure_future(self._wait_ready())
        return self

    async def ready(self) -> None:
        """Return once every worker has said it is ready (or was found dead)."""
        if self._ready is not None and not self._ready.done():
            await asyncio.shield(self._ready)  # one caller cancelled must not cancel the start

    async def _wait_ready(self) -> None:
        for worker in self._workers:  # each says it is ready once it has imported everything
            stdout = worker.proc.stdout
            assert stdout is not None
            try:
                await asyncio.wait_for(stdout.readexactly(_HEADER.size), 30)
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                worker.alive = False
                log.warning("a page worker did not start; fetching pages in-process instead")
                continue
            worker.reader = asyncio.create_task(self._read(worker))

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready
        for worker in self._workers:  # read before they exit: the largest worker's peak memory
            self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb(worker.proc.pid))
        for worker in self._workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), 5)
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()
            if worker.reader is not None:
                worker.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader
        self._workers.clear()

    async def fetch(self, url: str) -> PageResult:
        await self.ready()
        live = [w for w in self._workers if w.alive]
        if not live:
            return await self._fallback.fetch(url)
        worker = min(live, key=lambda w: len(w.pending))
        rid = next(self._ids)
        future: asyncio.Future[PageResult] = asyncio.get_running_loop().create_future()
        worker.pending[rid] = future
        frame = pickle.dumps((rid, url))
        stdin = worker.proc.stdin
        assert stdin is not None
        try:
            stdin.write(_HEADER.pack(len(frame)) + frame)
            await stdin.drain()
            return await future
        except (ConnectionError, _WorkerGone):
            worker.alive = False
            worker.pending.pop(rid, None)
            return await self._fallback.fetch(url)

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.proc.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(_HEADER.size)
                payload = await stdout.readexactly(_HEADER.unpack(header)[0])
                rid, result = pickle.loads(payload)  # noqa: S301 (our own child process)
                future = worker.pending.pop(rid, None)
                if future is None or future.done():
                    continue
                if isinstance(result, str):
                    future.set_exception(RuntimeError(result))
                else:
                    future.set_result(result)
        except (asyncio.IncompleteReadError, ConnectionError):
            worker.alive = False
            if not self._closing:
                log.warning("a page worker stopped; fetching pages in-process from now on")
            for future in worker.pending.values():
                if not future.done():
                    future.set_exception(_WorkerGone())
            worker.pending.clear()


class _WorkerGone(Exception):
    pass


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process in MB (Linux ``VmHWM``; 0 where unknown). Unlike
    ``ru_maxrss``, it does not count what the parent held when it forked the process."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


async def _serve() -> None:
    """The worker process: fetch and digest each page asked for, concurrently, until EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    async def frame() -> bytes | None:
        try:
            header = await reader.readexactly(_HEADER.size)
            return await reader.readexactly(_HEADER.unpack(header)[0])
        except asyncio.IncompleteReadError:
            return None

    flush_pending = False

    def flush() -> None:
        nonlocal flush_pending
        flush_pending = False
        out.flush()

    def send(payload: bytes) -> None:
        # results finished in one turn of the event loop leave in one write, not one each
        nonlocal flush_pending
        out.write(_HEADER.pack(len(payload)) + payload)
        if not flush_pending:
            flush_pending = True
            loop.call_soon(flush)

    init = await frame()
    if init is None:
        return
    policy, limits, key, port, prefixes = pickle.loads(init)  # noqa: S301 (our parent)
    async with make_session(policy) as session:
        pages = LocalPages(session, limits, SiteScope(key, port), prefixes)
        send(b"")  # ready
        tasks: set[asyncio.Task[None]] = set()

        async def handle(rid: int, url: str) -> None:
            result: object
            try:
                result = await pages.fetch(url)
            except Exception as exc:  # report it, keep serving
                result = f"{type(exc).__name__}: {exc}"
            send(pickle.dumps((rid, result), protocol=pickle.HIGHEST_PROTOCOL))

        while (request := await frame()) is not None:
            rid, url = pickle.loads(request)  # noqa: S301
            task = asyncio.create_task(handle(rid, url))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        out.flush()


if __name__ == "__main__":
    asyncio.run(_serve())
