"""When a scheduled site is due next. Pure: the clock is an argument.

A schedule is off, daily, weekly (on a weekday, 0 = Monday) or monthly (on a day 1–28, so
every month has it) at an hour of the user's time zone (an IANA name, read with zoneinfo).
Across a daylight-saving change the hour stays the local hour; an hour that does not exist
that day (clocks jump forward) is taken as zoneinfo resolves it (an hour later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ccbb.marks import N_

FREQUENCIES = ("off", "daily", "weekly", "monthly")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# user-facing messages (plain English, one place; the API says them so)
BAD_FREQUENCY = N_("Choose off, daily, weekly or monthly.")
BAD_HOUR = N_("Choose an hour from 0 to 23.")
BAD_WEEKDAY = N_("Choose a weekday from 0 (Monday) to 6 (Sunday).")
BAD_DAY = N_("Choose a day of the month from 1 to 28 (every month has it).")
BAD_ZONE = N_("Unknown time zone “{zone}”: write it as Europe/Paris, America/New_York or UTC.")


@dataclass(frozen=True, slots=True)
class Rule:
    frequency: str = "off"
    weekday: int = 0
    day_of_month: int = 1
    hour: int = 6
    time_zone: str = "UTC"


def problems(rule: Rule) -> dict[str, str]:
    """What is wrong with a rule, per field (empty: it is valid)."""
    out: dict[str, str] = {}
    if rule.frequency not in FREQUENCIES:
        out["frequency"] = BAD_FREQUENCY
    if not 0 <= rule.hour <= 23:
        out["hour"] = BAD_HOUR
    if not 0 <= rule.weekday <= 6:
        out["weekday"] = BAD_WEEKDAY
    if not 1 <= rule.day_of_month <= 28:
        out["day_of_month"] = BAD_DAY
    try:
        ZoneInfo(rule.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        out["time_zone"] = BAD_ZONE.format(zone=rule.time_zone)
    return out


def next_due(rule: Rule, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (aware), in UTC; None when off."""
    if rule.frequency == "off":
        return None
    zone = ZoneInfo(rule.time_zone)
    local = after.astimezone(zone)
    day = local.date()
    for _ in range(400):  # at most a month and a bit of candidate days
        if _matches(rule, day):
            at = datetime.combine(day, time(rule.hour), tzinfo=zone).astimezone(UTC)
            if at > after:
                return at
        day = _next_candidate(rule, day)
    raise AssertionError("no due time found")  # unreachable for a valid rule


def _matches(rule: Rule, day: date) -> bool:
    if rule.frequency == "weekly":
        return day.weekday() == rule.weekday
    if rule.frequency == "monthly":
        return day.day == rule.day_of_month
    return True


def _next_candidate(rule: Rule, day: date) -> date:
    if rule.frequency == "weekly":
        return day + timedelta(days=(rule.weekday - day.weekday() - 1) % 7 + 1)
    if rule.frequency == "monthly":
        first = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        return (
            first.replace(day=rule.day_of_month)
            if day.day >= rule.day_of_month
            else (day.replace(day=rule.day_of_month))
        )
    return day + timedelta(days=1)


def describe(rule: Rule) -> str:
    """``"every Monday at 06:00 (Europe/Paris)"``."""
    at = f"at {rule.hour:02d}:00 ({rule.time_zone})"
    if rule.frequency == "daily":
        return f"every day {at}"
    if rule.frequency == "weekly":
        return f"every {WEEKDAYS[rule.weekday]} {at}"
    if rule.frequency == "monthly":
        return f"on day {rule.day_of_month} of every month {at}"
    return "off"
