"""The unconfirmed-proposal rules (issue 22), each with frozen time: silent the day
before its threshold, an alert on it, resolved once a clinician confirms. The courses
are registered (their decision made) on 2026-11-24, the clock's first day."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.utils import timezone

from courses import services
from notifications.models import AlertKind, Resolution
from tests.factories import MembershipFactory, TeamFactory
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db

PROPOSAL = AlertKind.HSCT_PROPOSAL_UNCONFIRMED
STRATIFICATION = AlertKind.STRATIFICATION_UNCONFIRMED
STALLED = AlertKind.COURSE_STALLED

# Relapses that the engine places (make_course's patient: diagnosed 2022-01-10,
# front-line therapy ended 2024-01-10); "T": a T-lineage patient.
EARLY_BM = {"relapse_date": date(2024, 3, 1)}  # BFM 90: A; BFM 2002: S3 (HSCT fixed)
LATE_BM = {"relapse_date": date(2024, 9, 1)}  # BFM 90: B; BFM 2002: S2 (MRD decides)
# BFM 2002: any marrow relapse of T-lineage ALL is S4 (HSCT fixed).
T_LATE_BM = {"relapse_date": date(2024, 9, 1), "T": True}
# BFM 90: a T-lineage isolated EM relapse has no group (needs review: PPG or by timing).
T_LATE_EM = {
    "relapse_date": date(2024, 9, 1),
    "site": "isolated_em",
    "em_sites": ["cns"],
    "bm_blast_percent": 0.0,
    "T": True,
}


@pytest.fixture
def registered(team, clinician, make_course, make_patient):  # noqa: ANN001, ANN201
    """registered(protocol, relapse) -> a course opened now, not confirmed."""

    def make(protocol: str, relapse: dict):  # noqa: ANN202
        relapse = dict(relapse)
        patient = make_patient(team, immunophenotype="T") if relapse.pop("T", False) else None
        return make_course(
            team, clinician, protocol=protocol, confirm=False, patient=patient, **relapse
        )

    return make


def confirm(course, actor, group=None, reason=""):  # noqa: ANN001, ANN201
    return services.course_confirm_stratification(
        course,
        risk_group=group or course.proposed_group,
        reason=reason,
        actor=actor,
        now=timezone.now(),
    )


@pytest.mark.parametrize(
    ("protocol", "relapse", "group"),
    [
        ("all-rez-bfm-90", EARLY_BM, "A"),
        ("all-rez-bfm-2002", T_LATE_BM, "S4"),
        ("all-rez-bfm-2002", EARLY_BM, "S3"),
    ],
)
def test_an_hsct_proposal_unconfirmed_for_3_days_is_high_and_clears_when_confirmed(
    clock, sweep, clinician, registered, protocol, relapse, group
):
    course = registered(protocol, relapse)
    assert course.proposed_group == group
    clock("2026-11-26")
    sweep()
    assert unresolved(course, PROPOSAL) == []
    clock("2026-11-27")
    sweep()
    [alert] = unresolved(course, PROPOSAL)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 11, 27))
    assert f"2026-11-24 proposes group {group} with HSCT indicated" in alert.message
    assert "3 days later" in alert.message
    assert "timely HSCT referral" in alert.caveat
    # One alert for the proposal: not the medium one as well.
    assert unresolved(course, STRATIFICATION) == []
    confirm(course, clinician)
    sweep()
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", Resolution.CONDITION_CLEARED)


@pytest.mark.parametrize(
    ("protocol", "relapse", "group"),
    [
        ("all-rez-bfm-90", LATE_BM, "B"),  # no HSCT
        ("all-rez-bfm-2002", LATE_BM, "S2"),  # HSCT decided by MRD later
        ("all-rez-bfm-90", T_LATE_EM, None),  # needs review, no group
    ],
)
def test_any_other_proposal_unconfirmed_for_7_days_is_medium_and_clears_when_confirmed(
    clock, sweep, clinician, registered, protocol, relapse, group
):
    course = registered(protocol, relapse)
    assert course.proposed_group == group
    clock("2026-11-30")
    sweep()
    assert unresolved(course, STRATIFICATION) == []
    assert unresolved(course, PROPOSAL) == []
    clock("2026-12-01")
    sweep()
    [alert] = unresolved(course, STRATIFICATION)
    assert (alert.severity, alert.condition_since) == ("medium", date(2026, 12, 1))
    assert "7 days later" in alert.message
    assert ("needs review" in alert.message) == (group is None)
    assert unresolved(course, PROPOSAL) == []
    if group is None:
        confirm(course, clinician, group="C", reason="CNS relapse; marrow MRD negative")
    else:
        confirm(course, clinician)
    sweep()
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", Resolution.CONDITION_CLEARED)


def test_counted_from_the_current_decision_a_restratification_starts_again(
    clock, sweep, team, clinician, make_course
):
    course = make_course(team, clinician, confirm=False, **LATE_BM)  # B
    clock("2026-11-27")
    # The front-line end date was wrong: the relapse is early, group A, HSCT indicated.
    services.patient_update(
        course.patient, {"frontline_end_date": date(2024, 6, 1)}, timezone.now(), actor=clinician
    )
    course = services.course_restratify(course, actor=clinician, now=timezone.now())
    assert course.proposed_group == "A"
    clock("2026-11-29")
    sweep()
    assert unresolved(course, PROPOSAL) == []
    clock("2026-11-30")
    sweep()
    [alert] = unresolved(course, PROPOSAL)
    assert alert.condition_since == date(2026, 11, 30)


def test_the_decision_is_dated_on_the_teams_calendar(time_machine, sweep, make_course):
    """Made at 01:00 in Auckland on 2026-11-25 (12:00 UTC on the 24th): due on the
    28th of Auckland's calendar, not on the 27th (the UTC or Berlin date plus 3)."""
    team = TeamFactory(slug="akl", name="Auckland", time_zone="Pacific/Auckland")
    actor = MembershipFactory(team=team, role="clinician").user
    time_machine.move_to(datetime.fromisoformat("2026-11-24T12:00:00+00:00"), tick=False)
    course = make_course(team, actor, confirm=False)
    time_machine.move_to(datetime.fromisoformat("2026-11-27T10:30:00+00:00"), tick=False)
    sweep()  # 23:30 on the 27th in Auckland
    assert unresolved(course, PROPOSAL) == []
    time_machine.move_to(datetime.fromisoformat("2026-11-27T11:30:00+00:00"), tick=False)
    sweep()  # 00:30 on the 28th
    [alert] = unresolved(course, PROPOSAL)
    assert alert.condition_since == date(2026, 11, 28)


def test_a_registered_course_is_not_also_stalled(clock, sweep, team, clinician, make_course):
    """course_stalled left registered courses to the unconfirmed rules: at 45 days it
    would only repeat, lower, what they said weeks before."""
    waiting = make_course(team, clinician, confirm=False, **LATE_BM)
    clock("2027-01-15")
    sweep()
    assert unresolved(waiting, STALLED) == []
    assert unresolved(waiting, STRATIFICATION)


def test_silent_for_confirmed_and_ended_courses(clock, sweep, team, clinician, make_course):
    confirmed = make_course(team, clinician)
    ended = make_course(team, clinician, confirm=False, **LATE_BM)
    services.course_transition(
        ended,
        name="take_off_protocol",
        reason="entered in error",
        off_protocol_reason="entered_in_error",
        actor=clinician,
        now=timezone.now(),
    )
    clock("2026-12-20")
    sweep()
    for course in (confirmed, ended):
        assert unresolved(course, PROPOSAL) == unresolved(course, STRATIFICATION) == []
