"""How a sandbox runs as a command of its own (``ccbb sandbox-amazon``, ``sandbox-clickbank``,
``sandbox-paypal``): listen, print the line the demo and the tests wait for, serve until Ctrl-C."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any


def serve_until_interrupted(
    command: str,
    running: AbstractAsyncContextManager[Any],
    banner: Callable[[Any], str],
    host: str,
    port: int,
) -> int:
    """Enter ``running`` (a sandbox's ``running_…(…)``), print ``banner(sandbox)`` and serve;
    the exit status: 0 after Ctrl-C, 1 when the address cannot be listened on."""

    async def serve() -> None:
        async with running as sandbox:
            print(banner(sandbox), flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"ccbb {command}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
