"""Fetching and digesting pages, here or on other cores.

Parsing HTML is the crawl's main CPU cost and holds the GIL, so by default pages are fetched
and digested by worker processes (``python -m scanner.page_worker``), each with its own event
loop and SSRF-guarded session, fed through stdin/stdout with length-prefixed pickle frames. They
make single attempts: the crawler's process keeps every decision of politeness (per-host
concurrency, Crawl-delay, Retry-After pauses, retries), robots.txt and the frontier, so the
site sees the same traffic whatever the number of workers. A worker that dies is replaced by
another (its pages go to the others meanwhile); when none can run, pages are fetched
in-process: the scan goes on, slower. A watchdog thread in each worker gives up on a page whose
HTML takes longer than ``CrawlLimits.parse_timeout`` to read (the parser cannot be interrupted,
but it lets go of the GIL): it reports the page skipped and ends the worker, which is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import subprocess
import sys
import threading
import time
from typing import Protocol, cast

import aiohttp

from scanner.allocator import keep_freed_memory
from scanner.digest import PageDigest, PageDigester
from scanner.extract import PageTooDeep
from scanner.fetch import Response, attempt
from scanner.messages import skipped_page
from scanner.net import NetworkPolicy
from scanner.page_pipe import GAVE_UP_FRAME, Frames, KnownProducts, Outbox
from scanner.settings import CrawlLimits
from scanner.urls import SiteScope

log = logging.getLogger(__name__)

# Page workers run this much nicer than the crawler's process: every worker waits on that one
# process (its frontier, its politeness, its pacing of Amazon requests), so when cores are short
# it is the one to run first. Measured on the 5,000-page benchmark at load 2–7 on 2 vCPUs:
# ccbb / bare loop 0.50× and 0.53× against 0.42× and 0.27× without, 8 interleaved pairs of 9
# better (docs/benchmarks.md, scan engine).
WORKER_NICENESS = 3
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
        # the page being digested and since when (a page worker's watchdog reads it); cleared
        # under the lock, which the watchdog holds while it gives up on that page
        self.reading: tuple[Response, float] | None = None
        self.reading_lock = threading.Lock()

    async def fetch(self, url: str) -> PageResult:
        response = await attempt(self._session, url, "html", self._limits)
        digest = None
        if response.body is not None and response.is_html:
            # this process parses pages (a page worker, or a crawler without workers, never
            # the long-lived job worker merely holding this as its fallback): scanner.allocator
            keep_freed_memory()
            self.reading = (response, time.monotonic())
            try:
                digest = self._digester.digest(response.body, url, response.charset)
            except PageTooDeep as exc:
                response.error = skipped_page(str(exc))
            finally:
                with self.reading_lock:
                    self.reading = None
        response.body = None
        return response, digest

    async def ready(self) -> None:
        return None

    async def __aenter__(self) -> LocalPages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Worker(asyncio.SubprocessProtocol):
    """One page worker process, as its pipes see it: requests out through stdin, each result
    frame read from stdout straight into the future waiting for it."""

    def __init__(self, owner: PageWorkers) -> None:
        loop = asyncio.get_running_loop()
        self.owner = owner
        self.transport: asyncio.SubprocessTransport | None = None
        self.pid = 0
        self.pending: dict[int, asyncio.Future[PageResult]] = {}
        self.alive = True
        self.gave_up = False  # its watchdog gave up on a page, and it ends
        self.started: asyncio.Future[bool] = loop.create_future()  # True: it said it is ready
        self.exited: asyncio.Future[None] = loop.create_future()
        self._frames = Frames()
        self._stdin: asyncio.WriteTransport | None = None
        self.outbox = Outbox(self._write)
        self._products = KnownProducts()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a subprocess transport and its stdin pipe (uvloop's do not derive from asyncio's)
        self.transport = cast(asyncio.SubprocessTransport, transport)
        self.pid = self.transport.get_pid()
        self._stdin = cast(asyncio.WriteTransport, self.transport.get_pipe_transport(0))

    def _write(self, data: bytes) -> None:
        if self.alive and self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(data)

    def close_stdin(self) -> None:
        self.outbox.flush()
        if self._stdin is not None:
            self._stdin.close()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        for payload in self._frames.feed(data):
            if not self.started.done():  # its first frame (empty) says it is ready
                self.started.set_result(True)
                continue
            rid, result = pickle.loads(payload)  # noqa: S301 (our own child process)
            if rid == GAVE_UP_FRAME:  # its watchdog's last word (scanner.page_worker)
                self.gave_up = True
                continue
            if not isinstance(result, str) and result[1] is not None and result[1].amazon:
                result[1].amazon = self._products.fill_in(result[1].amazon)
            future = self.pending.pop(rid, None)
            if future is None or future.done():
                continue
            if isinstance(result, str):
                future.set_exception(RuntimeError(result))
            else:
                future.set_result(result)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._gone()

    def process_exited(self) -> None:
        self._gone()
        if not self.exited.done():
            self.exited.set_result(None)

    def _gone(self) -> None:
        if not self.started.done():
            self.started.set_result(False)
        if not self.alive:
            return
        self.alive = False
        if not self.owner.closing:
            log.warning("a page worker stopped; its pages go to the others")
            self.owner.replace(self)  # before what waits for it looks for another worker
        for future in self.pending.values():
            if not future.done():
                future.set_exception(_WorkerGone())
        self.pending.clear()


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
        self.closing = False
        self._ready: asyncio.Future[None] | None = None
        self.peak_rss_mb = 0.0
        self._parse_timeout = limits.parse_timeout
        self._restarts_left = count  # for workers that died otherwise than by giving up a page
        self._starting: set[asyncio.Task[None]] = set()  # replacements being started
        self._spawns: set[asyncio.Task[_Worker]] = set()  # their processes being made

    async def __aenter__(self) -> PageWorkers:
        """Start the workers and return at once: they import their modules meanwhile (the scan
        checks the Amazon credentials); :meth:`ready`, or the first :meth:`fetch`, waits."""
        for _ in range(self._count):
            await self._spawn()
        self._ready = asyncio.ensure_future(self._wait_ready())
        return self

    async def _spawn(self) -> _Worker:
        loop = asyncio.get_running_loop()
        _, worker = await loop.subprocess_exec(
            lambda: _Worker(self), sys.executable, "-m", "scanner.page_worker",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
        )  # fmt: skip
        worker.outbox.send(self._init)  # pages asked for before it is ready wait in its pipe
        self._workers.append(worker)
        return worker

    def replace(self, worker: _Worker) -> None:
        """Start another worker in place of one that exited: always after its watchdog gave up
        on a page, up to ``count`` times for any other death, never for one that did not start
        (it would not start again)."""
        if self.closing:
            return
        if worker.gave_up:
            log.warning(
                "a page worker gave up on a page whose HTML took over %g s to read; "
                "starting another",
                self._parse_timeout,
            )
        elif self._restarts_left > 0 and worker.started.done() and worker.started.result():
            self._restarts_left -= 1
            log.warning("starting another page worker")
        else:
            return
        spawn = asyncio.ensure_future(self._spawn())  # fetch() and __aexit__ wait for it
        self._spawns.add(spawn)
        spawn.add_done_callback(self._spawns.discard)
        check = asyncio.ensure_future(self._check_start(spawn))
        self._starting.add(check)
        check.add_done_callback(self._starting.discard)

    async def _check_start(self, spawn: asyncio.Task[_Worker]) -> None:
        worker = await asyncio.shield(spawn)
        if not await _started(worker) and worker.alive and worker.transport is not None:
            log.warning("a page worker did not start")
            worker.transport.kill()  # what waits for it goes to the others (process_exited)

    async def ready(self) -> None:
        """Return once every worker has said it is ready (or was found dead)."""
        if self._ready is not None and not self._ready.done():
            await asyncio.shield(self._ready)  # one caller cancelled must not cancel the start

    async def _wait_ready(self) -> None:
        for worker in self._workers:  # each says it is ready once it has imported everything
            if not await _started(worker):
                worker.alive = False
                log.warning("a page worker did not start; others, or this process, take its pages")

    async def __aexit__(self, *exc: object) -> None:
        self.closing = True
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready
        for task in list(self._starting):  # a replacement starting: it is closed below
            task.cancel()
        await asyncio.gather(*self._starting, *self._spawns, return_exceptions=True)
        for worker in self._workers:  # read before they exit: the largest worker's peak memory
            self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb(worker.pid))
        for worker in self._workers:
            worker.close_stdin()
        for worker in self._workers:
            assert worker.transport is not None
            try:
                await asyncio.wait_for(asyncio.shield(worker.exited), 5)
            except TimeoutError:
                worker.transport.kill()
                await worker.exited
            worker.transport.close()
        self._workers.clear()

    async def fetch(self, url: str) -> PageResult:
        await self.ready()
        for _ in range(3):  # a worker that dies with the page: another one takes it
            live = [w for w in self._workers if w.alive]
            if not live and self._spawns:  # one is being started in place of one that stopped
                await asyncio.wait(set(self._spawns))
                live = [w for w in self._workers if w.alive]
            if not live:
                break
            worker = min(live, key=lambda w: len(w.pending))
            rid = next(self._ids)
            future: asyncio.Future[PageResult] = asyncio.get_running_loop().create_future()
            worker.pending[rid] = future
            worker.outbox.send(pickle.dumps((rid, url)))
            try:
                return await future
            except _WorkerGone:
                continue
        return await self._fallback.fetch(url)


class _WorkerGone(Exception):
    pass


async def _started(worker: _Worker, seconds: float = 30) -> bool:
    """Did ``worker`` say it is ready within ``seconds`` (False: it died or stayed silent)?"""
    try:
        return await asyncio.wait_for(asyncio.shield(worker.started), seconds)
    except TimeoutError:
        return False


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
