"""Fetching and digesting pages, here or on other cores.

Parsing HTML is the crawl's main CPU cost and holds the GIL, so by default pages are fetched
and digested by worker processes (``python -m scanner.page_workers``), each with its own event
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
import gc
import itertools
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, cast

import aiohttp

from scanner import event_loop
from scanner.allocator import keep_freed_memory
from scanner.amazon_urls import AmazonTarget
from scanner.digest import PageDigest, PageDigester
from scanner.extract import PageTooDeep
from scanner.fetch import Response, attempt
from scanner.messages import skipped_page, too_slow_to_read
from scanner.net import NetworkPolicy, make_session
from scanner.settings import CrawlLimits
from scanner.urls import SiteScope

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
# Page workers run this much nicer than the crawler's process: every worker waits on that one
# process (its frontier, its politeness, its pacing of Amazon requests), so when cores are short
# it is the one to run first. Measured on the 5,000-page benchmark at load 2–7 on 2 vCPUs:
# ccbb / bare loop 0.50× and 0.53× against 0.42× and 0.27× without, 8 interleaved pairs of 9
# better (docs/benchmarks.md, scan engine).
WORKER_NICENESS = 3
# the exit status of a worker whose watchdog gave up on a page, and the id of the frame by which
# it says so before it ends (see _Watchdog)
GAVE_UP = 75
_GAVE_UP_FRAME = -1
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


class _Frames:
    """Length-prefixed frames out of a byte stream, however the pipe splits it."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        at, size = 0, len(buf)
        while size - at >= _HEADER.size:
            end = at + _HEADER.size + _HEADER.unpack_from(buf, at)[0]
            if end > size:
                break
            frames.append(bytes(buf[at + _HEADER.size : end]))
            at = end
        if at:
            del buf[:at]
        return frames


class _Outbox:
    """Frames written in one turn of the event loop leave in one write (one system call and one
    wake-up of the reader, not one each)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._data = bytearray()

    def send(self, payload: bytes) -> None:
        if not self._data:
            asyncio.get_running_loop().call_soon(self.flush)
        self._data += _HEADER.pack(len(payload))
        self._data += payload

    def flush(self) -> None:
        if self._data:
            self._write(self.take())

    def take(self) -> bytes:
        """The frames not written yet, now the caller's to write."""
        data = bytes(self._data)
        self._data.clear()
        return data


class _KnownProducts:
    """The products of each Amazon link go through a worker's pipe once: a site repeats its
    links on every page, and unpickling the same products on each page was half the cost of
    reading a result. The worker sends None for a link it sent before (:meth:`leave_out`); the
    crawler's side puts back what it kept (:meth:`fill_in`)."""

    def __init__(self) -> None:
        self._targets: dict[str, AmazonTarget] = {}

    def leave_out(self, amazon: list[tuple[str, AmazonTarget]]) -> list[tuple[str, AmazonTarget]]:
        out: list[tuple[str, AmazonTarget | None]] = []
        for href, target in amazon:
            if href in self._targets:
                out.append((href, None))
            else:
                self._targets[href] = target
                out.append((href, target))
        return cast(list[tuple[str, AmazonTarget]], out)  # None travels, fill_in() fills it

    def fill_in(self, amazon: list[tuple[str, AmazonTarget]]) -> list[tuple[str, AmazonTarget]]:
        targets = self._targets
        out = []
        for href, target in amazon:
            if target is None:  # see leave_out()
                target = targets[href]
            else:
                targets[href] = target
            out.append((href, target))
        return out


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
        self._frames = _Frames()
        self._stdin: asyncio.WriteTransport | None = None
        self.outbox = _Outbox(self._write)
        self._products = _KnownProducts()

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
            if rid == _GAVE_UP_FRAME:  # its watchdog's last word (see _Watchdog)
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
            lambda: _Worker(self), sys.executable, "-m", "scanner.page_workers",
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
        try:
            started = await asyncio.wait_for(asyncio.shield(worker.started), 30)
        except TimeoutError:
            started = False
        if not started and worker.alive and worker.transport is not None:
            log.warning("a page worker did not start")
            worker.transport.kill()  # what waits for it goes to the others (process_exited)

    async def ready(self) -> None:
        """Return once every worker has said it is ready (or was found dead)."""
        if self._ready is not None and not self._ready.done():
            await asyncio.shield(self._ready)  # one caller cancelled must not cancel the start

    async def _wait_ready(self) -> None:
        for worker in self._workers:  # each says it is ready once it has imported everything
            try:
                started = await asyncio.wait_for(asyncio.shield(worker.started), 30)
            except TimeoutError:
                started = False
            if not started:
                worker.alive = False
                log.warning("a page worker did not start; fetching pages in-process instead")

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


class _Watchdog:
    """Gives up on a page whose HTML this worker has been reading for longer than ``limit``
    seconds: lexbor's parse time explodes on some markup (nesting the depth check cannot see),
    and a parse cannot be interrupted. It lets go of the GIL, though, so this thread runs
    meanwhile: it reports the page skipped, with the frames not written yet, and ends the process
    (the crawler's side starts another worker, and sends it this worker's other pages)."""

    def __init__(
        self,
        pages: LocalPages,
        requests: dict[int, str],
        outbox: _Outbox,
        out: asyncio.WriteTransport,
        limit: float,
    ) -> None:
        self._pages = pages
        self._requests = requests  # id → URL of each page asked for and not answered yet
        self._outbox = outbox
        self._out = out
        self._limit = limit

    def start(self) -> None:
        threading.Thread(target=self._watch, name="page-watchdog", daemon=True).start()

    def _overdue(self) -> Response | None:
        reading = self._pages.reading
        if reading is None or time.monotonic() - reading[1] < self._limit:
            return None
        return reading[0]

    def _watch(self) -> None:
        tick = min(1.0, self._limit / 4)
        while True:
            time.sleep(tick)
            if self._overdue() is None:
                continue
            with self._pages.reading_lock:  # the event loop cannot finish that page meanwhile
                response = self._overdue()
                if response is not None:
                    self._give_up(response)

    def _give_up(self, response: Response) -> None:
        # the event loop's thread is inside that page's digest (or waits for the lock right
        # after it): nothing else writes to stdout until this process ends
        verdict = Response(
            response.url, status=response.status, content_type=response.content_type,
            charset=response.charset, error=skipped_page(too_slow_to_read(self._limit)),
        )  # fmt: skip
        data = bytearray(self._outbox.take())
        frames = [
            (rid, (verdict, None)) for rid, url in self._requests.items() if url == response.url
        ]
        for frame in [*frames, (_GAVE_UP_FRAME, "")]:
            payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
            data += _HEADER.pack(len(payload)) + payload
        if self._out.get_write_buffer_size() == 0:  # else a frame is half written: add none
            _write_all(sys.stdout.fileno(), bytes(data))
        os._exit(GAVE_UP)


def _write_all(fd: int, data: bytes, seconds: float = 5.0) -> None:
    """Write ``data`` to a pipe that may be non-blocking, for ``seconds`` at most."""
    view = memoryview(data)
    deadline = time.monotonic() + seconds
    while view and time.monotonic() < deadline:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 0.1)
        except OSError:
            return


class _Requests(asyncio.Protocol):
    """The worker's stdin: each frame handed to ``on_frame`` as it arrives; EOF sets ``done``."""

    def __init__(self, on_frame: Callable[[bytes], None]) -> None:
        self._frames = _Frames()
        self._on_frame = on_frame
        self.done = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        for payload in self._frames.feed(data):
            self._on_frame(payload)

    def eof_received(self) -> bool:
        self.done.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set()


class _Closing(asyncio.Protocol):
    """Tells when a write pipe has been flushed and closed."""

    def __init__(self, closed: asyncio.Future[None]) -> None:
        self._closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


async def _serve() -> None:
    """The worker process: fetch and digest each page asked for, concurrently, until EOF."""
    with contextlib.suppress(AttributeError, OSError):  # no os.nice() on Windows
        os.nice(WORKER_NICENESS)
    loop = asyncio.get_running_loop()
    # results go out through a non-blocking pipe transport: when the crawler is slow to read,
    # they wait in this process' buffer while it goes on fetching, instead of blocking it
    closed = loop.create_future()
    out, _ = await loop.connect_write_pipe(lambda: _Closing(closed), sys.stdout.buffer)
    outbox = _Outbox(out.write)
    init: asyncio.Future[bytes] = loop.create_future()  # the first frame: what to scan
    tasks: set[asyncio.Task[None]] = set()
    pages: LocalPages | None = None
    early: list[bytes] = []  # requests that came before the session was made
    sent = _KnownProducts()  # the Amazon links whose products went to the crawler already
    unanswered: dict[int, str] = {}  # id → URL of each page asked for (for the watchdog)

    async def handle(rid: int, url: str) -> None:
        result: object
        assert pages is not None
        try:
            response, digest = await pages.fetch(url)
            if digest is not None and digest.amazon:
                digest.amazon = sent.leave_out(digest.amazon)
            result = (response, digest)
        except Exception as exc:  # report it, keep serving
            result = f"{type(exc).__name__}: {exc}"
        outbox.send(pickle.dumps((rid, result), protocol=pickle.HIGHEST_PROTOCOL))
        del unanswered[rid]

    def on_frame(payload: bytes) -> None:
        if not init.done():
            init.set_result(payload)
        elif pages is None:
            early.append(payload)
        else:
            start(payload)

    def start(payload: bytes) -> None:
        rid, url = pickle.loads(payload)  # noqa: S301 (our parent)
        unanswered[rid] = url
        task = asyncio.create_task(handle(rid, url))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    _, requests = await loop.connect_read_pipe(lambda: _Requests(on_frame), sys.stdin)
    eof = asyncio.ensure_future(requests.done.wait())

    def no_more(_: object) -> None:
        if not init.done():
            init.set_result(b"")

    eof.add_done_callback(no_more)
    if not await init:  # stdin closed before anything was asked
        return
    policy, limits, key, port, prefixes = pickle.loads(init.result())  # noqa: S301 (our parent)
    async with make_session(policy) as session:
        pages = LocalPages(session, limits, SiteScope(key, port), prefixes)
        _Watchdog(pages, unanswered, outbox, out, limits.parse_timeout).start()
        # this process ends with the scan: what it holds by now (its modules) is never garbage,
        # and the collector's full passes need not walk it again and again
        gc.freeze()
        outbox.send(b"")  # ready
        for payload in early:
            start(payload)
        await eof
        if tasks:
            await asyncio.gather(*tasks)
        outbox.flush()
    out.close()  # once what is buffered is written
    await closed


if __name__ == "__main__":
    event_loop.run(_serve())
