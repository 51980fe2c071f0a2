"""The sandbox Creators API served from a background thread (its own event loop), for tests
whose client is synchronous (Starlette's TestClient)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

from ccbb.sandbox.amazon_api import Catalogue, RunningSandbox, running_sandbox

T = TypeVar("T")


@contextmanager
def serve_in_thread(
    serving: Callable[[], AbstractAsyncContextManager[T]], what: str
) -> Iterator[T]:
    """``serving()`` (an async context manager yielding a running server) entered on an event
    loop of its own in a daemon thread; left when the ``with`` ends."""
    ready: list[T] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with serving() as server:
                ready.append(server)
                started.set()
                await stop.wait()
        finally:
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10) or not ready:
        raise RuntimeError(f"{what} did not start (see the thread's error)")
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@contextmanager
def sandbox_in_thread(catalogue: dict[str, Any]) -> Iterator[RunningSandbox]:
    with serve_in_thread(
        lambda: running_sandbox(Catalogue.from_dict(catalogue)), "the sandbox Amazon API"
    ) as sandbox:
        yield sandbox
