"""Users: keyword-only CRUD functions. Passwords arrive hashed: hashing is the web layer's."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import User


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession, *, email: str, password_hash: str, is_admin: bool = False
) -> User:
    """A new user (the e-mail is stored lower-cased). Raises sqlalchemy.exc.IntegrityError if
    the e-mail is taken."""
    user = User(email=normalize_email(email), password_hash=password_hash, is_admin=is_admin)
    session.add(user)
    await session.commit()
    await session.refresh(user)
    return user


async def get_user(session: AsyncSession, *, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, *, email: str) -> User | None:
    stmt = select(User).where(col(User.email) == normalize_email(email))
    return (await session.exec(stmt)).one_or_none()


async def delete_user(session: AsyncSession, *, user_id: int) -> bool:
    """The user and everything theirs (credentials, tokens, scans and their findings: the
    foreign keys cascade). False if there was no such user."""
    user = await session.get(User, user_id)
    if user is None:
        return False
    await session.delete(user)
    await session.commit()
    return True


async def set_locale(session: AsyncSession, *, user_id: int, locale: str | None) -> bool:
    """Records the language the user chose for pages (None: the browser's again). False if
    there is no such user."""
    user = await session.get(User, user_id)
    if user is None:
        return False
    user.locale = locale
    session.add(user)
    await session.commit()
    return True
