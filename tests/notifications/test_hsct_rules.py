"""The HSCT decision path's rules (issue 13), each with frozen time: silent the day
before its threshold, an alert on it, resolved once the condition clears. Dates are
the courses' clinical dates; the courses start on 2026-11-24 (the clock's first day),
or with their induction blocks on 2026-10-13."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from courses import services
from courses.models import PlannedStep
from notifications.models import AlertKind, Resolution
from tests.conftest import induction_blocks
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


def record(fn, course, actor, **data):  # noqa: ANN001, ANN003, ANN201
    return fn(course, data=data, actor=actor, now=timezone.now())


def move(course, name, actor, **given):  # noqa: ANN001, ANN003, ANN201
    return services.course_transition(
        course.pk, name=name, actor=actor, now=timezone.now(), **given
    )


def day(d: date) -> str:
    return d.isoformat()


def assert_cleared(alert) -> None:  # noqa: ANN001
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", Resolution.CONDITION_CLEARED)


@pytest.fixture
def s2(clock, team, clinician, make_course):  # noqa: ANN001, ANN201
    """ALL-REZ BFM 2002 S2 (late isolated marrow relapse of BCP-ALL): HSCT undecided
    until MRD at the end of induction."""
    course = make_course(
        team, clinician, protocol="all-rez-bfm-2002", relapse_date=date(2024, 9, 1)
    )
    assert (course.risk_group, course.hsct_indicated) == ("S2", None)
    return course


@pytest.fixture
def group_a(clock, team, clinician, make_course):  # noqa: ANN001, ANN201
    course = make_course(team, clinician)
    assert (course.risk_group, course.hsct_indicated) == ("A", True)
    return course


@pytest.fixture
def group_b(clock, team, clinician, make_course):  # noqa: ANN001, ANN201
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1))
    assert (course.risk_group, course.hsct_indicated) == ("B", False)
    return course


def induction(course, actor, f2: date = date(2026, 12, 15)) -> None:  # noqa: ANN001
    """F1 on the course's start and F2 on ``f2``: the S2 deciding window opens five
    days after F2 (a sample before it does not decide)."""
    for block, start in (("F1", course.start_date), ("F2", f2)):
        record(services.block_record, course, actor, block_type=block, start_date=start)


def step(course, key: str) -> PlannedStep:  # noqa: ANN001
    return PlannedStep.objects.get(course=course, key=key)


def test_an_unconfirmed_hsct_proposal_alerts_after_7_days_and_clears_when_decided(
    clock, sweep, s2, clinician
):
    clock("2027-01-05")
    induction(s2, clinician)
    record(
        services.mrd_record,
        s2,
        clinician,
        sampled_on=date(2027, 1, 5),
        time_point="end_of_induction",
        value=0.005,
        unit="fraction",
    )
    s2.refresh_from_db()
    assert (s2.hsct_proposed, s2.hsct_proposed_on) == (True, date(2027, 1, 5))
    clock("2027-01-11")
    sweep()
    assert unresolved(s2, AlertKind.HSCT_DECISION_PENDING) == []
    clock("2027-01-12")
    sweep()
    [alert] = unresolved(s2, AlertKind.HSCT_DECISION_PENDING)
    assert (alert.severity, alert.condition_since) == ("high", date(2027, 1, 12))
    assert "proposes HSCT" in alert.message and "2027-01-05" in alert.message
    services.course_confirm_hsct(
        s2, hsct_indicated=True, reason="", actor=clinician, now=timezone.now()
    )
    sweep()
    assert_cleared(alert)


def test_a_missing_deciding_mrd_alerts_7_days_after_its_step_and_clears_when_recorded(
    clock, sweep, s2, clinician
):
    due = step(s2, "mrd_end_of_induction").due_on
    clock(day(due + timedelta(days=6)))
    sweep()
    assert unresolved(s2, AlertKind.MRD_DECISION_MISSING) == []
    clock(day(due + timedelta(days=7)))
    sweep()
    [alert] = unresolved(s2, AlertKind.MRD_DECISION_MISSING)
    assert (alert.severity, alert.condition_since) == ("high", due + timedelta(days=7))
    assert "decides the HSCT indication" in alert.message
    # One alert for the deciding step: step_overdue leaves it to this rule.
    clock(day(due + timedelta(days=20)))
    sweep()
    overdue = unresolved(s2, AlertKind.STEP_OVERDUE)
    assert f"step:{step(s2, 'mrd_end_of_induction').pk}" not in {a.subject for a in overdue}
    # Induction as given (F2 three weeks in): the sample after it decides.
    induction(s2, clinician)
    record(
        services.mrd_record,
        s2,
        clinician,
        sampled_on=due + timedelta(days=19),
        time_point="end_of_induction",
        value=0.0001,
        unit="fraction",
    )
    sweep()
    assert_cleared(alert)


def test_a_non_response_alerts_after_7_days_and_silences_the_remission_rules(
    clock, sweep, group_a, clinician
):
    clock("2026-12-08")
    sweep()
    [referral] = unresolved(group_a, AlertKind.HSCT_REFERRAL_MISSING)
    record(
        services.block_record, group_a, clinician, block_type="R2", start_date=date(2026, 11, 24)
    )
    move(group_a, "start_induction", clinician)
    clock("2026-12-20")
    # The second induction block (R1, day 22), back-entered: induction ended 2026-12-20.
    record(
        services.block_record, group_a, clinician, block_type="R1", start_date=date(2026, 12, 15)
    )
    move(group_a, "assess_response", clinician)
    record(
        services.assessment_record,
        group_a,
        clinician,
        assessed_on=date(2026, 12, 20),
        marrow="M3",
        cr2=False,
        em_status="none",
    )
    clock("2026-12-26")
    sweep()
    assert unresolved(group_a, AlertKind.NON_RESPONSE) == []
    assert_cleared(referral)  # no referral noise for a non-responder
    clock("2026-12-27")
    sweep()
    [alert] = unresolved(group_a, AlertKind.NON_RESPONSE)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 12, 27))
    assert "marrow M3" in alert.message
    clock("2027-03-27")  # 97 days on: no referral, overdue or stalled noise
    sweep()
    kinds = {a.kind for a in group_a.alerts.exclude(state="resolved")}
    assert kinds == {AlertKind.NON_RESPONSE}
    record(
        services.assessment_record,
        group_a,
        clinician,
        assessed_on=date(2027, 3, 27),
        marrow="M1",
        cr2=True,
        em_status="none",
    )
    sweep()
    assert_cleared(alert)


def test_a_marrow_not_yet_in_cr_during_induction_is_not_non_response(
    clock, sweep, group_a, clinician
):
    move(group_a, "start_induction", clinician)
    clock("2026-12-07")
    record(
        services.assessment_record,
        group_a,
        clinician,
        assessed_on=date(2026, 12, 7),
        marrow="M2",
        cr2=False,
        em_status="none",
    )
    clock("2026-12-20")
    sweep()
    assert unresolved(group_a, AlertKind.NON_RESPONSE) == []
    # Judged once induction is over (the course moved to its response assessment).
    record(
        services.block_record, group_a, clinician, block_type="R2", start_date=date(2026, 11, 24)
    )
    move(group_a, "assess_response", clinician)
    sweep()
    [alert] = unresolved(group_a, AlertKind.NON_RESPONSE)
    assert alert.condition_since == date(2026, 12, 14)  # the assessment + 7 days


def test_high_pre_hsct_mrd_alerts_at_the_threshold_and_clears_with_a_lower_result(
    clock, sweep, group_a, clinician
):
    record(
        services.referral_save,
        group_a,
        clinician,
        referred_on=date(2026, 11, 24),
        donor_search_status="donor_found",
        planned_on=date(2027, 3, 1),
    )
    clock("2027-02-18")
    record(
        services.mrd_record,
        group_a,
        clinician,
        sampled_on=date(2027, 2, 18),
        time_point="pre_hsct",
        value=0.00099,
        unit="fraction",
    )
    sweep()
    assert unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT) == []
    clock("2027-02-19")
    record(
        services.mrd_record,
        group_a,
        clinician,
        sampled_on=date(2027, 2, 19),
        time_point="pre_hsct",
        value=0.001,
        unit="fraction",
    )
    sweep()
    [alert] = unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT)
    assert (alert.severity, alert.condition_since) == ("high", date(2027, 2, 19))
    assert "0.001" in alert.message and "2027-03-01" in alert.message
    clock("2027-02-24")
    record(
        services.mrd_record,
        group_a,
        clinician,
        sampled_on=date(2027, 2, 24),
        time_point="pre_hsct",
        value=0.0002,
        unit="fraction",
    )
    sweep()
    assert_cleared(alert)


def plan_transplant(course, actor, on: date) -> None:  # noqa: ANN001
    record(
        services.referral_save,
        course,
        actor,
        referred_on=date(2026, 11, 24),
        donor_search_status="donor_found",
        planned_on=on,
    )


def sample(course, actor, on: str, time_point: str = "pre_hsct", **result) -> None:  # noqa: ANN001, ANN003
    """An MRD result sampled on ``on``, entered today (the clock's day)."""
    if "value" not in result:
        result.setdefault("sensitivity", 1e-4)
    record(
        services.mrd_record,
        course,
        actor,
        sampled_on=date.fromisoformat(on),
        time_point=time_point,
        unit="fraction",
        **result,
    )


def test_an_mrd_labelled_end_of_induction_in_the_window_is_the_pre_hsct_mrd_with_a_warning(
    clock, sweep, group_a, clinician
):
    plan_transplant(group_a, clinician, date(2027, 3, 1))
    clock("2027-02-15")
    # 14 days before the planned transplant, labelled end of induction by the lab.
    sample(group_a, clinician, "2027-02-15", "end_of_induction", value=0.002)
    sweep()
    [alert] = unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT)
    assert alert.condition_since == date(2027, 2, 15)
    assert "0.002, at or above 0.001" in alert.message
    assert (
        "MRD sampled on 2027-02-15, labelled end of induction, counted as the pre-HSCT MRD"
        in alert.message
    )
    # It also answers mrd_missing_before_hsct (any MRD in the window does).
    assert unresolved(group_a, AlertKind.MRD_MISSING_BEFORE_HSCT) == []


def test_a_positive_not_quantifiable_pre_hsct_mrd_alerts_and_a_negative_clears_it(
    clock, sweep, group_a, clinician
):
    plan_transplant(group_a, clinician, date(2027, 3, 1))
    clock("2027-02-10")
    sample(group_a, clinician, "2027-02-10", qualitative="positive_not_quantifiable")
    sweep()
    [alert] = unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT)
    assert "is positive, not quantifiable (counted as positive)" in alert.message
    assert "labelled" not in alert.message  # labelled pre_hsct: nothing to warn of
    clock("2027-02-17")
    sample(group_a, clinician, "2027-02-17", qualitative="negative")
    sweep()
    assert_cleared(alert)


def test_a_high_mrd_sampled_before_the_pre_hsct_window_does_not_count(
    clock, sweep, group_a, clinician
):
    plan_transplant(group_a, clinician, date(2027, 3, 1))
    clock("2027-01-29")
    sample(group_a, clinician, "2027-01-29", value=0.01)  # 31 days before: outside
    sweep()
    assert unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT) == []
    clock("2027-01-30")
    sample(group_a, clinician, "2027-01-30", value=0.01)  # 30 days before: the edge
    sweep()
    assert len(unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT)) == 1


def test_the_latest_pre_hsct_mrd_by_sample_date_decides_not_the_last_entered(
    clock, sweep, group_a, clinician
):
    plan_transplant(group_a, clinician, date(2027, 3, 1))
    clock("2027-02-20")
    sample(group_a, clinician, "2027-02-20", value=0.005)
    sweep()
    [alert] = unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT)
    # A lower result of an earlier sample, entered later, changes nothing...
    clock("2027-02-22")
    sample(group_a, clinician, "2027-02-12", "end_of_induction", value=0.0001)
    sweep()
    assert unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT) == [alert]
    # ...a lower result sampled later clears it, whatever its label...
    clock("2027-02-24")
    sample(group_a, clinician, "2027-02-24", "end_of_induction", value=0.0002)
    sweep()
    assert_cleared(alert)
    # ...and a high one back-entered from before it does not raise it again.
    clock("2027-02-25")
    sample(group_a, clinician, "2027-02-21", value=0.05)
    sweep()
    assert unresolved(group_a, AlertKind.MRD_HIGH_BEFORE_HSCT) == []


def test_a_donor_search_not_started_alerts_after_14_days_and_clears_once_started(
    clock, sweep, group_a, clinician
):
    record(services.referral_save, group_a, clinician, referred_on=date(2026, 11, 24))
    clock("2026-12-07")
    sweep()
    assert unresolved(group_a, AlertKind.DONOR_SEARCH_STALLED) == []
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(group_a, AlertKind.DONOR_SEARCH_STALLED)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 12, 8))
    assert "has not started" in alert.message
    record(
        services.referral_save,
        group_a,
        clinician,
        referred_on=date(2026, 11, 24),
        donor_search_status="ongoing",
    )
    sweep()
    assert_cleared(alert)


def test_no_donor_without_an_alternative_alerts_until_a_transplant_date_is_set(
    clock, sweep, group_a, clinician
):
    record(
        services.referral_save,
        group_a,
        clinician,
        referred_on=date(2026, 11, 24),
        donor_search_status="no_donor",
    )
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(group_a, AlertKind.DONOR_SEARCH_STALLED)
    assert "no donor was found" in alert.message
    # An alternative (haploidentical) donor decided: the transplant is planned.
    record(
        services.referral_save,
        group_a,
        clinician,
        referred_on=date(2026, 11, 24),
        donor_search_status="no_donor",
        donor_type="haploidentical",
        planned_on=date(2027, 2, 1),
    )
    sweep()
    assert_cleared(alert)


def test_a_cumulative_delay_alerts_at_28_days_and_clears_when_the_late_record_is_voided(
    clock, sweep, group_b, clinician
):
    # block_1 planned 2026-11-24, done a week late; block_2 planned 2026-12-15.
    clock("2026-12-01")
    record(services.block_record, group_b, clinician, block_type="R2", start_date=date(2026, 12, 1))
    planned = step(group_b, "block_2").planned_on
    clock(day(planned + timedelta(days=27)))
    late = record(
        services.block_record,
        group_b,
        clinician,
        block_type="R1",
        start_date=planned + timedelta(days=27),
    )
    sweep()
    assert unresolved(group_b, AlertKind.CUMULATIVE_DELAY) == []
    services.record_void(late, reason="wrong date", actor=clinician, now=timezone.now())
    clock(day(planned + timedelta(days=28)))
    late = record(
        services.block_record,
        group_b,
        clinician,
        block_type="R1",
        start_date=planned + timedelta(days=28),
    )
    sweep()
    [alert] = unresolved(group_b, AlertKind.CUMULATIVE_DELAY)
    assert (alert.severity, alert.condition_since) == ("medium", planned + timedelta(days=28))
    assert "28 days or more behind" in alert.message
    services.record_void(
        late, reason="entered on the wrong course", actor=clinician, now=timezone.now()
    )
    sweep()
    assert_cleared(alert)


def test_a_proposed_indication_is_watched_for_its_referral(clock, sweep, s2, clinician):
    # The referral / HLA-typing step (due at the start, grace 14) is watched by its date
    # even while the indication is undecided: day 15 after the start.
    clock("2026-12-08")
    sweep()
    assert unresolved(s2, AlertKind.HSCT_REFERRAL_MISSING) == []
    clock("2026-12-09")
    sweep()
    [alert] = unresolved(s2, AlertKind.HSCT_REFERRAL_MISSING)
    assert alert.condition_since == date(2026, 12, 9)
    assert "HLA typing" in alert.message
    record(services.referral_save, s2, clinician, referred_on=date(2026, 12, 9))
    sweep()
    assert_cleared(alert)


def test_a_proposed_but_unconfirmed_hsct_counts_for_the_referral_rule(
    clock, sweep, team, clinician, make_course
):
    # With the referral step skipped, only the proposal can raise it.
    s2 = make_course(team, clinician, protocol="all-rez-bfm-2002", relapse_date=date(2024, 9, 1))
    PlannedStep.objects.filter(course=s2, kind="hsct_referral").update(status="skipped")
    clock("2026-12-08")
    sweep()
    assert unresolved(s2, AlertKind.HSCT_REFERRAL_MISSING) == []
    induction(s2, clinician, f2=date(2026, 12, 1))
    record(
        services.mrd_record,
        s2,
        clinician,
        sampled_on=date(2026, 12, 8),
        time_point="end_of_induction",
        value=0.005,
        unit="fraction",
    )
    sweep()
    [alert] = unresolved(s2, AlertKind.HSCT_REFERRAL_MISSING)
    assert "proposed (not yet confirmed)" in alert.message
    assert alert.condition_since == date(2026, 12, 8)  # start + 14 days


def test_a_course_in_maintenance_stalls_after_its_own_interval(
    clock, sweep, team, clinician, make_course
):
    # Group B, induction given (R2 from 2026-10-13, R1 from 2026-11-03): CR2 on day 42.
    group_b = make_course(team, clinician, relapse_date=date(2024, 9, 1), blocks=induction_blocks())
    assert (group_b.risk_group, group_b.hsct_indicated) == ("B", False)
    move(group_b, "start_induction", clinician)
    move(group_b, "assess_response", clinician)
    record(
        services.assessment_record,
        group_b,
        clinician,
        assessed_on=date(2026, 11, 24),
        marrow="M1",
        cr2=True,
        em_status="none",
    )
    move(group_b, "continue_chemotherapy", clinician)
    clock("2027-06-01")
    move(group_b, "start_maintenance", clinician)
    clock("2027-07-16")  # 45 days: the default interval does not apply in maintenance
    sweep()
    assert unresolved(group_b, AlertKind.COURSE_STALLED) == []
    clock("2027-08-29")  # 89 days
    sweep()
    assert unresolved(group_b, AlertKind.COURSE_STALLED) == []
    clock("2027-08-30")  # 90 days
    sweep()
    [alert] = unresolved(group_b, AlertKind.COURSE_STALLED)
    assert alert.condition_since == date(2027, 8, 30)
    assert "(maintenance)" in alert.message
    record(
        services.event_record,
        group_b,
        clinician,
        kind="follow_up_contact",
        occurred_on=date(2027, 8, 30),
        contact_status="alive_in_cr",
    )
    sweep()
    assert_cleared(alert)


def test_a_transplanted_course_stalls_after_the_post_transplant_interval(
    clock, sweep, team, clinician, make_course
):
    # Group A, induction given (R2 from 2026-10-13, R1 from 2026-11-03): CR2 on day 42.
    group_a = make_course(team, clinician, blocks=induction_blocks())
    assert (group_a.risk_group, group_a.hsct_indicated) == ("A", True)
    move(group_a, "start_induction", clinician)
    move(group_a, "assess_response", clinician)
    record(
        services.assessment_record,
        group_a,
        clinician,
        assessed_on=date(2026, 11, 24),
        marrow="M1",
        cr2=True,
        em_status="none",
    )
    move(group_a, "start_hsct_workup", clinician)
    clock("2027-02-01")
    record(
        services.mrd_record,
        group_a,
        clinician,
        sampled_on=date(2027, 1, 25),
        time_point="pre_hsct",
        value=0.0001,
        unit="fraction",
    )
    record(
        services.referral_save,
        group_a,
        clinician,
        referred_on=date(2026, 11, 24),
        donor_search_status="donor_found",
        performed_on=date(2027, 2, 1),
    )
    move(group_a, "transplant", clinician)
    clock("2027-05-11")  # day +99
    sweep()
    assert unresolved(group_a, AlertKind.COURSE_STALLED) == []
    clock("2027-05-12")  # day +100
    sweep()
    [alert] = unresolved(group_a, AlertKind.COURSE_STALLED)
    assert alert.condition_since == date(2027, 5, 12)
    assert "(after HSCT)" in alert.message
    record(
        services.event_record,
        group_a,
        clinician,
        kind="follow_up_contact",
        occurred_on=date(2027, 5, 12),
        contact_status="alive_in_cr",
    )
    sweep()
    assert_cleared(alert)


def test_hsct_delayed_also_counts_for_an_unconfirmed_proposal(clock, sweep, s2, clinician):
    record(services.referral_save, s2, clinician, referred_on=date(2026, 11, 24))
    clock("2027-01-05")
    induction(s2, clinician)
    for fn, data in [
        (
            services.mrd_record,
            {
                "sampled_on": date(2027, 1, 5),
                "time_point": "end_of_induction",
                "value": 0.005,
                "unit": "fraction",
            },
        ),
        (
            services.assessment_record,
            {"assessed_on": date(2027, 1, 5), "marrow": "M1", "cr2": True, "em_status": "none"},
        ),
    ]:
        record(fn, s2, clinician, **data)
    clock("2027-04-04")  # CR2 + 89 days
    sweep()
    assert unresolved(s2, AlertKind.HSCT_DELAYED) == []
    clock("2027-04-05")  # CR2 + 90 days, the proposal still unconfirmed
    sweep()
    [alert] = unresolved(s2, AlertKind.HSCT_DELAYED)
    assert alert.condition_since == date(2027, 4, 5)
    # Declined with a reason: no transplant is expected any more.
    services.course_confirm_hsct(
        s2, hsct_indicated=False, reason="family declined HSCT", actor=clinician, now=timezone.now()
    )
    sweep()
    assert_cleared(alert)
