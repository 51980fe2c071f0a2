"""arq worker settings, kept thin: shared clients made once per process in ``startup`` and kept
in ``ctx``; the jobs live in ``ccbb.jobs``. Run with ``ccbb worker`` (or, with ``REDIS_URL``
set, ``arq worker.WorkerSettings``)."""

from __future__ import annotations

from typing import Any

from arq import cron, func
from arq.connections import RedisSettings

from ccbb.dispatch import dispatch, scheduled_scan_job
from ccbb.jobs import new_worker_id, reap, scan_job
from ccbb.settings import get_settings
from notify.alerts import DELIVERY_TRIES, deliver_alert_job, weekly_summary_job
from notify.jobs import MAIL_TRIES, send_mail_job
from scanner.net import NetworkPolicy, make_session, parse_connect_to
from store.crypto import SecretBox
from store.db import check_database, make_engine, session_factory

SCAN_TIMEOUT = 24 * 3600  # a scan's own lease, not arq's timeout, detects a dead worker


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    await check_database(engine)
    ctx["settings"] = settings
    ctx["engine"] = engine
    ctx["sessions"] = session_factory(engine)
    ctx["box"] = SecretBox.from_settings(settings)
    policy = NetworkPolicy(settings.allow_private_network, parse_connect_to(settings.connect_to))
    ctx["http"] = make_session(policy)
    ctx["worker_id"] = new_worker_id()


async def shutdown(ctx: dict[str, Any]) -> None:
    if "http" in ctx:
        await ctx["http"].close()
    if "engine" in ctx:
        await ctx["engine"].dispose()


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


class WorkerSettings:
    functions = [
        func(scan_job, timeout=SCAN_TIMEOUT, max_tries=1000),
        func(send_mail_job, timeout=120, max_tries=MAIL_TRIES),
        func(scheduled_scan_job, timeout=300, max_tries=3),
        func(deliver_alert_job, timeout=120, max_tries=DELIVERY_TRIES),
    ]
    cron_jobs = [
        cron(reap, second=set(range(0, 60, 5)), run_at_startup=True),
        # every worker ticks; each due schedule is still queued once (ccbb.dispatch)
        cron(dispatch, second={0}, run_at_startup=True),
        cron(weekly_summary_job, weekday="mon", hour={7}, minute={0}, second={0}),
    ]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    max_jobs = get_settings().max_scans
    job_timeout = SCAN_TIMEOUT
    keep_result = 24 * 3600
    allow_abort_jobs = True
    redis_settings = redis_settings(get_settings().redis_url or "redis://127.0.0.1:6379")
