"""E-mail: the outbox (one row per mail, unique by its key, so a mail is sent once however
often it is queued) and whether each user confirmed their address.

A user with no ``account_email`` row counts as confirmed: accounts made before e-mail
confirmation existed, and by ``ccbb user create``. Sign-up adds a row with ``confirmed_at``
empty until the user follows the link in the confirmation mail.

Imported at the end of :mod:`store.models`, so Alembic and the tests see these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import UtcDateTime, utcnow


class AccountEmail(SQLModel, table=True):
    __tablename__ = "account_email"

    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", primary_key=True)
    confirmed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class OutboxMail(SQLModel, table=True):
    """A mail to send (``queued``), sent (``sent``), or given up after retries (``failed``)."""

    __tablename__ = "outbox_mail"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)  # e.g. "confirm:12:1733050000"
    to_addr: str = Field(max_length=320)
    subject: str = Field(sa_type=Text)
    text_body: str = Field(sa_type=Text)
    html_body: str = Field(sa_type=Text)
    state: str = Field(default="queued", max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


# ---- confirmation -----------------------------------------------------------------------


async def require_confirmation(session: AsyncSession, *, user_id: int) -> None:
    """Mark a new account as waiting for its address to be confirmed."""
    session.add(AccountEmail(user_id=user_id))
    await session.commit()


async def is_confirmed(session: AsyncSession, *, user_id: int) -> bool:
    row = await session.get(AccountEmail, user_id, populate_existing=True)
    return row is None or row.confirmed_at is not None


async def confirm(session: AsyncSession, *, user_id: int) -> bool:
    """Confirm the user's address; False if it already was."""
    row = await session.get(AccountEmail, user_id, populate_existing=True)
    if row is None or row.confirmed_at is not None:
        return False
    row.confirmed_at = utcnow()
    session.add(row)
    await session.commit()
    return True


# ---- the outbox -------------------------------------------------------------------------


async def add_mail(
    session: AsyncSession, *, key: str, to_addr: str, subject: str, text_body: str, html_body: str
) -> tuple[OutboxMail, bool]:
    """Put a mail in the outbox under ``key``: (its row, True) — or, when a mail with that key
    is already there, (that row, False): the same mail is never queued twice."""
    row = OutboxMail(
        key=key, to_addr=to_addr, subject=subject, text_body=text_body, html_body=html_body
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await get_mail_by_key(session, key=key)
        if existing is None:  # deleted meanwhile: nothing sensible to do but raise
            raise
        return existing, False
    await session.refresh(row)
    return row, True


async def get_mail_by_key(session: AsyncSession, *, key: str) -> OutboxMail | None:
    stmt = select(OutboxMail).where(col(OutboxMail.key) == key)
    return (await session.exec(stmt.execution_options(populate_existing=True))).first()


async def get_mail(session: AsyncSession, *, mail_id: int) -> OutboxMail | None:
    return await session.get(OutboxMail, mail_id, populate_existing=True)


async def mark_sent(session: AsyncSession, *, mail_id: int) -> None:
    row = await session.get(OutboxMail, mail_id)
    if row is not None:
        row.state, row.sent_at, row.attempts = "sent", utcnow(), row.attempts + 1
        row.last_error = None
        session.add(row)
        await session.commit()


async def mark_attempt_failed(
    session: AsyncSession, *, mail_id: int, error: str, final: bool
) -> None:
    row = await session.get(OutboxMail, mail_id)
    if row is not None:
        row.attempts += 1
        row.last_error = error[:500]
        if final:
            row.state = "failed"
        session.add(row)
        await session.commit()


async def recent_mails(session: AsyncSession, *, limit: int = 50) -> list[OutboxMail]:
    stmt = select(OutboxMail).order_by(col(OutboxMail.id).desc()).limit(limit)
    return list((await session.exec(stmt)).all())
