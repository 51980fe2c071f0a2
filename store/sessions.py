"""Browser sessions, kept server-side so that they can be ended: logout, a password change,
account deletion and "log out everywhere" delete their rows, and a copied cookie stops working.

The cookie holds a random session id (32 bytes); the table keeps only its SHA-256, so a read of
the database gives no working cookie (as :mod:`store.tokens` does for API tokens). A session
lasts :data:`SESSION_DAYS` from its login."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from store import credits
from store.mail import AccountEmail
from store.models import User, UtcDateTime, table_of, utcnow

SESSION_DAYS = 14


class UserSession(SQLModel, table=True):
    __tablename__ = "user_session"

    id_hash: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie's session id
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)


SESSION_TABLE = table_of(UserSession)
USER_TABLE = table_of(User)
ACCOUNT_EMAIL = table_of(AccountEmail)

# the hot read (every page and poll, through web.reads): the user of a session, with its end
# the session's user and their credits balance (the header shows it) in one read by key
USER_BY_SESSION = (
    select(
        *USER_TABLE.c,
        SESSION_TABLE.c.expires_at.label("session_expires_at"),
        credits.ACCOUNT.c.balance.label("credits_balance"),
        # a row without confirmed_at: the address waits for confirmation (store.mail)
        ACCOUNT_EMAIL.c.user_id.label("email_pending_user"),
        ACCOUNT_EMAIL.c.confirmed_at.label("email_confirmed_at"),
    )
    .select_from(
        SESSION_TABLE.join(USER_TABLE, USER_TABLE.c.id == SESSION_TABLE.c.user_id)
        .outerjoin(credits.ACCOUNT, credits.ACCOUNT.c.user_id == USER_TABLE.c.id)
        .outerjoin(ACCOUNT_EMAIL, ACCOUNT_EMAIL.c.user_id == USER_TABLE.c.id)
    )
    .where(SESSION_TABLE.c.id_hash == bindparam("id_hash"))
)


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create_session(
    session: AsyncSession, *, session_id: str, user_id: int, days: int = SESSION_DAYS
) -> UserSession:
    """A new logged-in session; the user's expired ones are cleared on the way."""
    now = utcnow()
    await session.exec(
        delete(SESSION_TABLE).where(
            SESSION_TABLE.c.user_id == user_id, SESSION_TABLE.c.expires_at <= now
        )
    )
    row = UserSession(
        id_hash=hash_session_id(session_id), user_id=user_id, expires_at=now + timedelta(days=days)
    )
    session.add(row)
    await session.commit()
    return row


async def delete_session(session: AsyncSession, *, session_id: str) -> None:
    await session.exec(
        delete(SESSION_TABLE).where(SESSION_TABLE.c.id_hash == hash_session_id(session_id))
    )
    await session.commit()


async def delete_user_sessions(
    session: AsyncSession, *, user_id: int, except_session_id: str | None = None
) -> int:
    """Ends every session of the user (but ``except_session_id``); how many ended."""
    stmt = delete(SESSION_TABLE).where(SESSION_TABLE.c.user_id == user_id)
    if except_session_id is not None:
        stmt = stmt.where(SESSION_TABLE.c.id_hash != hash_session_id(except_session_id))
    result = await session.exec(stmt)
    await session.commit()
    return int(result.rowcount or 0)
