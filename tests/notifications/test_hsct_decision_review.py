"""hsct_decision_review (issue 22), with frozen time: a confirmed HSCT decision whose
basis changed is flagged on the course (hsct_review_since, a team date, and the reason:
set and cleared by courses.services.hsct; set directly here) and is a high alert from
that date until the flag is cleared."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses import services
from courses.models import TreatmentCourse
from notifications.models import AlertKind, Resolution
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db

REVIEW = AlertKind.HSCT_DECISION_REVIEW
REASON = "the deciding MRD of 2026-11-20 was amended from 0.005 to 0.0005"


def flag(course: TreatmentCourse, since: date | None, reason: str = "") -> None:
    TreatmentCourse.objects.filter(pk=course.pk).update(
        hsct_review_since=since, hsct_review_reason=reason
    )


def test_a_flagged_hsct_decision_is_high_from_its_date_until_the_flag_is_cleared(
    clock, sweep, team, clinician, make_course
):
    course = make_course(team, clinician)  # group A, HSCT indicated, confirmed 2026-11-24
    flag(course, date(2026, 12, 1), REASON)
    clock("2026-11-30")
    sweep()
    assert unresolved(course, REVIEW) == []
    clock("2026-12-01")
    sweep()
    [alert] = unresolved(course, REVIEW)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 12, 1))
    assert "(HSCT indicated) is in doubt since 2026-12-01" in alert.message
    assert REASON in alert.message
    assert "re-confirms or changes the HSCT decision, with a reason" in alert.message
    # Still in doubt: the same alert, not another.
    clock("2026-12-05")
    sweep()
    assert [a.pk for a in unresolved(course, REVIEW)] == [alert.pk]
    # A clinician decided again: the flag is cleared, and so is the alert.
    flag(course, None)
    sweep()
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", Resolution.CONDITION_CLEARED)


def test_a_decision_against_hsct_in_doubt_says_so(clock, sweep, team, clinician, make_course):
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1))  # B: no HSCT
    flag(course, date(2026, 11, 24), "a later deciding sample (2026-11-22) is 0.002")
    sweep()
    [alert] = unresolved(course, REVIEW)
    assert "(HSCT not indicated)" in alert.message and "0.002" in alert.message


def test_silent_for_an_unflagged_or_ended_course(clock, sweep, team, clinician, make_course):
    quiet = make_course(team, clinician)
    ended = make_course(team, clinician)
    flag(ended, date(2026, 11, 24), REASON)
    services.course_transition(
        ended,
        name="take_off_protocol",
        reason="family moved abroad",
        off_protocol_reason="lost_to_follow_up",
        actor=clinician,
        now=timezone.now(),
    )
    clock("2026-12-10")
    sweep()
    assert unresolved(quiet, REVIEW) == unresolved(ended, REVIEW) == []
