"""The web process's signing secret (session cookies, CSRF, links in mails) and the signed,
time-limited tokens of those links (itsdangerous)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ccbb.settings import Settings


def session_secret(settings: Settings) -> str:
    """Signs session cookies: derived from CCBB_SECRET_KEY, else a key kept in the data dir."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().encode()
        return hmac.new(key, b"ccbb session cookies", hashlib.sha256).hexdigest()
    path = settings.data_dir / "session.key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    """Tokens signed for one ``purpose`` (a confirmation token is no reset token)."""
    return URLSafeTimedSerializer(session_secret(settings), salt=f"ccbb {purpose}")


def sign(settings: Settings, purpose: str, payload: Any) -> str:
    return serializer(settings, purpose).dumps(payload)


def unsign(settings: Settings, purpose: str, token: str, max_age: int) -> Any | None:
    """The payload, or None when the token is forged, for another purpose, or older than
    ``max_age`` seconds."""
    try:
        return serializer(settings, purpose).loads(token, max_age=max_age)
    except BadSignature:  # SignatureExpired is one
        return None
