"""arq worker settings, kept thin: shared clients made once per process in ``startup`` and kept
in ``ctx``; the jobs live in ``ccbb.jobs``. Run with ``ccbb worker`` (or, with ``REDIS_URL``
set, ``arq worker.WorkerSettings``)."""

from __future__ import annotations

from typing import Any

from arq import cron, func
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ccbb.clickbank_jobs import MAX_TRIES as CLICKBANK_TRIES
from ccbb.clickbank_jobs import clickbank_event_job
from ccbb.dispatch import dispatch, scheduled_scan_job
from ccbb.jobs import network_policy, new_worker_id, reap, scan_job
from ccbb.payout_jobs import MAX_TRIES as PAYOUT_TRIES
from ccbb.payout_jobs import payout_run_job, payouts_tick
from ccbb.settings import get_settings
from notify.alerts import DELIVERY_TRIES, deliver_alert_job, weekly_summary_job
from notify.jobs import MAIL_TRIES, send_mail_job
from scanner.net import make_session
from store.crypto import SecretBox
from store.db import check_database, make_engine, session_factory

SCAN_TIMEOUT = 24 * 3600  # a scan's own lease, not arq's timeout, detects a dead worker
REDIS_OUTAGE_SECONDS = 120.0  # how long a Redis outage may last before commands fail
REDIS_RETRY_CAP = 1.0  # seconds between attempts to reach Redis again, at most


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    await check_database(engine)
    ctx["settings"] = settings
    ctx["engine"] = engine
    ctx["sessions"] = session_factory(engine)
    ctx["box"] = SecretBox.from_settings(settings)
    ctx["http"] = make_session(network_policy(settings))
    ctx["worker_id"] = new_worker_id()
    from web.signing import session_secret  # signs the invitations a ClickBank buyer may get

    ctx["signing_secret"] = session_secret(settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "http" in ctx:
        await ctx["http"].close()
    if "engine" in ctx:
        await ctx["engine"].dispose()


def redis_settings(url: str) -> RedisSettings:
    """arq's connection to ``url``, riding out a Redis outage: every command (arq's polling,
    the jobs' heartbeat, progress, rate limiter and lease) is retried on a connection error for
    up to ``REDIS_OUTAGE_SECONDS``, so a Redis restart pauses a scan instead of failing it."""
    settings = RedisSettings.from_dsn(url)
    settings.retry = Retry(
        ExponentialBackoff(cap=REDIS_RETRY_CAP, base=0.05),
        retries=int(REDIS_OUTAGE_SECONDS / REDIS_RETRY_CAP),
    )
    # OSError: a refused connect() is retried too (redis-py retries it only when listed)
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    settings.conn_retries = int(REDIS_OUTAGE_SECONDS)  # at startup, one try a second
    return settings


class WorkerSettings:
    functions = [
        func(scan_job, timeout=SCAN_TIMEOUT, max_tries=1000),
        func(clickbank_event_job, timeout=120, max_tries=CLICKBANK_TRIES),
        func(send_mail_job, timeout=120, max_tries=MAIL_TRIES),
        func(scheduled_scan_job, timeout=300, max_tries=3),
        func(deliver_alert_job, timeout=120, max_tries=DELIVERY_TRIES),
        func(payout_run_job, timeout=900, max_tries=PAYOUT_TRIES),
    ]
    cron_jobs = [
        cron(reap, second=set(range(0, 60, 5)), run_at_startup=True),
        # every worker ticks; each due schedule is still queued once (ccbb.dispatch)
        cron(dispatch, second={0}, run_at_startup=True),
        cron(weekly_summary_job, weekday="mon", hour={7}, minute={0}, second={0}),
        # affiliate payouts: the day's run queued once under a job id made of the date
        cron(payouts_tick, hour={6}, minute={0}, second={0}, run_at_startup=True),
    ]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    max_jobs = get_settings().max_scans
    job_timeout = SCAN_TIMEOUT
    keep_result = 24 * 3600
    allow_abort_jobs = True
    redis_settings = redis_settings(get_settings().redis_url or "redis://127.0.0.1:6379")
