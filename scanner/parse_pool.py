"""Page digestion on other cores.

Parsing HTML is the crawl's main CPU cost and holds the GIL, so pages are digested by worker
processes (``python -m scanner.parse_pool``) fed through their stdin/stdout with length-prefixed
pickle frames, while the crawler's own process keeps every network decision (politeness,
robots, retries). Each worker answers its requests in order. A worker that dies is replaced by
digesting in-process: the scan goes on, slower.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import pickle
import struct
import sys
from typing import BinaryIO, Protocol

from scanner.digest import PageDigest, PageDigester
from scanner.urls import SiteScope

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")


class Digester(Protocol):
    async def digest(self, body: bytes, url: str, charset: str | None) -> PageDigest: ...


class InlineDigester:
    """Digests in the crawler's own process."""

    def __init__(self, scope: SiteScope, cloak_prefixes: tuple[str, ...]) -> None:
        self._digester = PageDigester(scope, cloak_prefixes)

    async def digest(self, body: bytes, url: str, charset: str | None) -> PageDigest:
        return self._digester.digest(body, url, charset)

    async def __aenter__(self) -> InlineDigester:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pending: collections.deque[asyncio.Future[PageDigest]] = collections.deque()
        self.reader: asyncio.Task[None] | None = None
        self.alive = True


class ParsePool:
    """``workers`` digesting processes. Use ``async with``."""

    def __init__(self, workers: int, scope: SiteScope, cloak_prefixes: tuple[str, ...]) -> None:
        self._size = workers
        self._init = pickle.dumps((scope.key, scope.port, cloak_prefixes))
        self._fallback = PageDigester(scope, cloak_prefixes)
        self._workers: list[_Worker] = []
        self._closing = False

    async def __aenter__(self) -> ParsePool:
        for _ in range(self._size):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scanner.parse_pool",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdin is not None
            proc.stdin.write(_HEADER.pack(len(self._init)) + self._init)
            self._workers.append(_Worker(proc))
        for worker in self._workers:  # each answers its init once it has imported everything
            stdout = worker.proc.stdout
            assert stdout is not None
            try:
                await asyncio.wait_for(stdout.readexactly(_HEADER.size), 30)
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                worker.alive = False
                log.warning("a parse worker did not start; digesting pages in-process instead")
                continue
            worker.reader = asyncio.create_task(self._read(worker))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
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

    async def digest(self, body: bytes, url: str, charset: str | None) -> PageDigest:
        live = [w for w in self._workers if w.alive]
        if not live:
            return self._fallback.digest(body, url, charset)
        worker = min(live, key=lambda w: len(w.pending))
        future: asyncio.Future[PageDigest] = asyncio.get_running_loop().create_future()
        frame = pickle.dumps((body, url, charset), protocol=pickle.HIGHEST_PROTOCOL)
        stdin = worker.proc.stdin
        assert stdin is not None
        worker.pending.append(future)
        try:
            stdin.write(_HEADER.pack(len(frame)) + frame)
            await stdin.drain()
            return await future
        except (ConnectionError, _WorkerGone):
            worker.alive = False
            if future in worker.pending:
                worker.pending.remove(future)
            return self._fallback.digest(body, url, charset)

    async def _read(self, worker: _Worker) -> None:
        stdout = worker.proc.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(_HEADER.size)
                payload = await stdout.readexactly(_HEADER.unpack(header)[0])
                result = pickle.loads(payload)  # noqa: S301 (our own child process)
                future = worker.pending.popleft()
                if future.done():
                    continue
                if isinstance(result, PageDigest):
                    future.set_result(result)
                else:
                    future.set_exception(RuntimeError(str(result)))
        except (asyncio.IncompleteReadError, ConnectionError):
            worker.alive = False
            if not self._closing:
                log.warning("a parse worker stopped; digesting pages in-process from now on")
            while worker.pending:
                future = worker.pending.popleft()
                if not future.done():
                    future.set_exception(_WorkerGone())


class _WorkerGone(Exception):
    pass


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    return stream.read(size)


def worker_main() -> int:
    """The worker process: digest every page the crawler sends, in order, until stdin closes."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    init = _read_frame(inp)
    if init is None:
        return 0
    key, port, prefixes = pickle.loads(init)  # noqa: S301 (our parent process)
    digester = PageDigester(SiteScope(key, port), prefixes)
    out.write(_HEADER.pack(0))  # ready
    out.flush()
    while (frame := _read_frame(inp)) is not None:
        body, url, charset = pickle.loads(frame)  # noqa: S301
        result: object
        try:
            result = digester.digest(body, url, charset)
        except Exception as exc:  # report it, keep serving
            result = f"{type(exc).__name__}: {exc}"
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(payload)) + payload)
        out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
