"""Two clinicians moving the same course at the same moment, on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from config.api import Conflict
from courses import services
from courses.models import CourseTransition, TreatmentCourse

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_two_concurrent_transitions_one_wins_one_gets_409(postgres, team, clinician, make_course):
    course = make_course(team, clinician)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def move(name: str, **kwargs: str) -> None:
        try:
            barrier.wait(timeout=10)
            services.course_transition(
                course.pk, name=name, actor=clinician, now=timezone.now(), **kwargs
            )
            outcomes.append("ok")
        except Conflict as exc:
            outcomes.append(f"409:{exc.get_codes()}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=move, args=("start_induction",)),
        threading.Thread(target=move, args=("start_induction",)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["409:transition_not_allowed", "ok"]
    course = TreatmentCourse.objects.get(pk=course.pk)
    assert course.state == "induction"
    assert course.version == 3  # stratify + one start_induction
    assert CourseTransition.objects.filter(course=course, name="start_induction").count() == 1


def test_concurrent_stale_versions_never_lose_an_update(postgres, team, clinician, make_course):
    course = make_course(team, clinician)
    seen = course.version
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def move(name: str, **kwargs: str) -> None:
        try:
            barrier.wait(timeout=10)
            services.course_transition(
                course.pk,
                name=name,
                actor=clinician,
                now=timezone.now(),
                expected_version=seen,
                **kwargs,
            )
            outcomes.append(name)
        except Conflict as exc:
            outcomes.append(f"409:{exc.get_codes()}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=move, args=("start_induction",)),
        threading.Thread(
            target=move,
            args=("take_off_protocol",),
            kwargs={"reason": "parents withdrew consent", "off_protocol_reason": "withdrawal"},
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert "409:stale_version" in outcomes
    winners = [o for o in outcomes if not o.startswith("409")]
    assert len(winners) == 1
    course = TreatmentCourse.objects.get(pk=course.pk)
    assert CourseTransition.objects.filter(course=course).count() == 2  # stratify + winner
    assert (
        course.state
        == {"start_induction": "induction", "take_off_protocol": "off_protocol"}[winners[0]]
    )
