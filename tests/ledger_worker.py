"""A process of its own that spends credits (or creates paid scans) against a shared database,
for the concurrency tests of the ledger and the benchmark: what several web processes or workers
do at once. Started with multiprocessing's spawn; answers how many of its tries succeeded."""

from __future__ import annotations

import asyncio
import time

from store import credits
from store import scans as store_scans
from store.db import make_engine, session_factory


async def _spend(
    url: str, user_id: int, tries: int, start_at: float, tag: str, path: str
) -> tuple[int, int]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    writes = credits.Writes(url) if path == "writes" else None
    ok = refused = 0
    try:
        if writes is not None:
            await writes.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def one(i: int) -> None:
            nonlocal ok, refused
            async with sessions() as session:
                try:
                    await credits.revoke(
                        session, user_id=user_id, amount=1, kind="scan", source="scan",
                        comment="test spend", idempotency_key=f"{tag}:{i}", writes=writes,
                    )  # fmt: skip
                    ok += 1
                except credits.InsufficientCredits:
                    refused += 1

        await asyncio.gather(*(one(i) for i in range(tries)))
    finally:
        if writes is not None:
            await writes.close()
        await engine.dispose()
    return ok, refused


def spend(
    url: str, user_id: int, tries: int, start_at: float, tag: str, path: str = "session"
) -> tuple[int, int]:
    """``tries`` concurrent spends of 1 credit: (succeeded, refused for lack of credits).
    ``path``: ``session`` (the SQLAlchemy session only) or ``writes`` (through a
    :class:`store.credits.Writes` pool, as the web app spends)."""
    return asyncio.run(_spend(url, user_id, tries, start_at, tag, path))


async def _create(
    url: str, user_id: int, tries: int, cap: int, start_at: float
) -> tuple[int, int, int]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    made = capped = broke = 0
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def one() -> None:
            nonlocal made, capped, broke
            async with sessions() as session:
                try:
                    await store_scans.create_scan_spending_credit(
                        session, user_id=user_id, credits_enabled=True, active_cap=cap,
                        site="https://example.com/", marketplace="www.amazon.com",
                        partner_tag="x-20",
                    )  # fmt: skip
                    made += 1
                except store_scans.TooManyActiveScans:
                    capped += 1
                except store_scans.NoCredits:
                    broke += 1

        await asyncio.gather(*(one() for _ in range(tries)))
    finally:
        await engine.dispose()
    return made, capped, broke


def create_scans(
    url: str, user_id: int, tries: int, cap: int, start_at: float
) -> tuple[int, int, int]:
    """``tries`` concurrent paid scan creations: (made, refused by the cap, refused for credits)."""
    return asyncio.run(_create(url, user_id, tries, cap, start_at))
