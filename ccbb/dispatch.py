"""Scheduled scans: the dispatcher (an arq cron job, every minute, in every worker) and the
job that starts one scheduled scan.

Exactly once, even with many workers: the dispatcher takes each due schedule in a
transaction that moves it to its next due time (``store.monitoring.claim_due``: one
dispatcher per row) and queues ``scheduled_scan_job`` under a job id made of the site's
schedule and that due time (arq runs a job id once); the job then takes that due time up in
the database (``take_due_run``) before doing anything. A site still being scanned at its due
time is skipped until the next one. A scheduled scan spends a credit like any other
(``store.scans.create_scan_spending_credit``); with none left the schedule pauses and the
user is told once. The clock is ``ctx["clock"]`` when set (tests), else the real one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ccbb import jobs
from ccbb.bulk_enqueue import enqueue_many
from ccbb.marks import N_
from notify import messages
from notify.email import Mail, mail_enabled, queue_mail
from store import monitoring as store_monitoring
from store import scans as store_scans
from store import users as store_users
from store.models import utcnow
from web import i18n

log = logging.getLogger(__name__)

RUN_JOB = "scheduled_scan_job"


BATCH = 10_000  # schedules taken per transaction

# what the Schedules page says of the last due time (plain English, one place)
QUEUED = N_("Scan #{scan_id} queued")
STILL_SCANNING = N_("Skipped: the site was still being scanned")
TOO_MANY = N_("Skipped: too many of your scans were queued or running")
NO_CREDITS = N_("Paused: no scan credits left")
NO_CREDENTIAL = N_("Paused: the Amazon credentials of this site were deleted")


def run_job_id(schedule_id: int, due_at: datetime, created_at: datetime) -> str:
    """One per schedule and due time. The schedule's creation time keeps ids apart when a
    database is recreated but Redis kept its old jobs (ids start at 1 again)."""
    return f"sched:{schedule_id}:{int(created_at.timestamp() * 1000)}:{int(due_at.timestamp())}"


def _clock(ctx: dict[str, Any]) -> Callable[[], datetime]:
    return ctx.get("clock") or utcnow


async def dispatch(ctx: dict[str, Any]) -> int:
    """One tick: queue a run of every schedule due now; how many were queued."""
    now = _clock(ctx)()
    total = 0
    while True:
        async with ctx["sessions"]() as session:
            taken = await store_monitoring.claim_due(session, now=now, limit=BATCH)
            if taken:  # queued before the claim commits: a crash here loses no due time
                await enqueue_many(
                    ctx["redis"],
                    [
                        (RUN_JOB, (sid, due.isoformat()), run_job_id(sid, due, made))
                        for sid, due, made in taken
                    ],
                )
            await session.commit()
        total += len(taken)
        if len(taken) < BATCH:
            break
    if total:
        log.info("dispatcher: %d scheduled scans due", total)
    return total


async def scheduled_scan_job(ctx: dict[str, Any], schedule_id: int, due_iso: str) -> str:
    """Start the scan of ``schedule_id`` due at ``due_iso`` — once."""
    due_at = datetime.fromisoformat(due_iso)
    settings = ctx["settings"]
    async with ctx["sessions"]() as session:
        schedule = await store_monitoring.take_due_run(
            session, schedule_id=schedule_id, due_at=due_at
        )
        if schedule is None:
            return "taken up already"
        # plain values: a refused scan rolls the session back, which expires the row
        user_id, site = schedule.user_id, schedule.site
        if schedule.credential_id is None:
            await _pause(ctx, schedule_id, user_id, site, NO_CREDENTIAL, due_at)
            return NO_CREDENTIAL
        if await store_monitoring.site_is_being_scanned(
            session, user_id=schedule.user_id, site=schedule.site,
            marketplace=schedule.marketplace,
        ):  # fmt: skip
            await store_monitoring.record_outcome(
                session, schedule_id=schedule_id, outcome=STILL_SCANNING
            )
            return STILL_SCANNING
        try:
            scan = await store_scans.create_scan_spending_credit(
                session,
                user_id=schedule.user_id,
                credits_enabled=settings.credits_enabled,
                active_cap=settings.active_scans_per_user,
                site=schedule.site,
                marketplace=schedule.marketplace,
                partner_tag=schedule.partner_tag,
                options={**schedule.options, "scheduled": True},
                credential_id=schedule.credential_id,
            )
        except store_scans.NoCredits:
            await _pause(ctx, schedule_id, user_id, site, NO_CREDITS, due_at)
            return NO_CREDITS
        except store_scans.TooManyActiveScans:
            await store_monitoring.record_outcome(
                session, schedule_id=schedule_id, outcome=TOO_MANY
            )
            return TOO_MANY
        await store_monitoring.record_outcome(
            session, schedule_id=schedule_id, outcome=QUEUED.format(scan_id=scan.id),
            scan_id=scan.id,
        )  # fmt: skip
    await jobs.enqueue_scan(ctx["redis"], scan)
    return QUEUED.format(scan_id=scan.id)


async def _pause(
    ctx: dict[str, Any], schedule_id: int, user_id: int, site: str, reason: str, due_at: datetime
) -> None:
    """Pause the schedule; the first time, tell the user (by mail, when mail is on; the
    Schedules page says it in any case)."""
    async with ctx["sessions"]() as session:
        first = await store_monitoring.pause_schedule(
            session, schedule_id=schedule_id, reason=reason
        )
        user = await store_users.get_user(session, user_id=user_id)
    log.info("schedule %s paused: %s", schedule_id, reason)
    if not first or user is None or not mail_enabled(ctx["settings"]):
        return
    link = ctx["settings"].public_url.rstrip("/") + "/monitoring"
    with i18n.speaking(user.locale):  # the mail in the account's language
        parts = messages.schedule_paused(site, link)
    key = f"paused:{schedule_id}:{int(due_at.timestamp())}"
    await queue_mail(ctx["sessions"], ctx["redis"],
                     Mail(key, user.email, parts.subject, parts.text, parts.html))  # fmt: skip
