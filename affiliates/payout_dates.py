"""When affiliates are paid: the 10th and the 25th of each month, moved to the next business
day when that day is a Saturday, a Sunday or a public holiday of the payout country (the
``holidays`` library's calendar). Pure functions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from functools import lru_cache

import holidays

PAYOUT_DAYS = (10, 25)


@lru_cache(maxsize=64)
def _calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=[year, year + 1])


def is_business_day(day: date, country: str) -> bool:
    return day.weekday() < 5 and day not in _calendar(country, day.year)


def next_business_day(day: date, country: str) -> date:
    """``day`` itself when it is a business day, else the first one after it."""
    while not is_business_day(day, country):
        day += timedelta(days=1)
    return day


def payout_dates(year: int, country: str) -> list[date]:
    """The 24 payout dates of ``year`` (a December 25th may move into the next year)."""
    return [
        next_business_day(date(year, month, d), country)
        for month in range(1, 13)
        for d in PAYOUT_DAYS
    ]


def _upcoming(start: date, country: str) -> Iterator[date]:
    for year in (start.year - 1, start.year, start.year + 1):
        yield from payout_dates(year, country)


def next_payout_date(today: date, country: str) -> date:
    """The first payout date on or after ``today``."""
    return min(d for d in _upcoming(today, country) if d >= today)


def is_payout_date(today: date, country: str) -> bool:
    return next_payout_date(today, country) == today
