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
