"""Payout dates against a table written by hand from a 2026 calendar and the US federal
holidays (weekends, holidays, a holiday next to a weekend, the year's end)."""

from __future__ import annotations

from datetime import date

import pytest

from affiliates.payout_dates import is_payout_date, next_payout_date, payout_dates

# (the 10th or 25th, the day it is paid, why)
US_2026 = [
    (date(2026, 1, 10), date(2026, 1, 12), "Saturday"),
    (date(2026, 1, 25), date(2026, 1, 26), "Sunday"),
    (date(2026, 2, 10), date(2026, 2, 10), "Tuesday"),
    (date(2026, 2, 25), date(2026, 2, 25), "Wednesday"),
    (date(2026, 3, 10), date(2026, 3, 10), "Tuesday"),
    (date(2026, 3, 25), date(2026, 3, 25), "Wednesday"),
    (date(2026, 4, 10), date(2026, 4, 10), "Friday"),
    (date(2026, 4, 25), date(2026, 4, 27), "Saturday"),
    (date(2026, 5, 10), date(2026, 5, 11), "Sunday"),
    (date(2026, 5, 25), date(2026, 5, 26), "Memorial Day (Monday)"),
    (date(2026, 6, 10), date(2026, 6, 10), "Wednesday"),
    (date(2026, 6, 25), date(2026, 6, 25), "Thursday"),
    (date(2026, 7, 10), date(2026, 7, 10), "Friday"),
    (date(2026, 7, 25), date(2026, 7, 27), "Saturday"),
    (date(2026, 8, 10), date(2026, 8, 10), "Monday"),
    (date(2026, 8, 25), date(2026, 8, 25), "Tuesday"),
    (date(2026, 9, 10), date(2026, 9, 10), "Thursday"),
    (date(2026, 9, 25), date(2026, 9, 25), "Friday"),
    (date(2026, 10, 10), date(2026, 10, 13), "Saturday, then Columbus Day (Monday)"),
    (date(2026, 10, 25), date(2026, 10, 26), "Sunday"),
    (date(2026, 11, 10), date(2026, 11, 10), "Tuesday"),
    (date(2026, 11, 25), date(2026, 11, 25), "Wednesday (Thanksgiving is the 26th)"),
    (date(2026, 12, 10), date(2026, 12, 10), "Thursday"),
    (date(2026, 12, 25), date(2026, 12, 28), "Christmas (Friday), then the weekend"),
]


def test_a_whole_year_of_us_payout_dates() -> None:
    assert payout_dates(2026, "US") == [paid for _, paid, _ in US_2026]


@pytest.mark.parametrize(("today", "expected"), [
    (date(2026, 1, 1), date(2026, 1, 12)),
    (date(2026, 1, 12), date(2026, 1, 12)),
    (date(2026, 1, 13), date(2026, 1, 26)),
    (date(2026, 10, 10), date(2026, 10, 13)),
    (date(2026, 10, 12), date(2026, 10, 13)),
    (date(2026, 12, 25), date(2026, 12, 28)),
    (date(2026, 12, 29), date(2027, 1, 11)),  # 10 January 2027 is a Sunday
    (date(2026, 2, 28), date(2026, 3, 10)),
])  # fmt: skip
def test_next_payout_date(today: date, expected: date) -> None:
    assert next_payout_date(today, "US") == expected


def test_only_payout_dates_are_payout_dates() -> None:
    assert is_payout_date(date(2026, 12, 28), "US")
    assert not is_payout_date(date(2026, 12, 25), "US")
    assert not is_payout_date(date(2026, 1, 10), "US")


def test_the_country_decides_the_holidays() -> None:
    # 14 July (Bastille Day) is no US holiday; 4 July 2026 is a Saturday for both
    assert next_payout_date(date(2026, 7, 1), "FR") == date(2026, 7, 10)
    # 11 November 2026 (Armistice, FR; Veterans Day, US) is not a payout day anyway
    assert payout_dates(2026, "FR")[9] == date(2026, 5, 26)  # 25 May 2026: Whit Monday


def test_an_unknown_payout_country_is_refused_with_what_to_write() -> None:
    from pydantic import ValidationError

    from ccbb.settings import Settings

    with pytest.raises(ValidationError, match="use an ISO 3166 code such as US"):
        Settings(CCBB_PAYOUT_COUNTRY="Narnia")  # type: ignore[call-arg]
    assert Settings(CCBB_PAYOUT_COUNTRY="fr").payout_country == "FR"  # type: ignore[call-arg]
