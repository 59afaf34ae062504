"""Each team's calendar: "today" is the team's local date, in Python and in SQL."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from teams.models import Team
from teams.selectors import file_date, on_team_date, team_dates
from tests.factories import MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db

# 23:30 UTC on 14 December: the 15th in Tokyo, the 14th in New York.
NOW = datetime.fromisoformat("2026-12-14T23:30:00+00:00")


@pytest.fixture
def teams():
    return {
        "tokyo": TeamFactory(name="East", slug="east", time_zone="Asia/Tokyo"),
        "new_york": TeamFactory(name="West", slug="west", time_zone="America/New_York"),
        "auckland": TeamFactory(name="South", slug="south", time_zone="Pacific/Auckland"),
    }


def test_a_teams_today_is_its_local_date(teams):
    assert teams["tokyo"].today(NOW) == date(2026, 12, 15)
    assert teams["new_york"].today(NOW) == date(2026, 12, 14)


def test_team_dates_are_the_users_teams_dates(teams, member, django_assert_num_queries):
    user = member(teams["tokyo"])
    MembershipFactory(team=teams["new_york"], user=user)
    with django_assert_num_queries(1):
        dates = team_dates(user, NOW)
        assert team_dates(user, NOW) == dates  # cached with the roles: no second query
    assert dates == {
        teams["tokyo"].pk: date(2026, 12, 15),
        teams["new_york"].pk: date(2026, 12, 14),
    }
    assert file_date(dates, NOW) == date(2026, 12, 15)
    assert file_date({}, NOW) == date(2026, 12, 14)


def test_in_sql_each_row_gets_its_own_teams_date(teams):
    dates = {t.pk: t.today(NOW) for t in teams.values()}
    rows = Team.objects.annotate(today=on_team_date(dates, "id")).values_list("slug", "today")
    assert dict(rows) == {
        "east": date(2026, 12, 15),
        "west": date(2026, 12, 14),
        "south": date(2026, 12, 15),
    }


def test_in_sql_teams_that_share_a_date_get_a_constant(teams):
    expression = on_team_date({teams["tokyo"].pk: date(2026, 12, 15)}, "id")
    assert expression.value == date(2026, 12, 15)
    rows = Team.objects.annotate(today=expression).values_list("today", flat=True)
    assert set(rows) == {date(2026, 12, 15)}
