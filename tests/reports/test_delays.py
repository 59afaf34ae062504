"""Delay statistics for the dashboard summary: medians and 90th percentiles computed by
the database (percentile_cont on PostgreSQL, sorted values + the same interpolation on
SQLite), against hand-computed values."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.utils import timezone

from courses import services
from reports.delays import DelayStat, delay_statistics, percentile_cont
from teams.models import Role, Team
from teams.selectors import teams_for
from tests.reports.conftest import read_queries

pytestmark = pytest.mark.django_db

LATE = {"relapse_date": date(2024, 8, 1)}  # group B: no HSCT indicated
YEAR_2026 = {"started_from": date(2026, 1, 1), "started_to": date(2026, 12, 31)}


def at(time_machine, day: str) -> None:
    time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)


def block(course, actor, block_type: str, on: str) -> None:
    services.block_record(
        course,
        data={"block_type": block_type, "start_date": date.fromisoformat(on)},
        actor=actor,
        now=timezone.now(),
    )


def assessment(course, actor, on: str, cr2: bool) -> None:
    services.assessment_record(
        course,
        data={
            "assessed_on": date.fromisoformat(on),
            "marrow": "M1" if cr2 else "M2",
            "cr2": cr2,
            "em_status": "none",
        },
        actor=actor,
        now=timezone.now(),
    )


def referral(course, actor, **dates: str) -> None:
    services.referral_save(
        course,
        data={k: date.fromisoformat(v) for k, v in dates.items()},
        actor=actor,
        now=timezone.now(),
    )


@pytest.fixture
def cohort(time_machine, team, other_team, clinician, member, make_course, sweep):
    """Group A courses (HSCT indicated) started in 2026:

    course  start       referral (days)  first CR2 -> transplant (days)  blocks (delay)
    D1      2026-01-05  01-15 (10)       02-20 -> 05-01 (70)             R2 01-07 (+2),
                                                                         R1 01-28 (+2)
    D2      2026-02-02  02-06 (4)        -                               R2 02-02 (0),
                                                                         R1 03-05 (+10)
    D3      2026-03-02  03-30 (28)       04-20 -> 07-09 (80)             R2 03-01 (-1),
                                                                         R1 03-22 (-1)

    (A block's delay is counted from its planned day, the course start + 21 days for R1.
    D1 and D3 have both induction blocks: CR2 is judged no earlier than the end of
    induction, R1 + 5 days.)

    Not counted: D4 started 2025-12-01 (out of range; referral 100 days, block +5);
    a group B course (no HSCT indicated) referred after 39 days; another team's course.
    Hand-computed: referral [4, 10, 28] -> median 10, p90 10 + 0.8 * 18 = 24.4;
    CR2 -> transplant [70, 80] -> median 75, p90 79; blocks [-1, -1, 0, 2, 2, 10] ->
    median 1, p90 2 + 0.5 * 8 = 6."""
    at(time_machine, "2025-12-01")
    d4 = make_course(team, clinician)
    at(time_machine, "2025-12-06")
    block(d4, clinician, "R2", "2025-12-06")
    at(time_machine, "2026-03-11")
    referral(d4, clinician, referred_on="2026-03-11")

    at(time_machine, "2026-01-05")
    d1 = make_course(team, clinician)
    foreign_user = member(other_team, Role.COORDINATOR)
    foreign = make_course(other_team, foreign_user)
    at(time_machine, "2026-01-07")
    block(d1, clinician, "R2", "2026-01-07")
    block(foreign, foreign_user, "R2", "2026-01-07")
    at(time_machine, "2026-01-15")
    referral(d1, clinician, referred_on="2026-01-15")
    at(time_machine, "2026-01-28")
    block(d1, clinician, "R1", "2026-01-28")
    at(time_machine, "2026-02-20")
    assessment(d1, clinician, "2026-02-20", cr2=True)
    referral(foreign, foreign_user, referred_on="2026-02-20")
    at(time_machine, "2026-05-01")
    referral(d1, clinician, performed_on="2026-05-01")

    at(time_machine, "2026-02-02")
    d2 = make_course(team, clinician)
    block(d2, clinician, "R2", "2026-02-02")
    at(time_machine, "2026-02-06")
    referral(d2, clinician, referred_on="2026-02-06")
    at(time_machine, "2026-03-05")
    block(d2, clinician, "R1", "2026-03-05")

    at(time_machine, "2026-03-02")
    d3 = make_course(team, clinician)
    chemo = make_course(team, clinician, **LATE)
    block(d3, clinician, "R2", "2026-03-01")
    at(time_machine, "2026-03-22")
    block(d3, clinician, "R1", "2026-03-22")
    at(time_machine, "2026-03-30")
    referral(d3, clinician, referred_on="2026-03-30")
    at(time_machine, "2026-04-01")
    assessment(d3, clinician, "2026-04-01", cr2=False)
    at(time_machine, "2026-04-10")
    referral(chemo, clinician, referred_on="2026-04-10")
    at(time_machine, "2026-04-20")
    assessment(d3, clinician, "2026-04-20", cr2=True)
    at(time_machine, "2026-05-01")
    assessment(d3, clinician, "2026-05-01", cr2=True)
    at(time_machine, "2026-07-09")
    referral(d3, clinician, performed_on="2026-07-09")
    at(time_machine, "2026-11-24")
    assert (d1.hsct_indicated, chemo.hsct_indicated) == (True, False)
    sweep()  # the periodic sweep keeps the summary's counters
    return {"d1": d1, "d2": d2, "d3": d3, "d4": d4}


def test_delays_match_hand_computed_values(team, cohort):
    stats = delay_statistics(Team.objects.filter(pk=team.pk), **YEAR_2026)
    assert stats.hsct_referral == DelayStat(count=3, median_days=10.0, p90_days=24.4)
    assert stats.cr2_to_transplant == DelayStat(count=2, median_days=75.0, p90_days=79.0)
    assert stats.block_delay == DelayStat(count=6, median_days=1.0, p90_days=6.0)


def test_the_date_range_selects_courses_by_start_date_inclusively(team, cohort):
    teams = [team.pk]
    only_d4 = delay_statistics(teams, started_from=date(2025, 12, 1), started_to=date(2025, 12, 1))
    assert only_d4.hsct_referral == DelayStat(count=1, median_days=100.0, p90_days=100.0)
    assert only_d4.block_delay == DelayStat(count=1, median_days=5.0, p90_days=5.0)
    assert only_d4.cr2_to_transplant == DelayStat(count=0, median_days=None, p90_days=None)
    everything = delay_statistics(teams)
    assert everything.hsct_referral.count == 4
    assert everything.block_delay.count == 7


def test_another_teams_courses_are_not_counted(other_team, member, cohort):
    outsider = member(other_team, Role.VIEWER)
    stats = delay_statistics(teams_for(outsider), **YEAR_2026)
    # The other team's one course: referral after 46 days, block on time.
    assert stats.hsct_referral == DelayStat(count=1, median_days=46.0, p90_days=46.0)
    assert stats.block_delay == DelayStat(count=1, median_days=2.0, p90_days=2.0)
    assert delay_statistics([], **YEAR_2026).as_dict() == {
        "hsct_referral": {"count": 0, "median_days": None, "p90_days": None},
        "cr2_to_transplant": {"count": 0, "median_days": None, "p90_days": None},
        "block_delay": {"count": 0, "median_days": None, "p90_days": None},
    }


def test_delay_statistics_cost_one_query_whatever_the_cohort(
    team, clinician, make_course, cohort, django_assert_num_queries, time_machine, sweep
):
    teams = Team.objects.filter(pk=team.pk)
    with django_assert_num_queries(read_queries(1)):
        delay_statistics(teams, **YEAR_2026)
    at(time_machine, "2026-06-01")
    for _ in range(4):
        course = make_course(team, clinician)
        referral(course, clinician, referred_on="2026-06-01")
        block(course, clinician, "R2", "2026-06-01")
    at(time_machine, "2026-11-24")
    sweep()
    with django_assert_num_queries(read_queries(1)):
        stats = delay_statistics(teams, **YEAR_2026)
    assert stats.hsct_referral.count == 7
    assert stats.block_delay.count == 10


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7], 0.9, 7.0),
        ([4, 10, 28], 0.5, 10.0),
        ([4, 10, 28], 0.9, 24.4),
        ([-1, 0, 2, 10], 0.5, 1.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9.1),
    ],
)
def test_percentile_cont_interpolates_like_postgresql(values, fraction, expected):
    result = percentile_cont(values, fraction)
    assert result == (None if expected is None else pytest.approx(expected))
