"""What every course service shares: the row lock, the audit entry, the "course still
takes records" checks, and the clinical-date check against the team's calendar.

Not part of the public API (courses.services re-exports the services only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from config.errors import Refused
from courses.models import AuditEntry, Patient, Relapse, State, TreatmentCourse
from courses.selectors import awaiting_confirmation, protocol_for
from courses.services.facts import changed_facts, relapse_facts


def lock_course(course: TreatmentCourse | int) -> TreatmentCourse:
    """The course row, locked until the transaction ends: two clinicians acting on
    the same course are serialized, and the second sees the first one's result."""
    pk = course if isinstance(course, int) else course.pk
    return (
        TreatmentCourse.objects.select_for_update(of=("self",))
        .select_related("patient", "patient__team", "relapse")
        .get(pk=pk)
    )


def audit(
    course: TreatmentCourse,
    actor: AbstractBaseUser,
    now: datetime,
    action: str,
    target: str,
    target_id: int | None,
    data: Mapping[str, Any],
) -> None:
    AuditEntry.objects.create(
        course=course,
        actor=actor,
        at=now,
        action=action,
        target=target,
        target_id=target_id,
        data={k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()},
    )


def touch(course: TreatmentCourse, now: datetime) -> None:
    course.last_activity_at = now
    TreatmentCourse.objects.filter(pk=course.pk).update(last_activity_at=now)


def require_schedule(course: TreatmentCourse) -> None:
    if course.start_date is None:
        raise Refused(
            "The course has no schedule until its stratification is confirmed.",
            code="not_stratified",
        )


def is_closed(course: TreatmentCourse) -> bool:
    return course.state in (State.COMPLETED, State.OFF_PROTOCOL)


def require_active(course: TreatmentCourse) -> None:
    if is_closed(course):
        raise Refused(f"The course is {course.state}; it takes no more records.", code="closed")


def record_date_errors(
    course: TreatmentCourse, field: str, value: date | None, today: date
) -> dict[str, list[str]]:
    """A clinical date on a course: not before the relapse, not after the team's today."""
    errors: dict[str, list[str]] = {}
    if value is None:
        return errors
    if value < course.relapse.relapse_date:
        errors[field] = [f"must not be before the relapse date ({course.relapse.relapse_date})."]
    elif value > today:
        errors[field] = [f"must not be in the future (today is {today})."]
    return errors


def mrd_time_point_errors(course: TreatmentCourse, field: str, point: Any) -> dict[str, list[str]]:
    """An MRD time point must come from the course's protocol's closed list, so that a
    result always finds its planned step (a typed "pre-HSCT" once missed ``pre_hsct``)."""
    points = protocol_for(course.protocol_slug).mrd_time_points
    if point in points:
        return {}
    words = ", ".join(f"{p} ({p.label})" for p in points)
    return {field: [f"must be one of the protocol's MRD time points: {words}."]}


def refresh_staleness(
    course: TreatmentCourse, patient: Patient, relapse: Relapse, today: date
) -> list[str]:
    """Compare the course's current decision with the facts the records hold now and
    store the result: ``decision_stale_fields`` (the facts that changed) and
    ``decision_stale_since`` (the team's date since which the decision is stale or a
    re-stratification awaits confirmation; kept while either holds). ``course`` is
    locked by the caller. Returns the changed facts."""
    fields: list[str] = []
    if course.decision is not None:
        fields = changed_facts(course.decision.input_snapshot, relapse_facts(patient, relapse))
    awaiting = awaiting_confirmation(course)
    since = (course.decision_stale_since or today) if (fields or awaiting) else None
    if fields != course.decision_stale_fields or since != course.decision_stale_since:
        course.decision_stale_fields = fields
        course.decision_stale_since = since
        TreatmentCourse.objects.filter(pk=course.pk).update(
            decision_stale_fields=fields, decision_stale_since=since
        )
    return fields
