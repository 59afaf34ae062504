"""A team's calendar: clinical dates are judged on the team's date, not the server's."""

from __future__ import annotations

from datetime import UTC, date, datetime

from teams.models import Team


def test_today_is_the_teams_calendar_date():
    now = datetime(2026, 11, 24, 11, 30, tzinfo=UTC)
    assert Team(time_zone="Pacific/Auckland").today(now) == date(2026, 11, 25)
    assert Team(time_zone="Europe/Berlin").today(now) == date(2026, 11, 24)
    assert Team(time_zone="America/Los_Angeles").today(now) == date(2026, 11, 24)
    early = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert Team(time_zone="America/Los_Angeles").today(early) == date(2026, 11, 23)
