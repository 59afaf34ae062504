"""The synthetic cohort generator: reproducible, complete, internally consistent."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F, Q

from courses.models import PlannedStep, State, TreatmentCourse
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db

AFTER_CR2 = {State.POST_REMISSION_CHEMO, State.HSCT_WORKUP, State.TRANSPLANTED, State.MAINTENANCE}


def cohort(slug: str, courses: int = 300, seed: int = 3) -> list[TreatmentCourse]:
    TeamFactory(slug=slug, name=slug)
    call_command(
        "make_cohort",
        courses=courses,
        team=slug,
        seed=seed,
        as_of=date(2026, 11, 24),
        stdout=StringIO(),
    )
    return list(
        TreatmentCourse.objects.filter(patient__team__slug=slug)
        .select_related("patient", "relapse", "decision")
        .order_by("patient__reference")
    )


def test_every_state_and_every_group_of_both_protocols_appears():
    courses = cohort("c1")
    assert {c.state for c in courses} == set(State.values)
    groups = {(c.protocol_slug, c.risk_group) for c in courses if c.risk_group}
    assert groups == {("all-rez-bfm-90", g) for g in ("A", "B", "C", "PPG")} | {
        ("all-rez-bfm-2002", g) for g in ("S1", "S2", "S3", "S4")
    }


def test_the_same_seed_gives_the_same_cohort():
    def shape(courses):
        return [
            (
                c.patient.reference.split("-")[-1],
                c.state,
                c.risk_group,
                c.start_date,
                c.relapse.relapse_date,
            )
            for c in courses
        ]

    assert shape(cohort("a", 80)) == shape(cohort("b", 80))
    assert shape(cohort("c", 80, seed=4)) != shape(cohort("d", 80))


def test_each_course_has_the_record_its_state_implies():
    for course in cohort("c2"):
        transitions = list(course.transitions.order_by("at", "id"))
        assert course.version == 1 + len(transitions)
        if course.state == State.REGISTERED:
            assert not transitions and not course.decision_confirmed
            continue
        assert transitions[-1].to_state == course.state, course.pk
        # Clinical dates as the services keep them: the course stratified as of its
        # start, never a move dated before the one before it, nothing in the future.
        days = [t.on for t in transitions]
        assert days[0] == course.start_date and days == sorted(days), course.pk
        assert days[-1] <= date(2026, 11, 24)
        assert course.last_clinical_on >= days[-1]
        assert course.decision.confirmed_at is not None
        assert course.steps.exists()
        if course.state in AFTER_CR2:
            assert course.assessments.filter(cr2=True).exists(), course.pk
        if course.state == State.TRANSPLANTED:
            assert course.hsct_referral.performed_on is not None
        if course.state == State.OFF_PROTOCOL:
            assert course.off_protocol_reason


def test_some_steps_are_late_and_original_plans_are_kept():
    cohort("c3")
    late_done = PlannedStep.objects.filter(status="done", done_on__gt=F("planned_on"))
    overdue = PlannedStep.objects.filter(status="planned", due_on__lt="2026-11-10")
    assert late_done.exists()
    assert overdue.exists()
    assert PlannedStep.objects.filter(~Q(due_on=F("planned_on"))).exists()


def test_top_up_adds_only_what_is_missing():
    TeamFactory(slug="demo")
    call_command("make_cohort", courses=10, team="demo", top_up=True, stdout=StringIO())
    call_command("make_cohort", courses=10, team="demo", top_up=True, stdout=StringIO())
    assert TreatmentCourse.objects.filter(patient__team__slug="demo").count() == 10


def test_an_unknown_team_is_a_clear_error():
    with pytest.raises(CommandError, match="No team with slug 'nope'"):
        call_command("make_cohort", courses=1, team="nope")


def test_the_cohort_carries_the_stratification_facts_and_full_decisions():
    from courses.models import CourseDecision, MrdResult
    from courses.services.facts import changed_facts, relapse_facts

    courses = cohort("c4", 120)
    statuses = {c.patient.frontline_status for c in courses}
    assert statuses == {"completed", "on_therapy"}  # never unknown read as on therapy
    for course in courses:
        patient = course.patient
        assert (patient.frontline_status == "completed") == (patient.frontline_end_date is not None)
        assert patient.birth_month is not None and patient.bcr_abl1 in ("negative", "unknown")
        decision = course.decision
        # Built with decision_values: warnings and cut-off dates are stored, not null.
        assert decision.warnings is not None and decision.cut_offs is not None
        assert decision.input_snapshot["frontline_status"] == patient.frontline_status
        assert course.proposed_group == decision.proposed_group  # None, never ""
        # The decision read exactly what the records say (age from the birth month...).
        assert changed_facts(decision.input_snapshot, relapse_facts(patient, course.relapse)) == []
    links = CourseDecision.objects.filter(course__in=courses)
    assert sorted(links.values_list("decision_id", flat=True)) == sorted(
        c.decision_id for c in courses
    )
    assert not MrdResult.objects.filter(course__in=courses, value=0).exists()
