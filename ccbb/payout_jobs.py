"""The payout run in the worker: a daily arq cron tick (and one at each worker's start) queues
``payout_run_job`` for the day under a job id made of the date, so that however many workers
tick, the day's run is queued once (arq runs a job id once, and keeps its result a day); the
run itself is safe to repeat anyway (``affiliates.payouts``). On a day that is not a payout
date the job only reads back batches of earlier dates still pending."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from arq import Retry

from affiliates.payouts import RunIncomplete, run_payouts
from affiliates.paypal_payouts import PaypalPayouts
from store.models import utcnow

log = logging.getLogger(__name__)

RUN_JOB = "payout_run_job"
MAX_TRIES = 8
RETRY_SECONDS = (60, 300, 900, 1800, 3600, 3600, 3600)


def run_job_id(day: date) -> str:
    return f"ccbb:payouts:{day.isoformat()}"


def _clock(ctx: dict[str, Any]) -> Callable[[], datetime]:
    return ctx.get("clock") or utcnow


async def payouts_tick(ctx: dict[str, Any]) -> str | None:
    """Queue today's run (once a day, whichever worker ticks first); its job id, or None
    when it was queued already."""
    today = _clock(ctx)().date()
    job = await ctx["redis"].enqueue_job(RUN_JOB, today.isoformat(), _job_id=run_job_id(today))
    return run_job_id(today) if job is not None else None


async def payout_run_job(ctx: dict[str, Any], day: str) -> str:
    settings = ctx["settings"]
    when = date.fromisoformat(day)
    try:
        async with PaypalPayouts.from_settings(settings) as client, ctx["sessions"]() as session:
            report = await run_payouts(session, client, day=when, settings=settings)
    except RunIncomplete as exc:
        tries = int(ctx.get("job_try", 1))
        if tries >= MAX_TRIES:
            log.error("payout run of %s not finished after %d tries: %s", day, tries, exc)
            raise
        delay = RETRY_SECONDS[min(tries, len(RETRY_SECONDS)) - 1]
        log.warning("payout run of %s incomplete (%s): again in %d s", day, exc, delay)
        raise Retry(defer=delay) from None
    summary = (
        f"{day}: {len(report.paid)} paid, {report.total} USD, {len(report.carried)} carried over"
        if report.payout_day
        else f"{day}: not a payout date"
    )
    for note in report.notes:
        log.info("payout run %s: %s", day, note)
    return summary
