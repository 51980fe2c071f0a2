"""The product's e-mail, through ``aiosmtplib``: a message with a text and an HTML part
(``email.message.EmailMessage``), sent to the SMTP server of the settings (``CCBB_SMTP_*``).

Mail is never sent inside a web request: :func:`queue_mail` puts it in the outbox
(``store.mail``, unique by its key, so a mail queued twice is sent once) and queues the arq job
``send_mail_job`` (``notify.jobs``), which sends it and retries with backoff.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

import aiosmtplib

from ccbb.settings import Settings
from store import mail as store_mail

log = logging.getLogger(__name__)

SEND_TIMEOUT = 30.0  # seconds for one SMTP conversation


@dataclass(frozen=True, slots=True)
class Mail:
    key: str  # unique per mail: "confirm:12:…", "alert:42:3" …
    to: str
    subject: str
    text: str
    html: str


class MailNotConfigured(Exception):
    """No SMTP server is configured (CCBB_SMTP_HOST)."""


def message_id(key: str, sender: str) -> str:
    """A Message-ID made from the mail's key: a mail sent twice (a retry after a lost answer)
    carries the same id, so mail programs show it once."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(
    *, key: str, to: str, subject: str, text: str, html: str, sender: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = Address(addr_spec=to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(key, sender)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def smtp_options(settings: Settings) -> dict[str, Any]:
    """``aiosmtplib.send`` keyword arguments for the settings (the password stays a secret:
    never log this)."""
    if not settings.smtp_host:
        raise MailNotConfigured("no SMTP server: set CCBB_SMTP_HOST (and CCBB_SMTP_PORT…)")
    return {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port,
        "use_tls": settings.smtp_tls == "tls",
        "start_tls": settings.smtp_tls == "starttls",
        "username": settings.smtp_user or None,
        "password": settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        "timeout": SEND_TIMEOUT,
    }


async def send_message(settings: Settings, message: EmailMessage) -> None:
    """One SMTP conversation. Raises aiosmtplib.SMTPException / OSError on failure."""
    await aiosmtplib.send(message, **smtp_options(settings))


def mail_enabled(settings: Settings) -> bool:
    return bool(settings.smtp_host)


async def queue_mail(sessions: Any, redis: Any, mail: Mail) -> bool:
    """Put ``mail`` in the outbox and queue its sending; False when a mail with the same key
    was queued before (it is not sent again)."""
    async with sessions() as session:
        row, new = await store_mail.add_mail(
            session,
            key=mail.key,
            to_addr=mail.to,
            subject=mail.subject,
            text_body=mail.text,
            html_body=mail.html,
        )
    if new:
        stamp = int(row.created_at.timestamp() * 1000)  # ids restart with a new database
        await redis.enqueue_job("send_mail_job", row.id, _job_id=f"mail:{row.id}:{stamp}")
    return new
