"""The sweep: idempotent, serialized, constant in queries, escalating, respectful of
snoozes and of alerts resolved by hand."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses import services as course_services
from notifications import services
from notifications.models import Alert, AlertEvent, AlertKind, AlertState, OutboundEmail, SweepRun
from teams.models import Role
from tests.conftest import run_concurrently
from tests.factories import TeamFactory
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(clock, team, clinician, make_course):
    return make_course(team, clinician)


def test_two_sweeps_in_a_row_change_nothing_the_second_time(clock, sweep, course):
    clock("2026-12-20")
    first = sweep()
    assert first.opened
    snapshot = list(Alert.objects.order_by("pk").values())
    events = AlertEvent.objects.count()
    second = sweep()
    assert second.counts() == {
        "opened": 0,
        "escalated": 0,
        "resolved": 0,
        "updated": 0,
        "unchanged": len(first.opened),
    }
    assert list(Alert.objects.order_by("pk").values()) == snapshot
    assert AlertEvent.objects.count() == events
    run = SweepRun.objects.get(name="alerts")
    assert run.runs == 2 and run.last_counts["unchanged"] == len(first.opened)


def test_a_moved_due_date_updates_the_open_alert_instead_of_opening_another(
    clock, sweep, course, clinician
):
    step = course.steps.filter(kind="block").order_by("sequence").first()
    clock("2026-12-10")
    sweep()
    [alert] = Alert.objects.filter(subject=f"step:{step.pk}")
    course_services.step_update(
        step,
        data={"due_on": date(2026, 12, 1), "reason": "fever"},
        actor=clinician,
        now=timezone.now(),
    )
    result = sweep()
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN and "was due 2026-12-01" in alert.message
    assert Alert.objects.filter(subject=f"step:{step.pk}").count() == 1
    assert result.updated >= 1


def test_unacknowledged_alerts_escalate_after_24_and_72_hours(clock, sweep, course, time_machine):
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    time_machine.move_to("2026-12-09T09:59:00+00:00", tick=False)
    sweep()
    alert.refresh_from_db()
    assert alert.escalation_level == 0
    time_machine.move_to("2026-12-09T10:00:00+00:00", tick=False)
    assert alert in sweep().escalated
    alert.refresh_from_db()
    assert alert.escalation_level == 1
    time_machine.move_to("2026-12-11T10:00:00+00:00", tick=False)
    sweep()
    alert.refresh_from_db()
    assert alert.escalation_level == 2
    clock("2026-12-20")
    assert sweep().escalated == []  # no level above the last threshold


def test_an_acknowledged_alert_does_not_escalate(clock, sweep, course, clinician):
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    services.alert_acknowledge(
        alert, actor=clinician, note="donor search started", now=timezone.now()
    )
    clock("2026-12-15")
    sweep()
    alert.refresh_from_db()
    assert (alert.state, alert.escalation_level) == ("acknowledged", 0)


def test_a_snoozed_alert_stays_quiet_until_its_date(clock, sweep, course, clinician):
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    services.alert_snooze(
        alert,
        actor=clinician,
        until=date(2026, 12, 15),  # a high alert: at most 7 days
        reason="referral letter sent, awaiting centre",
        now=timezone.now(),
    )
    clock("2026-12-14")
    sweep()
    alert.refresh_from_db()
    assert alert.escalation_level == 0
    clock("2026-12-15")
    sweep()
    alert.refresh_from_db()
    assert alert.escalation_level == 2  # it catches up once the snooze ends


def test_a_hand_resolved_condition_is_not_reopened_until_it_happens_again(
    clock, sweep, course, clinician
):
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    services.alert_resolve(
        alert, actor=clinician, reason="referred by phone; letter follows", now=timezone.now()
    )
    clock("2026-12-09")
    sweep()
    assert unresolved(course, AlertKind.HSCT_REFERRAL_MISSING) == []


def test_per_course_evaluation_touches_only_that_course(clock, team, clinician, make_course, sweep):
    other = make_course(team, clinician)
    clock("2026-12-20")
    sweep(course_ids=[other.pk])
    assert set(Alert.objects.values_list("course_id", flat=True)) == {other.pk}
    assert not SweepRun.objects.filter(name="alerts", runs__gt=0).exists()


@pytest.mark.parametrize("courses", [50, 500])
def test_the_sweep_costs_the_same_queries_whatever_the_cohort_size(clock, courses):
    TeamFactory(slug="cohort", name="cohort")
    call_command(
        "make_cohort",
        courses=courses,
        team="cohort",
        seed=11,
        as_of=date(2026, 11, 24),
        stdout=StringIO(),
    )
    now = timezone.now()
    with CaptureQueriesContext(connection) as opening:
        assert services.alerts_sweep(now).opened
    # The generator's last activity dates lie around "now": the next sweep refreshes
    # those courses' dashboard rows as written since the opening one.
    services.alerts_sweep(now + timedelta(minutes=15))
    with CaptureQueriesContext(connection) as steady:
        services.alerts_sweep(now + timedelta(minutes=30))
    # The lock, team zones, fifteen rules (sixteen queries: the referral rule reads the
    # courses and the referral steps), unresolved alerts, escalation candidates, the
    # courses written since the last sweep, the snoozes that end, and the run's record,
    # inside a savepoint pair (the test's transaction encloses it)...
    assert len(steady.captured_queries) == 25
    if connection.vendor == "postgresql":
        # ...plus the alerts resolved by hand, the new alerts and their events, the
        # recipients (members, distribution addresses; this cohort's team has none, so
        # no alert is loaded for e-mail); and, this being the first sweep, the
        # dashboards built for every course (attention rows; the summary's facts from
        # six sources, tallied before and after, and its counters moved).
        # (SQLite splits large INSERTs into batches of 999 parameters; PostgreSQL not.)
        assert len(opening.captured_queries) == 43


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_leave_one_alert_per_condition(postgres, clock, course):
    clock("2026-12-20")
    results = run_concurrently(*[lambda: services.alerts_sweep(timezone.now())] * 2)
    assert not [r for r in results if isinstance(r, Exception)]
    opened = sorted(len(r.opened) for r in results)
    assert opened[0] == 0 and opened[1] > 0
    keys = list(Alert.objects.exclude(state="resolved").values_list("course", "kind", "subject"))
    assert len(keys) == len(set(keys)) == opened[1]


def test_the_sweep_alerts_command_runs_a_sweep(clock, course):
    clock("2026-12-20")
    out = StringIO()
    call_command("sweep_alerts", stdout=out)
    assert "opened" in out.getvalue()
    assert Alert.objects.filter(course=course).exists()


def test_the_outbox_loads_no_alert_when_nobody_hears_at_once(clock, team, member, make_course):
    """Recipients first: with no address to write to, an opening sweep reads no alert
    back for its e-mails (an opening of 50k alerts used to reload them all)."""
    silent = member(team, Role.CLINICIAN, email="")
    make_course(team, silent)
    clock("2026-12-20")
    with CaptureQueriesContext(connection) as sweep_queries:
        assert services.alerts_sweep(timezone.now()).opened
    loads = [
        q["sql"]
        for q in sweep_queries.captured_queries
        if q["sql"].startswith(
            'SELECT "notifications_alert"."id", "notifications_alert"."course_id"'
        )
        and '"courses_patient"' in q["sql"]
    ]
    assert loads == []
    assert not OutboundEmail.objects.exists()
