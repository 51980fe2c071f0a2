"""The background job that runs a scan, and the reaper that restarts scans whose worker died.

A scan runs in whichever worker holds its **lease** (a Redis key refreshed every second). While
it runs, the job publishes progress to a Redis hash (what the dashboard polls: one HGETALL),
saves it to the database every few seconds, watches for a cancel request, and **checkpoints
each batch of product results** Amazon returns, as it arrives (the expensive, rate-limited part
of a scan). When a worker is
killed, its lease expires; the reaper of any worker re-enqueues the scan, and the next attempt
crawls again (fast: minutes at most) but asks Amazon only for products no attempt checked yet.
The final results are written in one transaction that first removes what an earlier attempt may
have left, so a scan's rows are those of exactly one complete run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ccbb.limiter import RedisLinkCache, RedisRateLimiter
from ccbb.settings import Settings
from scanner.amazon import ProductResult
from scanner.crawl import Progress
from scanner.net import NetworkPolicy, parse_connect_to
from scanner.scan import ScanFailed, run_scan
from scanner.settings import AmazonAccess, CrawlLimits, ScanConfig
from store import credentials as store_credentials
from store import scans as store_scans
from store.crypto import SecretBox

log = logging.getLogger(__name__)

PROGRESS_KEY = "ccbb:progress:{}"
CANCEL_KEY = "ccbb:cancel:{}"
LEASE_KEY = "ccbb:lease:{}"
PROGRESS_TTL = 24 * 3600
DB_PROGRESS_EVERY = 2.0  # seconds


def progress_fields(progress: Progress, state: str) -> dict[str, str]:
    return {
        "state": state,
        "phase": progress.phase,
        "pages_crawled": str(progress.pages_crawled),
        "pages_discovered": str(progress.pages_discovered),
        "products_found": str(progress.products_found),
        "products_checked": str(progress.products_checked),
        "updated_at": f"{time.time():.3f}",
    }


# what a live progress hash tells the dashboard and the API (progress_fields writes them)
LIVE_FIELDS = ("phase", "pages_crawled", "pages_discovered", "products_found", "products_checked")


async def read_progress(redis: Redis, scan_ids: list[int]) -> dict[int, dict[str, str | int]]:
    """The live progress of ``scan_ids`` in one round trip: ``phase`` (text) and the counters
    (ints) of each scan that has a progress hash; the others are absent."""
    keys = [PROGRESS_KEY.format(scan_id) for scan_id in scan_ids]
    if len(keys) == 1:  # most polls: one running scan, no pipeline needed
        found = [await redis.hmget(keys[0], list(LIVE_FIELDS))]  # type: ignore[misc]
    elif keys:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, list(LIVE_FIELDS))
            found = await pipe.execute()
    else:
        return {}
    out: dict[int, dict[str, str | int]] = {}
    for scan_id, values in zip(scan_ids, found, strict=True):
        fields = {
            name: _parsed(name, value)
            for name, value in zip(LIVE_FIELDS, values, strict=True)
            if value is not None
        }
        if fields:
            out[scan_id] = fields
    return out


def _parsed(name: str, value: bytes | str) -> str | int:
    text = value.decode() if isinstance(value, bytes) else str(value)
    if name == "phase":
        return text
    try:
        return int(text)
    except ValueError:
        return 0


async def request_cancel(redis: Redis, scan_id: int) -> None:
    """Ask the worker running ``scan_id`` to stop (it does within a second or two)."""
    await redis.set(CANCEL_KEY.format(scan_id), "1", ex=PROGRESS_TTL)


async def cancel_scan(sessions: Any, redis: Redis, scan_id: int) -> None:
    """End a queued or running scan as cancelled (what it found is kept) and tell its worker."""
    async with sessions() as session:
        await store_scans.cancel_scan(session, scan_id=scan_id)
    await request_cancel(redis, scan_id)


def job_id(scan: Any, attempt: int) -> str:
    """arq job id of an attempt: a second enqueue of the same attempt is a no-op. The creation
    time keeps ids apart when a database is recreated but Redis kept its old jobs."""
    return f"scan:{scan.id}:{int(scan.created_at.timestamp() * 1000)}:{attempt}"


async def enqueue_scan(redis: Any, scan: Any, attempt: int = 0) -> None:
    if attempt == 0:
        # a new scan starts clean: SQLite gives a deleted scan's id to the next one, whose
        # cancel request and progress Redis may still hold
        await redis.delete(CANCEL_KEY.format(scan.id), PROGRESS_KEY.format(scan.id))
    await redis.enqueue_job("scan_job", scan.id, _job_id=job_id(scan, attempt))


def network_policy(settings: Settings) -> NetworkPolicy:
    """What the workers' crawler may connect to: public addresses, the targets of the
    operator's ``CCBB_CONNECT_TO`` mappings, and private ones only if the operator allows."""
    return NetworkPolicy(
        allow_private=settings.allow_private_network,
        connect_to=parse_connect_to(settings.connect_to),
    )


def scan_inputs(scan: Any, credential: Any, box: SecretBox, settings: Settings) -> tuple[
    ScanConfig, AmazonAccess
]:  # fmt: skip
    options = scan.options or {}
    network = network_policy(settings)
    limits = CrawlLimits(
        max_pages=int(options.get("max_pages", CrawlLimits.max_pages)),
        page_workers=settings.page_workers,
    )
    config = ScanConfig(
        site=scan.site,
        marketplace=scan.marketplace,
        partner_tag=scan.partner_tag,
        cloak_prefixes=tuple(options.get("cloak_prefixes", ())),
        limits=limits,
        network=network,
        http_fallback=bool(options.get("http_fallback", False)),
    )
    access = amazon_access(
        credential,
        box,
        settings,
        partner_tag=scan.partner_tag or "",
        marketplace=scan.marketplace,
        tps=float(options.get("tps", 1.0)),
    )
    return config, access


def amazon_access(
    credential: Any,
    box: SecretBox,
    settings: Settings,
    *,
    partner_tag: str,
    marketplace: str,
    tps: float = 1.0,
) -> AmazonAccess:
    """A saved credential as the scanner uses it (the secret decrypted; never log it). Raises
    store.crypto.SecretKeyError if the server key changed."""
    return AmazonAccess(
        credential_id=credential.credential_id,
        credential_secret=store_credentials.reveal_secret(credential, box=box),
        version=credential.version,
        partner_tag=partner_tag,
        marketplace=marketplace,
        api_host=settings.amazon_api_host,
        auth_endpoint=settings.amazon_auth_endpoint,
        tps=tps,
    )


async def scan_job(ctx: dict[str, Any], scan_id: int) -> str:
    settings: Settings = ctx["settings"]
    redis: Redis = ctx["redis"]
    sessions = ctx["sessions"]
    lease_key = LEASE_KEY.format(scan_id)
    me = ctx["worker_id"]
    if not await redis.set(lease_key, me, nx=True, ex=settings.lease_seconds):
        return "running in another worker"
    try:
        async with sessions() as session:
            scan = await store_scans.get_scan(session, scan_id=scan_id)
            if scan is None or scan.state in ("done", "failed", "cancelled"):
                return f"nothing to do ({scan.state if scan else 'no such scan'})"
            credential = await store_credentials.get_credential(
                session, credential_id=scan.credential_id
            )
            attempt = await store_scans.mark_running(session, scan_id=scan_id)
            known = await store_scans.load_products(session, scan_id=scan_id)
        if credential is None:
            return await _fail(ctx, scan_id, "the Amazon credentials of this scan were deleted")
        config, access = scan_inputs(scan, credential, ctx["box"], settings)
        log.info("scan %s: attempt %s, %s products already checked", scan_id, attempt, len(known))
        return await _run(ctx, scan_id, config, access, known)
    except store_scans.ScanNotFound:  # its user deleted the account while it ran
        log.info("scan %s was deleted while it ran: nothing to save", scan_id)
        return "deleted while running"
    except Exception:  # a bug must not retry forever nor leave the scan "running"
        log.exception("scan %s: internal error", scan_id)
        return await _fail(
            ctx, scan_id, "internal error: the scan stopped; try again, or contact support"
        )
    finally:
        # release only our own lease
        if await redis.get(lease_key) == me.encode():
            await redis.delete(lease_key)


async def _run(
    ctx: dict[str, Any],
    scan_id: int,
    config: ScanConfig,
    access: AmazonAccess,
    known: dict[Any, ProductResult],
) -> str:
    settings: Settings = ctx["settings"]
    redis: Redis = ctx["redis"]
    sessions = ctx["sessions"]
    progress = Progress()
    stop = asyncio.Event()
    saving: set[asyncio.Task[None]] = set()

    def checkpoint_batch(results: list[ProductResult]) -> None:
        """Save each batch Amazon answers right away: a worker killed a moment later loses at
        most the batches still in flight, not seconds of paid-for lookups."""
        task = asyncio.create_task(save(list(results)))
        saving.add(task)
        task.add_done_callback(saving.discard)

    async def save(results: list[ProductResult]) -> None:
        try:
            async with sessions() as session:
                await store_scans.save_products(session, scan_id=scan_id, results=results)
        except Exception:  # a missed checkpoint costs a lookup after a crash, nothing else
            log.exception("scan %s: could not checkpoint %d products", scan_id, len(results))

    lost_lease = False

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(settings.heartbeat_seconds)
            try:
                if not await beat_once():
                    return
            except (RedisError, OSError) as exc:  # Redis restarting: the scan goes on
                log.warning("scan %s: heartbeat failed (%s); trying again", scan_id, exc)

    last_db = 0.0

    async def beat_once() -> bool:
        """Renew the lease, publish progress, look for a cancel; False once the lease is lost."""
        nonlocal lost_lease, last_db
        key = PROGRESS_KEY.format(scan_id)
        holder = await redis.get(LEASE_KEY.format(scan_id))
        if holder is None:  # Redis lost it (a restart): take it again if nobody did
            await redis.set(
                LEASE_KEY.format(scan_id), ctx["worker_id"], nx=True, ex=settings.lease_seconds
            )
            holder = await redis.get(LEASE_KEY.format(scan_id))
        if holder != ctx["worker_id"].encode():
            lost_lease = True  # another worker took over: stop, write nothing
            stop.set()
            return False
        await redis.expire(LEASE_KEY.format(scan_id), settings.lease_seconds)
        await redis.hset(key, mapping=progress_fields(progress, "running"))  # type: ignore[misc]
        await redis.expire(key, PROGRESS_TTL)
        if await redis.exists(CANCEL_KEY.format(scan_id)):
            stop.set()
        if time.monotonic() - last_db >= DB_PROGRESS_EVERY:
            last_db = time.monotonic()
            async with sessions() as session:
                await store_scans.save_progress(session, scan_id=scan_id, progress=progress)
        return True

    beat = asyncio.create_task(heartbeat())
    try:
        report = await run_scan(
            config,
            access,
            session=ctx["http"],
            limiter=RedisRateLimiter(redis, access.limiter_key, access.tps),
            link_cache=RedisLinkCache(redis),
            progress=progress,
            stop=stop,
            known_products=known,
            on_results=checkpoint_batch,
        )
    except ScanFailed as exc:
        beat.cancel()
        return await _fail(ctx, scan_id, str(exc))
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    if lost_lease:
        return "lease lost: another worker runs this scan"
    if saving:
        await asyncio.gather(*saving)
    async with sessions() as session:
        await store_scans.finish_scan(session, scan_id=scan_id, report=report)
        if report.cancelled:
            await store_scans.cancel_scan(session, scan_id=scan_id)
    state = "cancelled" if report.cancelled else "done"
    await redis.hset(PROGRESS_KEY.format(scan_id), mapping=progress_fields(progress, state))  # type: ignore[misc]
    await redis.delete(CANCEL_KEY.format(scan_id))
    return state


async def _fail(ctx: dict[str, Any], scan_id: int, reason: str) -> str:
    async with ctx["sessions"]() as session:
        await store_scans.fail_scan(session, scan_id=scan_id, reason=reason)
    redis: Redis = ctx["redis"]
    progress = Progress(phase="failed")
    await redis.hset(PROGRESS_KEY.format(scan_id), mapping=progress_fields(progress, "failed"))  # type: ignore[misc]
    return f"failed: {reason}"


async def reap(ctx: dict[str, Any]) -> int:
    """Re-enqueue scans whose worker died (running, lease gone) or whose queued job was lost
    (queued for a while, no job in Redis: Redis was restarted without persistence)."""
    redis = ctx["redis"]
    count = 0
    async with ctx["sessions"]() as session:
        for scan in await store_scans.unfinished_scans(session):
            if await redis.exists(LEASE_KEY.format(scan.id)):
                continue
            if scan.state == "queued":
                if await redis.exists(f"arq:job:{job_id(scan, scan.attempt)}"):
                    continue  # waiting for a free worker
                log.warning(
                    "scan %s: its queued job was lost (Redis restarted?): queued again", scan.id
                )
                await enqueue_scan(redis, scan, attempt=scan.attempt)
            else:
                log.warning("scan %s lost its worker: queued again", scan.id)
                await enqueue_scan(redis, scan, attempt=scan.attempt + 1)
            count += 1
    return count


def new_worker_id() -> str:
    return uuid.uuid4().hex
