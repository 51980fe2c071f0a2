"""The sandbox Creators API served from a background thread (its own event loop), for tests
whose client is synchronous (Starlette's TestClient)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ccbb.sandbox.amazon_api import Catalogue, RunningSandbox, running_sandbox


@contextmanager
def sandbox_in_thread(catalogue: dict[str, Any]) -> Iterator[RunningSandbox]:
    ready: list[RunningSandbox] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with running_sandbox(Catalogue.from_dict(catalogue)) as sandbox:
                ready.append(sandbox)
                started.set()
                await stop.wait()
        finally:
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10) or not ready:
        raise RuntimeError("the sandbox Amazon API did not start (see the thread's error)")
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
