"""Users' Amazon Creators API credentials; the Credential Secret is stored encrypted
(:class:`store.crypto.SecretBox`) and only decrypted when a scan needs it."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.crypto import SecretBox
from store.models import AmazonCredential


async def create_credential(
    session: AsyncSession,
    *,
    box: SecretBox,
    user_id: int,
    credential_id: str,
    secret: str,
    version: str = "2.1",
    country: str = "US",
    partner_tag: str = "",
    label: str = "",
    tps: float = 1.0,
) -> AmazonCredential:
    credential = AmazonCredential(
        user_id=user_id,
        tps=tps,
        label=label,
        credential_id=credential_id.strip(),
        secret_encrypted=box.encrypt(secret.strip()),
        version=version.strip(),
        country=country.strip().upper(),
        partner_tag=partner_tag.strip(),
    )
    session.add(credential)
    await session.commit()
    await session.refresh(credential)
    return credential


async def get_credential(
    session: AsyncSession, *, credential_id: int | None, user_id: int | None = None
) -> AmazonCredential | None:
    """By row id; None if absent (or ``credential_id`` is None) or, when ``user_id`` is given,
    someone else's."""
    if credential_id is None:
        return None
    credential = await session.get(AmazonCredential, credential_id)
    if credential is None or (user_id is not None and credential.user_id != user_id):
        return None
    return credential


async def list_credentials(session: AsyncSession, *, user_id: int) -> list[AmazonCredential]:
    stmt = (
        select(AmazonCredential)
        .where(col(AmazonCredential.user_id) == user_id)
        .order_by(col(AmazonCredential.id))
    )
    return list((await session.exec(stmt)).all())


async def delete_credential(session: AsyncSession, *, credential_id: int, user_id: int) -> bool:
    """Scans that used it keep their results (their credential_id becomes null)."""
    credential = await get_credential(session, credential_id=credential_id, user_id=user_id)
    if credential is None:
        return False
    await session.delete(credential)
    await session.commit()
    return True


def reveal_secret(credential: AmazonCredential, *, box: SecretBox) -> str:
    """The plain Credential Secret, for the worker that builds an AmazonAccess. Never log it.
    Raises store.crypto.SecretKeyError if the server key changed."""
    return box.decrypt(credential.secret_encrypted)
