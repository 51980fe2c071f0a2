"""Pure rules of the affiliate program: REF IDs, the first-landing cookie, the 90-day window,
the unique-visitor hash, self-referral."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from itsdangerous import BadSignature, Signer

from affiliates import messages

# REF IDs: 10 characters of an alphabet without look-alikes (0/O, 1/I/L): 31**10 ≈ 2**49
# values drawn by `secrets`, so a REF ID says nothing about the account and cannot be guessed
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REF_LENGTH = 10
REF_RE = re.compile(rf"^[{REF_ALPHABET}]{{{REF_LENGTH}}}$")
ATTRIBUTION_WINDOW = timedelta(days=90)
COOKIE = "ccbb_ref"
COOKIE_MAX_AGE = int(ATTRIBUTION_WINDOW.total_seconds())
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
WEBSITE_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def new_ref_id() -> str:
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(REF_LENGTH))


def normalize_ref(value: str) -> str | None:
    """The REF ID in ``value`` (case-insensitive), None when it cannot be one."""
    ref = value.strip().upper()
    return ref if REF_RE.match(ref) else None


@dataclass(frozen=True)
class Landing:
    """What the first-landing cookie holds: whose link, when, and who was logged in then."""

    ref_id: str
    landed_at: datetime
    session_user_id: int | None = None


def _signer(secret: str) -> Signer:
    return Signer(secret, salt="ccbb affiliate landing")


def landing_cookie(secret: str, landing: Landing) -> str:
    uid = "" if landing.session_user_id is None else str(landing.session_user_id)
    value = f"{landing.ref_id}.{int(landing.landed_at.timestamp())}.{uid}"
    return _signer(secret).sign(value).decode()


def read_landing(secret: str, cookie: str | None) -> Landing | None:
    """The landing a cookie records; None when absent, forged or malformed."""
    if not cookie:
        return None
    try:
        value = _signer(secret).unsign(cookie).decode()
    except BadSignature:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    uid = int(parts[2]) if parts[2].isdigit() else None
    return Landing(parts[0], datetime.fromtimestamp(int(parts[1]), UTC), uid)


def within_window(landed_at: datetime, now: datetime) -> bool:
    """A sign-up counts for the landing's affiliate within 90 days of it, to the second."""
    return landed_at <= now <= landed_at + ATTRIBUTION_WINDOW


def visitor_hash(secret: str, *, ip: str, user_agent: str, day: date) -> str:
    """The visitor of a day as a keyed hash (HMAC-SHA256): the IP address is never stored, and
    without the key the hash cannot be tested against guessed addresses."""
    message = f"{day.isoformat()}|{ip}|{user_agent}".encode()
    key = hashlib.sha256(f"ccbb affiliate visitors|{secret}".encode()).digest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def self_referral(
    *,
    affiliate_user_id: int,
    affiliate_email: str,
    paypal_email: str,
    user_id: int,
    user_email: str,
    landing_user_id: int | None,
) -> str | None:
    """Why the referral of ``user_id`` is the affiliate's own (None: it is not)."""
    if user_id == affiliate_user_id:
        return messages.SELF_SAME_ACCOUNT
    email = user_email.strip().lower()
    if email in (affiliate_email.strip().lower(), paypal_email.strip().lower()):
        return messages.SELF_SAME_EMAIL
    if landing_user_id is not None and landing_user_id == affiliate_user_id:
        return messages.SELF_SAME_BROWSER
    return None


def join_problems(
    *, adult: bool, accept_terms: bool, paypal_email: str, website: str
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not adult:
        errors["adult"] = messages.NOT_ADULT
    if not accept_terms:
        errors["accept_terms"] = messages.NO_TERMS
    if not EMAIL_RE.match(paypal_email.strip()):
        errors["paypal_email"] = messages.BAD_PAYPAL
    if website.strip() and not WEBSITE_RE.match(website.strip()):
        errors["website"] = messages.BAD_WEBSITE
    return errors
