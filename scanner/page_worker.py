"""A page worker: the process ``scanner.page_workers`` starts (``python -m scanner.page_worker``)
to fetch and digest pages on another core. It reads what to scan, then page requests, from
stdin, and writes each page's result to stdout (``scanner.page_pipe``); it ends at EOF. A
watchdog thread gives up on a page whose HTML takes longer than ``CrawlLimits.parse_timeout``
to read (see :class:`_Watchdog`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import select
import sys
import threading
import time
from collections.abc import Callable

from scanner import event_loop
from scanner.fetch import Response
from scanner.messages import skipped_page, too_slow_to_read
from scanner.net import make_session
from scanner.page_pipe import GAVE_UP, GAVE_UP_FRAME, Frames, KnownProducts, Outbox
from scanner.page_workers import WORKER_NICENESS, LocalPages
from scanner.urls import SiteScope


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
        outbox: Outbox,
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
        frames = [
            (rid, (verdict, None)) for rid, url in self._requests.items() if url == response.url
        ]
        for frame in [*frames, (GAVE_UP_FRAME, "")]:
            self._outbox.add(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
        if self._out.get_write_buffer_size() == 0:  # else a frame is half written: add none
            _write_all(sys.stdout.fileno(), self._outbox.take())
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
        self._frames = Frames()
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
    outbox = Outbox(out.write)
    init: asyncio.Future[bytes] = loop.create_future()  # the first frame: what to scan
    tasks: set[asyncio.Task[None]] = set()
    pages: LocalPages | None = None
    early: list[bytes] = []  # requests that came before the session was made
    sent = KnownProducts()  # the Amazon links whose products went to the crawler already
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
