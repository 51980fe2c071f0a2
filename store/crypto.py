"""Users' Amazon secrets, encrypted at rest with the server key (Fernet: AES-128-CBC + HMAC).

The key is ``CCBB_SECRET_KEY``: a Fernet key (``Fernet.generate_key()``), or any passphrase of
at least 32 characters (a key is derived from it). Several keys separated by commas rotate:
the first encrypts, all decrypt. Without it (embedded mode) a key is made on first use in
``data_dir/secret.key``, readable by its owner only. Losing the key loses the stored secrets
(users enter them again); nothing here ever logs a secret or a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from ccbb.settings import Settings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
MIN_PASSPHRASE = 32
_MASK = "••••••••"


class SecretKeyError(Exception):
    """The server key is missing, malformed, or not the one the secrets were encrypted with."""


def mask(secret: str | None) -> str:
    """``••••••••``: says a secret is there, shows none of its characters (nor its length)."""
    return _MASK


class SecretBox:
    """Encrypts and decrypts short secrets (text in, ASCII token out)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no server key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def __repr__(self) -> str:
        return "<SecretBox>"

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box for ``CCBB_SECRET_KEY``, or for the key file of the data directory."""
        if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
            return cls.from_key(settings.secret_key.get_secret_value())
        return cls([_key_file(settings.data_dir)])

    @classmethod
    def from_key(cls, value: str) -> SecretBox:
        """From ``CCBB_SECRET_KEY``'s text: comma-separated Fernet keys or passphrases."""
        return cls([_parse_key(part.strip()) for part in value.split(",") if part.strip()])

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(
                "a stored secret cannot be decrypted with the server key: CCBB_SECRET_KEY (or "
                "data/secret.key) changed since it was saved; restore the old key (add it after "
                "the new one, comma-separated) or have the user enter the secret again"
            ) from None


def _parse_key(value: str) -> bytes:
    raw = value.encode("utf-8")
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (binascii.Error, ValueError):
        pass
    if len(value) < MIN_PASSPHRASE:
        raise SecretKeyError(
            f"CCBB_SECRET_KEY is neither a Fernet key nor a passphrase of at least "
            f'{MIN_PASSPHRASE} characters: generate one with python -c "from '
            'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    digest = hashlib.sha256(b"ccbb secret box\0" + raw).digest()
    return base64.urlsafe_b64encode(digest)


def _key_file(data_dir: Path) -> bytes:
    """The key kept in ``data_dir/secret.key`` (mode 0600), made by the first process that
    needs it; processes racing to make it all end up with the same key."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key() + b"\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)  # atomic, and fails if another process won the race
                log.info("made a new server key in %s", path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users: chmod 600 it", path)
    key = path.read_bytes().strip()
    try:
        return _parse_key(key.decode("ascii"))
    except (SecretKeyError, UnicodeError):
        raise SecretKeyError(f"{path} does not hold a valid key: restore it") from None
