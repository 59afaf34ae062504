"""What every course service shares: the row lock, the audit entry, the "course still
takes records" checks, the clinical-date checks against the team's calendar, and the
course's latest clinical date.

Not part of the public API (courses.services re-exports the services only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections, router
from django.db.models import DateField, Func, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, NullIf
from django.db.models.sql import UpdateQuery

from config.errors import Refused
from courses.models import (
    AuditEntry,
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    HsctReferral,
    MrdResult,
    OffProtocolReason,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    State,
    StepStatus,
    TreatmentCourse,
)
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


def reload_facts(course: TreatmentCourse) -> None:
    """Read the course's patient and relapse afresh, after its lock is held. A
    ``SELECT ... FOR UPDATE`` that waited for the lock re-reads the locked row only:
    the rows it joined (select_related) are as they were when the statement began. A
    patient or relapse change committed meanwhile would then be missed, and a decision
    judged on facts that no longer hold. (A change not yet committed waits for this
    course's lock and re-judges the course after us.)"""
    course.patient = Patient.objects.select_related("team").get(pk=course.patient_id)
    course.relapse = Relapse.objects.get(pk=course.relapse_id)


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it (dates as ISO strings, at any depth)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


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
        data=_plain(data),
    )


# --- the course's latest clinical date ----------------------------------------------------

# Below every real date: stands for "none" inside GREATEST, which SQLite (unlike
# PostgreSQL) answers with NULL as soon as one argument is NULL.
_NO_DATE = date(1, 1, 1)


def _latest(model: type, field: str, **filters: Any) -> Func:
    rows = (
        model.objects.filter(course=OuterRef("pk"), **{f"{field}__isnull": False}, **filters)
        .order_by(f"-{field}")
        .values(field)[:1]
    )
    return Coalesce(Subquery(rows, output_field=DateField()), Value(_NO_DATE))


def latest_clinical_date() -> Func:
    """The course's latest clinical date, as one SQL expression: its start, the clinical
    dates of its transitions, of every valid record (the managers leave voided ones
    out) and of the steps done. NULL when the record holds none (a course opened and
    not yet confirmed, with nothing recorded)."""
    dates = [
        Coalesce("start_date", Value(_NO_DATE)),
        _latest(CourseTransition, "on"),
        _latest(BlockAdministration, "start_date"),
        _latest(BlockAdministration, "end_date"),
        _latest(ResponseAssessment, "assessed_on"),
        _latest(MrdResult, "sampled_on"),
        _latest(HsctReferral, "referred_on"),
        _latest(HsctReferral, "performed_on"),
        _latest(ClinicalEvent, "occurred_on"),
        _latest(PlannedStep, "done_on", status=StepStatus.DONE),
    ]
    return NullIf(Greatest(*dates, output_field=DateField()), Value(_NO_DATE))


def touch(course: TreatmentCourse, now: datetime) -> None:
    """Something was written on the course: when (the audit's clock), and what the
    latest clinical date on its record now is (re-derived, so a voided or amended
    record moves it back as well as forward)."""
    course.last_activity_at = now
    alias = router.db_for_write(TreatmentCourse)
    connection = connections[alias]
    sql, params, now_at, pk_at = _touch_statement(alias)
    values = list(params)
    values[now_at] = _ACTIVITY_FIELD.get_db_prep_save(now, connection)
    values[pk_at] = course.pk
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


# touch's UPDATE, compiled once per database: building and compiling its ten subqueries
# took about 5 ms of every write (several times the statement itself), which a demo
# load or a back-entry of a whole course pays hundreds of times. The statement is the
# ORM's own; only the two values that vary (the time and the course) are put in its
# parameters. {alias: (sql, params, index of the time, index of the course id)}
_TOUCH_STATEMENTS: dict[str, tuple[str, tuple[Any, ...], int, int]] = {}
_ACTIVITY_FIELD = TreatmentCourse._meta.get_field("last_activity_at")
_PLACEHOLDER_PK = -7_654_321


def _touch_statement(alias: str) -> tuple[str, tuple[Any, ...], int, int]:
    statement = _TOUCH_STATEMENTS.get(alias)
    if statement is None:
        connection = connections[alias]
        placeholder = datetime(1970, 1, 2, 3, 4, 5, tzinfo=UTC)
        query = UpdateQuery(TreatmentCourse)
        query.add_update_values(
            {"last_activity_at": placeholder, "last_clinical_on": latest_clinical_date()}
        )
        query.add_q(Q(pk=_PLACEHOLDER_PK))
        sql, params = query.get_compiler(alias).as_sql()
        params = tuple(params)
        adapted = _ACTIVITY_FIELD.get_db_prep_save(placeholder, connection)
        # Exactly one parameter each: anything else means the ORM compiled it otherwise.
        now_at = [i for i, p in enumerate(params) if type(p) is type(adapted) and p == adapted]
        pk_at = [i for i, p in enumerate(params) if p == _PLACEHOLDER_PK]
        if len(now_at) != 1 or len(pk_at) != 1:
            raise RuntimeError(f"touch: unexpected statement {sql!r} {params!r}")
        statement = _TOUCH_STATEMENTS[alias] = (sql, params, now_at[0], pk_at[0])
    return statement


# --- what a course still takes ------------------------------------------------------------


def require_schedule(course: TreatmentCourse) -> None:
    if course.start_date is None:
        raise Refused(
            "The course has no schedule until its stratification is confirmed.",
            code="not_stratified",
        )


def is_closed(course: TreatmentCourse) -> bool:
    return course.state in (State.COMPLETED, State.OFF_PROTOCOL)


def closed_message(course: TreatmentCourse) -> str:
    message = f"The course is {course.state}; it takes no more records."
    if course.off_protocol_reason == OffProtocolReason.ENTERED_IN_ERROR:
        return message + " It was entered in error."
    return (
        message + " Follow-up records are still taken: a follow-up contact, a second "
        "relapse, a death, a second malignancy, loss to follow-up."
    )


def require_active(course: TreatmentCourse) -> None:
    if is_closed(course):
        raise Refused(closed_message(course), code="closed")


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
