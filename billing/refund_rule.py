"""Who may ask for a refund (FAQ): within 7 days of creating the account, or later if no scan
was ever started. Pure; the Billing page shows the button only then, and the server asks again."""

from __future__ import annotations

from datetime import datetime, timedelta

REFUND_WINDOW = timedelta(days=7)


def refund_allowed(*, account_created: datetime, now: datetime, scan_started: bool) -> bool:
    """Day 7 (up to 7 × 24 hours after the account was made) still may; day 8 only without a
    scan."""
    return not scan_started or now - account_created <= REFUND_WINDOW
