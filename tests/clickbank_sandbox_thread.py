"""The ClickBank sandbox served from a background thread (its own event loop), for tests whose
client is synchronous."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ccbb.sandbox.clickbank import RunningClickbank, config_from_catalogue, running_clickbank
from tests.clickbank_fixtures import SECRET, VENDOR


@contextmanager
def clickbank_in_thread(
    *, ins_url: str, app_url: str = "http://127.0.0.1:9", **config: Any
) -> Iterator[RunningClickbank]:
    cfg = config_from_catalogue(
        app_url=app_url, vendor=VENDOR, secret=SECRET, api_key="API-KEY-TEST", **config
    )
    cfg.ins_url = ins_url
    ready: list[RunningClickbank] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with running_clickbank(cfg) as sandbox:
                ready.append(sandbox)
                started.set()
                await stop.wait()
        finally:
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10) or not ready:
        raise RuntimeError("the ClickBank sandbox did not start (see the thread's error)")
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
