"""course_changed is announced once per course per transaction, after it commits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from courses import services
from courses.signals import announce, course_changed

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent() -> Iterator[list[int]]:
    ids: list[int] = []

    def receiver(sender: Any, course_id: int, **kwargs: Any) -> None:
        ids.append(course_id)

    course_changed.connect(receiver, dispatch_uid="test-course-changed")
    yield ids
    course_changed.disconnect(dispatch_uid="test-course-changed")


@pytest.fixture
def two_courses(
    team: Any, clinician: Any, make_course: Any, django_capture_on_commit_callbacks: Any
) -> tuple[Any, Any]:
    with django_capture_on_commit_callbacks(execute=True):
        return make_course(team, clinician), make_course(team, clinician)


def test_several_writes_in_one_transaction_announce_each_course_once_after_commit(
    clinician, two_courses, sent, django_capture_on_commit_callbacks
):
    first, second = two_courses
    sent.clear()
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.course_transition(first, name="start_induction", actor=clinician, now=now)
        services.block_record(
            first,
            data={"block_type": "R2", "start_date": date(2026, 11, 20)},
            actor=clinician,
            now=now,
        )
        services.event_record(
            second,
            data={"kind": "withdrawal", "occurred_on": date(2026, 11, 23)},
            actor=clinician,
            now=now,
        )
        services.referral_save(
            first, data={"referred_on": date(2026, 11, 23)}, actor=clinician, now=now
        )
        assert sent == [], "nothing is announced before the commit"
    assert sent == [first.pk, second.pk]


def test_a_write_that_rolls_back_announces_nothing(
    clinician, two_courses, sent, django_capture_on_commit_callbacks
):
    course, _ = two_courses
    sent.clear()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.course_transition(
            course, name="start_induction", actor=clinician, now=timezone.now()
        )
        raise RuntimeError("the rest of the request failed")
    assert (callbacks, sent) == ([], [])


def test_an_announcement_lost_with_a_savepoint_is_made_again_by_a_later_write(
    two_courses, sent, django_capture_on_commit_callbacks
):
    course, _ = two_courses
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            announce(course.pk)
            raise RuntimeError("rolled back to the savepoint")
        announce(course.pk)
        announce(course.pk)
    assert sent == [course.pk]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_announcement_is_immediate(sent):
    # Autocommit, nothing to wait for: on_commit runs the callback at once.
    assert not transaction.get_connection().in_atomic_block
    announce(42)
    assert sent == [42]
