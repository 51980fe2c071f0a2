"""A paid scan through real worker processes (``ccbb worker``), the real database and Redis: a
worker killed with SIGKILL in the middle of the scan, the scan restarted by another worker and
then failing before any product was checked: its credit comes back exactly once, and the
restart spends nothing."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from store import credentials, credits, scans, users
from tests.test_worker import World, world  # noqa: F401 (the fixture)


@dataclass
class FlakySite:
    """Hangs every request until ``release`` (a worker is busy crawling it), then answers 404
    to everything: a site that could not be read, so the scan fails before any product."""

    hold: asyncio.Event = field(default_factory=asyncio.Event)
    seen: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen += 1
        if not self.hold.is_set():
            await self.hold.wait()
        return web.Response(status=404, text="gone")


async def _serve(site: FlakySite) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", site.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        site.hold.set()
        await runner.cleanup()


async def test_a_failed_scan_is_refunded_once_after_its_worker_was_killed(world: World) -> None:  # noqa: F811
    flaky = FlakySite()
    serving = _serve(flaky)
    port = await serving.__anext__()
    try:
        world.env["CCBB_CONNECT_TO"] += f",flaky.example:80:127.0.0.1:{port}"
        async with world.sessions() as session:
            user = await users.create_user(session, email=f"{uuid.uuid4().hex}@x.test",
                                           password_hash="x")  # fmt: skip
            assert user.id is not None
            await credits.grant(session, user_id=user.id, amount=1, kind="grant", source="admin",
                                comment="test", idempotency_key=uuid.uuid4().hex)  # fmt: skip
            cred = world.site.catalogue["credentials"][0]
            credential = await credentials.create_credential(
                session, box=world.box, user_id=user.id, credential_id=cred["credential_id"],
                secret=cred["credential_secret"], version=cred["version"], partner_tag="x-20",
            )  # fmt: skip
            scan = await scans.create_scan_spending_credit(
                session, user_id=user.id, credits_enabled=True, active_cap=3,
                site="http://flaky.example/", marketplace="www.amazon.com", partner_tag="x-20",
                credential_id=credential.id, options={"cloak_prefixes": [], "tps": 5.0},
            )  # fmt: skip
            assert scan.id is not None
            assert await credits.balance(session, user_id=user.id) == 0
        from ccbb.jobs import enqueue_scan

        await enqueue_scan(world.redis, scan)
        first = world.start_worker()
        deadline = time.monotonic() + 30
        while flaky.seen == 0 or await world.state(scan.id) != "running":
            assert time.monotonic() < deadline, "the worker never reached the site"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-crawl, nothing checked yet
        first.wait()
        flaky.hold.set()  # from now on the site answers 404: the next attempt fails
        world.start_worker()
        assert await world.wait_state(scan.id, {"done", "failed"}, timeout=90) == "failed"
        async with world.sessions() as session:
            ended = await scans.get_scan(session, scan_id=scan.id)
            assert ended is not None and ended.attempt == 2  # it was restarted
            assert "site unreachable" in (ended.error or "")
            entries = await credits.history(session, user_id=user.id, limit=10)
            assert [e.kind for e in entries] == ["scan_refund", "scan", "grant"]
            assert await credits.balance(session, user_id=user.id) == 1
            assert await credits.ledger_sum(session, user_id=user.id) == 1
            # failing it again (a retried job) refunds nothing more
            assert not await scans.fail_scan(session, scan_id=scan.id, reason="again")
            assert len(await credits.history(session, user_id=user.id, limit=10)) == 3
    finally:
        await serving.aclose()
