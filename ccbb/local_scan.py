"""A scan run in this process, for the command line: one aiohttp session, an in-memory API rate
limiter and a progress bar on stderr. Used by ``ccbb scan`` and ``ccbb demo``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from tqdm import tqdm

from scanner.crawl import Progress
from scanner.net import make_session
from scanner.ratelimit import LocalRateLimiter
from scanner.scan import ScanReport, run_scan
from scanner.settings import AmazonAccess, ScanConfig


@contextlib.asynccontextmanager
async def progress_bar(progress: Progress, enabled: bool) -> AsyncIterator[None]:
    """Pages crawled / discovered, products checked / found, on stderr."""
    if not enabled:
        yield
        return
    bar = tqdm(total=1, unit="page", file=sys.stderr, dynamic_ncols=True, leave=False, disable=None)

    def refresh() -> None:
        bar.total = max(progress.pages_discovered, 1)
        bar.n = progress.pages_crawled
        bar.set_description_str(progress.phase, refresh=False)
        bar.set_postfix_str(f"products {progress.products_checked}/{progress.products_found}")

    async def tick() -> None:
        while True:
            refresh()
            await asyncio.sleep(0.25)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        refresh()
        bar.close()


async def scan_site(
    config: ScanConfig, access: AmazonAccess, *, show_progress: bool, concurrency: int | None
) -> ScanReport:
    progress = Progress()
    async with (
        make_session(config.network) as session,
        progress_bar(progress, show_progress),
    ):
        return await run_scan(
            config,
            access,
            session=session,
            limiter=LocalRateLimiter(access.tps),
            progress=progress,
            concurrency=concurrency,
        )
