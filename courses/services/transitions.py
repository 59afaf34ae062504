"""Moving a course through its state machine.

The guards are declared on the transitions (courses/transitions.py) and run here once,
on the locked course and what the request brought. A refusal is a
:class:`TransitionRefused` carrying the transitions allowed now.

Every transition carries its clinical date ``on``: the day it happened on the team's
calendar (default: the team's today), never in the future, never before the relapse
nor before the previous transition's date. ``at`` (when it was recorded) stays for the
audit.
"""

from __future__ import annotations

from datetime import date, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django_fsm import ConcurrentTransition

from config.errors import Invalid, Refused
from courses.bounds import text_errors
from courses.models import CourseTransition, StepKind, StepStatus, TreatmentCourse
from courses.selectors import allowed_transitions
from courses.services.common import lock_course, record_date_errors, touch
from courses.signals import announce
from courses.transitions import (
    OffProtocolReason,
    TransitionInput,
    course_transitions,
    find,
    judge,
    offered_through_api,
)


class TransitionRefused(Refused):
    code = "transition_not_allowed"


def transition_date_errors(course: TreatmentCourse, on: date, today: date) -> list[str]:
    """Why ``on`` cannot be the clinical date of the course's next transition."""
    if problems := record_date_errors(course, "on", on, today):
        return problems["on"]
    previous = course.transitions.order_by("-on", "-at", "-id").first()
    if previous is not None and on < previous.on:
        return [f"must not be before the previous move ({previous.name} on {previous.on})."]
    return []


def apply_transition(
    course: TreatmentCourse,
    name: str,
    given: TransitionInput,
    actor: AbstractBaseUser,
    now: datetime,
) -> CourseTransition:
    """Check the clinical date, run the transition's guards (once) on the locked course
    and what the request brought, then move the course and log the transition.
    ``given.on`` must be set; an impossible date is ``Invalid`` on the field ``on``
    (callers that take the date under another name rename it)."""
    if given.on is None:
        raise ValueError("apply_transition needs the transition's clinical date")
    problems = transition_date_errors(course, given.on, course.patient.team.today(now))
    if problems:
        raise Invalid({"on": problems})
    from_state = course.state

    def refused(message: str) -> TransitionRefused:
        return TransitionRefused(
            message,
            state=from_state,
            allowed_transitions=allowed_transitions(course, course.patient.team.today(now)),
        )

    transition = find(name, from_state)
    if transition is None:
        raise refused(f"'{name}' is not possible from state '{from_state}'.")
    judgement = judge(transition, course, given)
    if judgement.refusal is not None:
        raise refused(f"'{name}' is not possible now: {judgement.refusal}.")
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
        on=given.on,
        at=now,
        reason=given.reason,
        overridden=[guard.name for guard in judgement.overridden],
        warnings=list(judgement.warnings),
    )


def _close_end_of_therapy(course: TreatmentCourse, on: date) -> None:
    """Completing the course is its end of therapy: the open end-of-therapy step is done
    on that date (so the schedule shows what happened, not an overdue step)."""
    course.steps.filter(kind=StepKind.END_OF_THERAPY, status=StepStatus.PLANNED).update(
        status=StepStatus.DONE, done_on=on, done_by="transition:complete"
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
    on: date | None = None,
    expected_version: int | None = None,
) -> TreatmentCourse:
    """Apply the transition ``name`` a client asked for, on the clinical date ``on``
    (default: the team's today). ``expected_version``: the version the client saw;
    another one means someone changed the course meanwhile."""
    course = lock_course(course)
    today = course.patient.team.today(now)
    if expected_version is not None and expected_version != course.version:
        raise TransitionRefused(
            f"The course is at version {course.version}, not {expected_version}: someone "
            "changed it since you loaded it. Reload and try again.",
            code="stale_version",
            state=course.state,
            version=course.version,
            allowed_transitions=allowed_transitions(course, today),
        )
    offered = {t.name for t in course_transitions() if offered_through_api(t)}
    if name not in offered:
        raise Invalid({"transition": [f"unknown transition; one of {', '.join(sorted(offered))}."]})
    if off_protocol_reason and off_protocol_reason not in OffProtocolReason.values:
        raise Invalid({"off_protocol_reason": [f"one of {', '.join(OffProtocolReason.values)}."]})
    Invalid.raise_if(text_errors("reason", reason))
    given = TransitionInput(
        reason=reason.strip(), off_protocol_reason=off_protocol_reason, on=on or today
    )
    apply_transition(course, name, given, actor, now)
    if name == "complete":
        _close_end_of_therapy(course, given.on)
    touch(course, now)
    announce(course.pk)
    return course
