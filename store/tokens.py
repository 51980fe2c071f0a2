"""Personal API tokens: made here, shown to their owner once, kept only as a SHA-256.

A token is 32 random bytes (``ccbb_`` + URL-safe base64), so a fast hash is enough: nobody
can guess one to match a stolen hash (as GitHub does for its tokens). Looking one up is a
single indexed query on the hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import ApiToken, User, utcnow

TOKEN_PREFIX = "ccbb_"  # noqa: S105 (not a secret: marks our tokens)
MAX_TOKENS = 20
# last_used_at is written at most this often per token (not on every request)
TOUCH_EVERY = timedelta(minutes=5)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(session: AsyncSession, *, user_id: int, name: str) -> tuple[ApiToken, str]:
    """A new token for the user: (its row, the token itself — show it once, then forget it)."""
    token = new_token()
    row = ApiToken(
        user_id=user_id,
        name=name.strip(),
        prefix=token[: len(TOKEN_PREFIX) + 4],
        token_hash=hash_token(token),
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row, token


async def list_tokens(session: AsyncSession, *, user_id: int) -> list[ApiToken]:
    stmt = select(ApiToken).where(col(ApiToken.user_id) == user_id).order_by(col(ApiToken.id))
    return list((await session.exec(stmt)).all())


async def revoke_token(session: AsyncSession, *, token_id: int, user_id: int) -> bool:
    """Deletes the user's token; False if there is none such (or it is someone else's)."""
    row = await session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:
        return False
    await session.delete(row)
    await session.commit()
    return True


async def revoke_all_tokens(session: AsyncSession, *, user_id: int) -> int:
    """Deletes every token of the user; how many there were."""
    rows = await list_tokens(session, user_id=user_id)
    for row in rows:
        await session.delete(row)
    await session.commit()
    return len(rows)


async def user_for_token(session: AsyncSession, *, token: str) -> User | None:
    """The owner of ``token``, or None (unknown or revoked). Notes when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = (
        await session.exec(select(ApiToken).where(col(ApiToken.token_hash) == hash_token(token)))
    ).one_or_none()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        row.last_used_at = now
        session.add(row)
        await session.commit()
    return await session.get(User, row.user_id)
