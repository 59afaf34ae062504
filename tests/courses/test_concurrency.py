"""Two clinicians moving the same course at the same moment, on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from config.errors import Refused
from courses import services
from courses.models import CourseTransition, TreatmentCourse
from tests.conftest import run_concurrently

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def outcome(result: Any) -> str:
    if isinstance(result, Refused):
        return f"refused:{result.code}"
    if isinstance(result, Exception):
        raise result
    return "ok"


def test_two_concurrent_transitions_one_wins_one_is_refused(postgres, team, clinician, make_course):
    course = make_course(team, clinician)

    def move() -> TreatmentCourse:
        return services.course_transition(
            course.pk, name="start_induction", actor=clinician, now=timezone.now()
        )

    outcomes = sorted(outcome(r) for r in run_concurrently(move, move))
    assert outcomes == ["ok", "refused:transition_not_allowed"]
    course = TreatmentCourse.objects.get(pk=course.pk)
    assert course.state == "induction"
    assert course.version == 3  # stratify + one start_induction
    assert CourseTransition.objects.filter(course=course, name="start_induction").count() == 1


def test_concurrent_stale_versions_never_lose_an_update(postgres, team, clinician, make_course):
    course = make_course(team, clinician)
    seen = course.version

    def move(name: str, **kwargs: str) -> Any:
        return lambda: services.course_transition(
            course.pk,
            name=name,
            actor=clinician,
            now=timezone.now(),
            expected_version=seen,
            **kwargs,
        )

    results = run_concurrently(
        move("start_induction"),
        move(
            "take_off_protocol", reason="parents withdrew consent", off_protocol_reason="withdrawal"
        ),
    )
    outcomes = [outcome(r) for r in results]
    assert sorted(outcomes) == ["ok", "refused:stale_version"]
    winner = ["start_induction", "take_off_protocol"][outcomes.index("ok")]
    course = TreatmentCourse.objects.get(pk=course.pk)
    assert CourseTransition.objects.filter(course=course).count() == 2  # stratify + winner
    assert (
        course.state
        == {"start_induction": "induction", "take_off_protocol": "off_protocol"}[winner]
    )


def test_two_concurrent_entries_of_one_relapse_leave_one_and_name_it(postgres, team, make_patient):
    from datetime import date

    from config.errors import Invalid
    from courses.models import Relapse

    patient = make_patient(team)
    data = {
        "relapse_date": date(2024, 3, 1),
        "site": "isolated_bm",
        "bm_blast_percent": 80.0,
        "relapse_number": 1,
        "prior_hsct": False,
    }

    def enter() -> Relapse:
        return services.relapse_create(patient=patient, data=data, now=timezone.now())

    results = run_concurrently(enter, enter)
    [created] = [r for r in results if isinstance(r, Relapse)]
    [refused] = [r for r in results if isinstance(r, Invalid)]
    # The patient's row lock serialized them: the second saw the first and named it
    # (never an IntegrityError from the unique constraint behind the check).
    assert f"relapse {created.pk} (relapse number 1)" in refused.fields["relapse_date"][0]
    assert Relapse.objects.filter(patient=patient).count() == 1


def test_a_fact_changed_while_re_stratifying_leaves_the_course_stale(
    postgres, team, clinician, make_course
):
    course = make_course(team, clinician)
    services.patient_update(
        course.patient, {"bcr_abl1": "negative"}, timezone.now(), actor=clinician
    )

    def restratify() -> Any:
        return services.course_restratify(course.pk, actor=clinician, now=timezone.now())

    def correct() -> Any:
        return services.patient_update(
            course.patient, {"immunophenotype": "T"}, timezone.now(), actor=clinician
        )

    results = run_concurrently(restratify, correct)
    assert not [r for r in results if isinstance(r, Exception)], [str(r) for r in results]
    # Whichever committed first, the decision is judged against the facts as they end up.
    course = TreatmentCourse.objects.select_related("decision").get(pk=course.pk)
    if course.decision.input_snapshot["immunophenotype"] == "T":
        assert course.decision_stale_fields == []
    else:
        assert course.decision_stale_fields == ["immunophenotype"]
