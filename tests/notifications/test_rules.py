"""Every rule with frozen time: silent the day before its threshold, an alert on the
threshold, resolved once the condition clears."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses import services
from courses.models import PlannedStep
from notifications.models import Alert, AlertKind, AlertState, Resolution
from tests.conftest import induction_blocks
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


def record(fn, course, actor, **data):
    return fn(course, data=data, actor=actor, now=timezone.now())


@pytest.fixture
def course_a(clock, team, clinician, make_course):
    """Group A under ALL-REZ BFM 90 (HSCT indicated), stratified 2026-11-24."""
    course = make_course(team, clinician)
    assert (course.risk_group, course.hsct_indicated) == ("A", True)
    return course


def test_hsct_referral_missing_fires_on_day_14_and_clears_with_a_referral(
    clock, sweep, course_a, clinician
):
    clock("2026-12-07")
    sweep()
    assert unresolved(course_a, AlertKind.HSCT_REFERRAL_MISSING) == []
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course_a, AlertKind.HSCT_REFERRAL_MISSING)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 12, 8))
    assert "no HSCT referral" in alert.message and "2026-11-24" in alert.message
    assert "timely HSCT referral" in alert.caveat
    record(services.referral_save, course_a, clinician, referred_on=date(2026, 12, 8))
    sweep()
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", Resolution.CONDITION_CLEARED)


def test_no_referral_alert_when_hsct_is_not_indicated(clock, sweep, team, clinician, make_course):
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1))  # group B
    clock("2026-12-20")
    sweep()
    assert unresolved(course, AlertKind.HSCT_REFERRAL_MISSING) == []


def test_hsct_delayed_fires_90_days_after_cr2_and_clears_with_the_transplant(
    clock, sweep, team, clinician, make_course
):
    # Group A, induction given (R2 from 2026-10-13, R1 from 2026-11-03: it ended
    # 2026-11-08), so the CR2 of 2026-12-01 is judged after it.
    course_a = make_course(team, clinician, blocks=induction_blocks())
    assert (course_a.risk_group, course_a.hsct_indicated) == ("A", True)
    record(services.referral_save, course_a, clinician, referred_on=date(2026, 11, 24))
    clock("2026-12-01")
    record(
        services.assessment_record,
        course_a,
        clinician,
        assessed_on=date(2026, 12, 1),
        marrow="M1",
        cr2=True,
        em_status="none",
    )
    clock("2027-02-28")  # CR2 + 89 days
    sweep()
    assert unresolved(course_a, AlertKind.HSCT_DELAYED) == []
    clock("2027-03-01")  # CR2 + 90 days
    sweep()
    [alert] = unresolved(course_a, AlertKind.HSCT_DELAYED)
    assert alert.condition_since == date(2027, 3, 1)
    assert "CR2 was recorded on 2026-12-01" in alert.message
    record(
        services.mrd_record,
        course_a,
        clinician,
        sampled_on=date(2027, 2, 20),
        time_point="pre_hsct",
        unit="fraction",
        qualitative="negative",
        sensitivity=1e-4,
    )
    record(services.referral_save, course_a, clinician, performed_on=date(2027, 3, 1))
    sweep()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_mrd_missing_fires_21_days_before_a_planned_transplant(clock, sweep, course_a, clinician):
    record(
        services.referral_save,
        course_a,
        clinician,
        referred_on=date(2026, 11, 24),
        planned_on=date(2027, 1, 31),
    )
    clock("2027-01-09")  # 22 days before
    sweep()
    assert unresolved(course_a, AlertKind.MRD_MISSING_BEFORE_HSCT) == []
    clock("2027-01-10")  # 21 days before
    sweep()
    [alert] = unresolved(course_a, AlertKind.MRD_MISSING_BEFORE_HSCT)
    assert "HSCT planned for 2027-01-31" in alert.message
    # An MRD result more than 30 days before the transplant does not count...
    record(
        services.mrd_record,
        course_a,
        clinician,
        sampled_on=date(2026, 12, 31),
        time_point="pre_hsct",
        unit="fraction",
        qualitative="negative",
        sensitivity=1e-4,
    )
    sweep()
    assert unresolved(course_a, AlertKind.MRD_MISSING_BEFORE_HSCT) == [alert]
    # ...one within the 30 days does.
    record(
        services.mrd_record,
        course_a,
        clinician,
        sampled_on=date(2027, 1, 10),
        time_point="pre_hsct",
        unit="fraction",
        qualitative="negative",
        sensitivity=1e-4,
    )
    sweep()
    assert unresolved(course_a, AlertKind.MRD_MISSING_BEFORE_HSCT) == []


def test_mrd_missing_fires_for_a_transplant_performed_without_mrd(
    clock, sweep, course_a, clinician
):
    clock("2026-12-20")
    record(
        services.referral_save,
        course_a,
        clinician,
        referred_on=date(2026, 11, 24),
        performed_on=date(2026, 12, 20),
    )
    sweep()
    [alert] = unresolved(course_a, AlertKind.MRD_MISSING_BEFORE_HSCT)
    assert "HSCT performed on 2026-12-20" in alert.message


def test_step_overdue_fires_the_day_after_due_plus_grace_and_clears_when_done(
    clock, sweep, course_a, clinician
):
    first = PlannedStep.objects.filter(course=course_a, kind="block").order_by("sequence")[0]
    assert first.due_on == date(2026, 11, 24)
    last_quiet = first.due_on.toordinal() + first.grace_days
    clock(date.fromordinal(last_quiet).isoformat())
    sweep()
    assert not Alert.objects.filter(subject=f"step:{first.pk}").exists()
    clock(date.fromordinal(last_quiet + 1).isoformat())
    sweep()
    [alert] = Alert.objects.filter(subject=f"step:{first.pk}")
    assert (alert.kind, alert.severity) == ("step_overdue", "medium")
    assert f"grace {first.grace_days} days" in alert.message
    record(
        services.block_record,
        course_a,
        clinician,
        block_type=first.block_type,
        start_date=timezone.localdate(),
    )
    sweep()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_a_skipped_step_is_not_overdue(clock, sweep, course_a, clinician):
    first = PlannedStep.objects.filter(course=course_a, kind="block").order_by("sequence")[0]
    services.step_update(
        first,
        data={"status": "skipped", "reason": "tumour board"},
        actor=clinician,
        now=timezone.now(),
    )
    clock("2026-12-10")
    sweep()
    assert not Alert.objects.filter(subject=f"step:{first.pk}").exists()


def test_course_stalled_after_45_quiet_days(clock, sweep, course_a, clinician):
    clock("2027-01-07")  # 44 days
    sweep()
    assert unresolved(course_a, AlertKind.COURSE_STALLED) == []
    clock("2027-01-08")  # 45 days
    sweep()
    [alert] = unresolved(course_a, AlertKind.COURSE_STALLED)
    assert (alert.severity, alert.condition_since) == ("low", date(2027, 1, 8))
    record(
        services.event_record,
        course_a,
        clinician,
        kind="secondary_malignancy",
        occurred_on=date(2027, 1, 8),
    )
    sweep()
    assert unresolved(course_a, AlertKind.COURSE_STALLED) == []


def test_closed_courses_raise_nothing(clock, sweep, course_a, clinician):
    services.course_transition(
        course_a,
        name="take_off_protocol",
        reason="family moved",
        off_protocol_reason="lost_to_follow_up",
        actor=clinician,
        now=timezone.now(),
    )
    clock("2027-06-01")
    sweep()
    assert not Alert.objects.filter(course=course_a).exists()


def test_a_protocol_threshold_changes_the_day(clock, sweep, course_a, settings):
    from stratification.selectors import protocol_get

    protocol = protocol_get("all-rez-bfm-90")
    assert protocol.alert_days("hsct_referral_missing_days") == 14
    settings.REZCOURSE_ALERT_DEFAULTS = {
        **settings.REZCOURSE_ALERT_DEFAULTS,
        "hsct_referral_missing_days": 3,
    }
    clock("2026-11-28")  # 4 days: the protocol's 14 wins over the settings default
    sweep()
    assert unresolved(course_a, AlertKind.HSCT_REFERRAL_MISSING) == []


def test_stratification_stale_is_silent_then_open_then_resolved_on_confirmation(
    clock, sweep, course_a, clinician
):
    def stale() -> list[Alert]:
        return unresolved(course_a, AlertKind.STRATIFICATION_STALE)

    clock("2026-12-01")
    sweep()
    assert stale() == []  # the decision still holds
    services.patient_update(
        course_a.patient, {"immunophenotype": "T"}, timezone.now(), actor=clinician
    )
    sweep()
    [alert] = stale()
    assert (alert.severity, alert.subject, alert.condition_since) == (
        "high",
        "decision:stale",
        date(2026, 12, 1),
    )
    assert "changed since 2026-12-01: immunophenotype" in alert.message
    assert "HSCT" in alert.caveat
    clock("2026-12-02")
    course = services.course_restratify(course_a, actor=clinician, now=timezone.now())
    sweep()
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", Resolution.CONDITION_CLEARED)
    [waiting] = stale()
    # Still in doubt since the change: nobody has confirmed the new proposal yet.
    assert (waiting.subject, waiting.condition_since) == ("decision:unconfirmed", date(2026, 12, 1))
    assert "PPG proposed" in waiting.message and "still follows group A" in waiting.message
    services.course_confirm_stratification(
        course, risk_group="PPG", reason="", actor=clinician, now=timezone.now()
    )
    sweep()
    assert stale() == []


def test_stratification_stale_is_silent_for_courses_without_a_confirmed_group_or_ended(
    clock, sweep, team, clinician, make_course, course_a
):
    registered = make_course(team, clinician, confirm=False)
    for course in (registered, course_a):
        services.patient_update(
            course.patient, {"bcr_abl1": "negative"}, timezone.now(), actor=clinician
        )
    services.course_transition(
        course_a,
        name="take_off_protocol",
        reason="family moved",
        off_protocol_reason="lost_to_follow_up",
        actor=clinician,
        now=timezone.now(),
    )
    sweep()
    assert registered.__class__.objects.get(pk=registered.pk).decision_stale_fields == ["bcr_abl1"]
    assert not Alert.objects.filter(kind=AlertKind.STRATIFICATION_STALE).exists()
