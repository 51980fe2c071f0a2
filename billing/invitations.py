"""The invitation a buyer without an account gets: a signed, expiring, single-use link to set a
password. It is mailed (``ccbb.clickbank_mails``, through ``notify/``); on a server without
SMTP it is written to the console log (:func:`send_invitation`)."""

from __future__ import annotations

import logging
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger(__name__)

SALT = "ccbb clickbank invitation"
MAX_AGE = 14 * 24 * 3600
WELCOME_PATH = "/clickbank/welcome/"


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def make_token(secret: str, *, user_id: int, password_hash: str) -> str:
    """Signed with the app's signing secret; it names (the end of) the current password hash,
    which changes the moment the password is set: used once, it is spent."""
    return str(_serializer(secret).dumps({"u": user_id, "p": password_hash[-16:]}))


def read_token(secret: str, token: str) -> tuple[int, str] | None:
    """(user id, password-hash stamp) of a valid token, else None."""
    try:
        data: Any = _serializer(secret).loads(token, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    return int(data["u"]), str(data.get("p", ""))


def send_invitation(*, email: str, link: str) -> None:
    """The invitation on the console: for a server without SMTP (CCBB_SMTP_HOST unset)."""
    log.warning("INVITATION to set a password, for %s: %s", email, link)
