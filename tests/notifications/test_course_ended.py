"""Alerts of a course that ended resolve as "course ended" (issue 11), on the periodic
sweep and on the per-course re-evaluation alike; and the rules judge a back-entered
course by its clinical dates."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses import services
from notifications.models import Alert, AlertEvent, AlertKind, AlertState, Resolution
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


def _alerted(clock, sweep, team, clinician, make_course):
    """A group-A course confirmed 2026-11-24, swept on 2026-12-08: its referral is
    missing and its first block overdue."""
    course = make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    assert unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    assert unresolved(course, AlertKind.STEP_OVERDUE)
    return course


def _ended(alerts) -> set[tuple[str, str]]:
    return set(alerts.values_list("state", "resolution"))


def test_the_periodic_sweep_resolves_an_ended_courses_alerts_as_course_ended(
    clock, sweep, team, clinician, make_course
):
    going_on = make_course(team, clinician)
    ended = _alerted(clock, sweep, team, clinician, make_course)
    services.event_record(
        ended,
        data={"kind": "death", "occurred_on": date(2026, 12, 7)},
        actor=clinician,
        now=timezone.now(),
    )
    # The referral of the other course clears its own condition in the same sweep.
    services.referral_save(
        going_on, data={"referred_on": date(2026, 12, 8)}, actor=clinician, now=timezone.now()
    )
    # No re-evaluation ran (the test transaction never commits): the sweep alone.
    result = sweep()
    alerts = Alert.objects.filter(course=ended)
    assert _ended(alerts) == {(AlertState.RESOLVED, Resolution.COURSE_ENDED)}
    assert set(
        AlertEvent.objects.filter(alert__course=ended, action="resolved").values_list(
            "note", flat=True
        )
    ) == {"course ended"}
    [referral] = Alert.objects.filter(course=going_on, kind=AlertKind.HSCT_REFERRAL_MISSING)
    assert (referral.state, referral.resolution) == (AlertState.RESOLVED, "condition_cleared")
    assert result.resolved == alerts.count() + 1
    # Resolved for good: the next sweep opens nothing on the ended course.
    sweep()
    assert _ended(Alert.objects.filter(course=ended)) == {
        (AlertState.RESOLVED, Resolution.COURSE_ENDED)
    }


def test_the_per_course_re_evaluation_resolves_them_too(clock, sweep, team, clinician, make_course):
    course = _alerted(clock, sweep, team, clinician, make_course)
    services.course_transition(
        course,
        name="take_off_protocol",
        reason="family moved abroad",
        off_protocol_reason="lost_to_follow_up",
        actor=clinician,
        now=timezone.now(),
    )
    sweep(course_ids=[course.pk])
    assert _ended(Alert.objects.filter(course=course)) == {
        (AlertState.RESOLVED, Resolution.COURSE_ENDED)
    }


def test_course_stalled_counts_from_the_latest_clinical_date(
    clock, sweep, team, clinician, make_course, time_machine
):
    # Therapy from 2026-08-01 (R2); the last thing the record knows: the second block on
    # 2026-09-15, typed in today (2026-11-24). 45 days after the block, the course was
    # stalled.
    clock("2026-08-01")
    course = make_course(team, clinician, blocks=(("R2", date(2026, 8, 1)),))
    clock("2026-11-24")
    services.block_record(
        course,
        data={"block_type": "R1", "start_date": date(2026, 9, 15)},
        actor=clinician,
        now=timezone.now(),
    )
    sweep()
    [stalled] = unresolved(course, AlertKind.COURSE_STALLED)
    assert stalled.condition_since == date(2026, 10, 30)
    assert "since 2026-09-15" in stalled.message
    # A follow-up of what happened since, back-entered, clears it.
    services.assessment_record(
        course,
        data={"assessed_on": date(2026, 11, 20), "marrow": "M1", "cr2": True, "em_status": "none"},
        actor=clinician,
        now=timezone.now(),
    )
    sweep()
    assert unresolved(course, AlertKind.COURSE_STALLED) == []
    # A course opened today and not yet confirmed is not "stalled" at 45 days: the
    # unconfirmed proposal speaks for it (issue 22), earlier and louder.
    waiting = make_course(team, clinician, confirm=False)
    clock("2027-01-08")
    sweep()
    assert unresolved(waiting, AlertKind.COURSE_STALLED) == []
    assert unresolved(waiting, AlertKind.HSCT_PROPOSAL_UNCONFIRMED)
