"""ccbb.schedule_rules.next_due, table-tested, daylight-saving changes included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccbb.schedule_rules import Rule, describe, next_due, problems

CASES = [
    # (rule, after (UTC), expected (UTC))
    (Rule("daily", hour=6), "2026-03-03T05:00", "2026-03-03T06:00"),
    (Rule("daily", hour=6), "2026-03-03T06:00", "2026-03-04T06:00"),  # strictly after
    (Rule("daily", hour=6, time_zone="Europe/Paris"), "2026-03-03T04:00", "2026-03-03T05:00"),
    # Paris goes to summer time on 29 March 2026: 06:00 local is 04:00 UTC from then on
    (Rule("daily", hour=6, time_zone="Europe/Paris"), "2026-03-28T06:00", "2026-03-29T04:00"),
    # 02:00 does not exist on that day in Paris: zoneinfo takes it as 03:00 local (01:00 UTC)
    (Rule("daily", hour=2, time_zone="Europe/Paris"), "2026-03-28T12:00", "2026-03-29T01:00"),
    (Rule("weekly", weekday=0, hour=9), "2026-03-03T00:00", "2026-03-09T09:00"),  # a Tuesday
    (Rule("weekly", weekday=1, hour=9), "2026-03-03T08:00", "2026-03-03T09:00"),
    (Rule("weekly", weekday=1, hour=9), "2026-03-03T09:30", "2026-03-10T09:00"),
    (Rule("monthly", day_of_month=28, hour=0), "2026-02-28T00:00", "2026-03-28T00:00"),
    (Rule("monthly", day_of_month=1, hour=0), "2026-12-15T00:00", "2027-01-01T00:00"),
    (Rule("monthly", day_of_month=5, hour=23, time_zone="America/New_York"),
     "2026-03-01T00:00", "2026-03-06T04:00"),
    # Tokyo is UTC+9: 06:00 on the 3rd there is 21:00 UTC on the 2nd
    (Rule("monthly", day_of_month=3, hour=6, time_zone="Asia/Tokyo"),
     "2026-03-01T00:00", "2026-03-02T21:00"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "after", "expected"), CASES)
def test_next_due(rule: Rule, after: str, expected: str) -> None:
    at = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert next_due(rule, at) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_off_is_never_due() -> None:
    assert next_due(Rule("off"), datetime(2026, 3, 3, tzinfo=UTC)) is None


def test_problems_say_what_to_choose() -> None:
    assert problems(Rule("daily", time_zone="Europe/Paris")) == {}
    bad = problems(Rule("hourly", weekday=7, day_of_month=31, hour=24, time_zone="Mars/Base"))
    assert set(bad) == {"frequency", "weekday", "day_of_month", "hour", "time_zone"}
    assert "Europe/Paris" in bad["time_zone"] and "1 to 28" in bad["day_of_month"]


def test_describe() -> None:
    assert describe(Rule("weekly", weekday=0, hour=6, time_zone="Europe/Paris")) == (
        "every Monday at 06:00 (Europe/Paris)"
    )
