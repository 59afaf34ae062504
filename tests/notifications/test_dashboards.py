"""The dashboards' precomputed state (notifications.dashboards): who keeps it current,
and when. tests/reports/test_precomputed_state.py checks its answers against a
from-scratch computation over random histories; these name the maintenance points."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses import services as course_services
from courses.models import StepStatus
from notifications import services
from notifications.models import (
    EVERY_START,
    Alert,
    AlertKind,
    CourseAttention,
    SummaryCounter,
)
from tests.factories import TeamFactory
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(clock, team, clinician, make_course):  # noqa: ANN001, ANN201
    return make_course(team, clinician)  # group A: HSCT indicated


def attention(course) -> CourseAttention:  # noqa: ANN001
    return CourseAttention.objects.select_related("next_step").get(course=course)


def test_the_sweep_writes_a_row_per_course_needing_attention(clock, sweep, course):
    clock("2026-12-08")
    sweep()
    row = attention(course)
    alerts = Alert.objects.filter(course=course)
    assert row.all_open_alerts == row.open_alerts == alerts.count()
    assert -row.priority == 3  # high, not escalated
    assert row.oldest_since == min(a.condition_since for a in alerts)
    first_open = course.steps.filter(status=StepStatus.PLANNED).order_by("due_on", "sequence")[0]
    assert row.next_step == first_open and row.team_id == course.patient.team_id


def test_each_alert_action_refreshes_its_course_at_once(clock, sweep, course, clinician):
    clock("2026-12-08")
    sweep()
    referral = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)[0]
    services.alert_snooze(
        referral, actor=clinician, until=date(2026, 12, 12), reason="letter", now=timezone.now()
    )
    row = attention(course)
    assert row.open_alerts == row.all_open_alerts - 1 and -row.priority == 2
    assert row.wake_on == date(2026, 12, 12)
    services.alert_resolve(referral, actor=clinician, reason="phoned", now=timezone.now())
    row = attention(course)
    assert row.all_open_alerts == row.open_alerts and row.wake_on is None


def test_a_snoozed_alert_returns_with_the_first_sweep_on_its_date(clock, sweep, course, clinician):
    clock("2026-12-08")
    sweep()
    for alert in Alert.objects.filter(course=course):
        services.alert_snooze(
            alert, actor=clinician, until=date(2026, 12, 10), reason="away", now=timezone.now()
        )
    assert attention(course).priority is None  # nothing awake: off the default worklist
    clock("2026-12-10")
    # The date has come, but a snooze ends by the calendar, not by a write: until the
    # next periodic sweep (minutes at most), the row is as the last refresh left it.
    assert attention(course).priority is None
    sweep()
    row = attention(course)
    assert row.open_alerts == row.all_open_alerts and row.wake_on is None


def test_a_write_whose_reevaluation_was_lost_is_caught_up_by_the_next_sweep(
    clock, sweep, course, clinician
):
    clock("2026-12-08")
    sweep()
    before = attention(course).next_step
    # The test's transaction never commits, so the write's after-commit re-evaluation
    # does not run: as if the broker had lost it.
    course_services.step_update(
        before,
        data={"status": "skipped", "reason": "not given"},
        actor=clinician,
        now=timezone.now(),
    )
    assert attention(course).next_step == before
    sweep()
    assert attention(course).next_step != before


def test_courses_loaded_in_bulk_enter_the_dashboards_with_the_next_sweep(clock, sweep, course):
    clock("2026-12-08")
    sweep()
    cohort = TeamFactory(slug="cohort", name="cohort")
    call_command(
        "make_cohort", courses=30, team="cohort", seed=3, as_of=date(2026, 6, 1), stdout=StringIO()
    )
    assert not SummaryCounter.objects.filter(team=cohort).exists()
    sweep()
    active = SummaryCounter.objects.filter(team=cohort, start_date=EVERY_START, name="state")
    assert (
        sum(active.values_list("n", flat=True))
        == cohort.patients.filter(courses__state__in=list(services.rules.ACTIVE_STATES)).count()
    )


@pytest.mark.parametrize("courses", [5, 40])
def test_a_course_evaluation_costs_the_same_queries_whatever_the_cohort(
    clock, sweep, course, courses
):
    TeamFactory(slug="cohort", name="cohort")
    call_command(
        "make_cohort",
        courses=courses,
        team="cohort",
        seed=5,
        as_of=date(2026, 11, 24),
        stdout=StringIO(),
    )
    clock("2026-12-08")
    sweep()
    with CaptureQueriesContext(connection) as evaluation:
        services.alerts_sweep(timezone.now() + timedelta(hours=1), course_ids=[course.pk])
    # The lock, team zones, fifteen rules (the referral rule reads the course and its
    # referral step: sixteen queries), its alerts, escalation candidates, then its
    # dashboard rows: the attention row (stale ones out, the fresh one in) and its facts
    # (tallied, replaced from six sources, tallied again; the counters are read and
    # written only when they move, and here nothing did), inside a savepoint pair.
    assert len(evaluation.captured_queries) == 33


def test_the_rebuild_command_leaves_what_the_sweeps_kept(clock, sweep, course, clinician):
    clock("2026-12-08")
    sweep()
    services.alert_snooze(
        Alert.objects.filter(course=course).first(),
        actor=clinician,
        until=date(2026, 12, 11),
        reason="away",
        now=timezone.now(),
    )

    def state() -> tuple[list, list]:
        rows = CourseAttention.objects.values_list(
            "course_id", "priority", "all_priority", "open_alerts", "wake_on", "next_step_id"
        )
        counters = SummaryCounter.objects.order_by("team_id", "start_date", "name", "key", "value")
        return list(rows), list(counters.values_list("team_id", "start_date", "key", "value", "n"))

    kept = state()
    out = StringIO()
    call_command("rebuild_dashboards", stdout=out)
    assert "1 attention rows" in out.getvalue()
    assert state() == kept
