"""Moving a course through its state machine.

The guards are declared on the transitions (courses/transitions.py) and run here once,
on the locked course and what the request brought. A refusal is a
:class:`TransitionRefused` carrying the transitions allowed now.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django_fsm import ConcurrentTransition

from config.errors import Invalid, Refused
from courses.models import CourseTransition, TreatmentCourse
from courses.selectors import allowed_transitions
from courses.services.common import lock_course
from courses.signals import announce
from courses.transitions import (
    OffProtocolReason,
    TransitionInput,
    course_transitions,
    find,
    offered_through_api,
    refusal,
)


class TransitionRefused(Refused):
    code = "transition_not_allowed"


def apply_transition(
    course: TreatmentCourse,
    name: str,
    given: TransitionInput,
    actor: AbstractBaseUser,
    now: datetime,
) -> CourseTransition:
    """Run the transition's guards (once) on the locked course and what the request
    brought, then move the course and log the transition."""
    from_state = course.state
    transition = find(name, from_state)
    if transition is None:
        message = f"'{name}' is not possible from state '{from_state}'."
    else:
        problem = refusal(transition, course, given)
        message = None if problem is None else f"'{name}' is not possible now: {problem}."
    if message is not None:
        raise TransitionRefused(
            message, state=from_state, allowed_transitions=allowed_transitions(course)
        )
    getattr(course, name)(given)
    course.version += 1
    course.last_activity_at = now
    try:
        course.save()
    except ConcurrentTransition as exc:  # another writer changed the state under us
        raise TransitionRefused(
            "The course changed while this transition was being applied; reload it.",
            code="concurrent_change",
            allowed_transitions=[],
        ) from exc
    return CourseTransition.objects.create(
        course=course,
        name=name,
        from_state=from_state,
        to_state=course.state,
        actor=actor,
        at=now,
        reason=given.reason,
    )


@transaction.atomic
def course_transition(
    course: TreatmentCourse | int,
    *,
    name: str,
    actor: AbstractBaseUser,
    now: datetime,
    reason: str = "",
    off_protocol_reason: str = "",
    expected_version: int | None = None,
) -> TreatmentCourse:
    """Apply the transition ``name`` a client asked for. ``expected_version``: the
    version the client saw; another one means someone changed the course meanwhile."""
    course = lock_course(course)
    if expected_version is not None and expected_version != course.version:
        raise TransitionRefused(
            f"The course is at version {course.version}, not {expected_version}: someone "
            "changed it since you loaded it. Reload and try again.",
            code="stale_version",
            state=course.state,
            version=course.version,
            allowed_transitions=allowed_transitions(course),
        )
    offered = {t.name for t in course_transitions() if offered_through_api(t)}
    if name not in offered:
        raise Invalid({"transition": [f"unknown transition; one of {', '.join(sorted(offered))}."]})
    if off_protocol_reason and off_protocol_reason not in OffProtocolReason.values:
        raise Invalid({"off_protocol_reason": [f"one of {', '.join(OffProtocolReason.values)}."]})
    given = TransitionInput(reason=reason.strip(), off_protocol_reason=off_protocol_reason)
    apply_transition(course, name, given, actor, now)
    announce(course.pk)
    return course
