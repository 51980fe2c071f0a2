"""The background jobs that send notifications, with retries: ``send_mail_job`` (one outbox
mail). Registered in ``ccbb.worker``; the worker's ``ctx`` holds settings and sessions."""

from __future__ import annotations

import logging
from typing import Any

import aiosmtplib
from arq import Retry

from notify.email import MailNotConfigured, build_message, send_message
from store import mail as store_mail

log = logging.getLogger(__name__)

MAIL_TRIES = 6
# seconds before each retry: 10 s, 1 min, 5 min, 15 min, 1 h
MAIL_BACKOFF = (10, 60, 300, 900, 3600)


async def send_mail_job(ctx: dict[str, Any], mail_id: int) -> str:
    """Send outbox mail ``mail_id`` unless it was sent already (a job run twice sends once)."""
    async with ctx["sessions"]() as session:
        mail = await store_mail.get_mail(session, mail_id=mail_id)
    if mail is None:
        return "no such mail"
    if mail.state != "queued":
        return f"nothing to do ({mail.state})"
    settings = ctx["settings"]
    message = build_message(
        key=mail.key,
        to=mail.to_addr,
        subject=mail.subject,
        text=mail.text_body,
        html=mail.html_body,
        sender=settings.smtp_from,
    )
    try:
        await send_message(settings, message)
    except (aiosmtplib.SMTPException, OSError, MailNotConfigured) as exc:
        job_try = int(ctx.get("job_try", 1))
        final = job_try >= MAIL_TRIES or isinstance(exc, MailNotConfigured)
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("mail %s (%s): attempt %s failed: %s", mail_id, mail.key, job_try, reason)
        async with ctx["sessions"]() as session:
            await store_mail.mark_attempt_failed(
                session, mail_id=mail_id, error=reason, final=final
            )
        if final:
            return f"failed: {reason}"
        raise Retry(defer=MAIL_BACKOFF[min(job_try, len(MAIL_BACKOFF)) - 1]) from exc
    async with ctx["sessions"]() as session:
        await store_mail.mark_sent(session, mail_id=mail_id)
    log.info("mail %s (%s) sent", mail_id, mail.key)
    return "sent"
