"""Clinical records: block administrations, response assessments, MRD results,
clinical events and the HSCT referral. Recording one completes the matching planned
step on the record's clinical date and moves the later due dates.

Each record kind has one validator, ``{field: [messages]}`` (empty: fine), shared by
the services and the admin forms, so both refuse the same values with the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from config.errors import Invalid
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    HsctReferral,
    MrdResult,
    ResponseAssessment,
    StepKind,
    TreatmentCourse,
)
from courses.selectors import protocol_for
from courses.services.common import (
    audit,
    is_closed,
    lock_course,
    record_date_errors,
    require_active,
    touch,
)
from courses.services.steps import complete_step
from courses.signals import announce

# --- validation -----------------------------------------------------------------------


def _dates_errors(
    course: TreatmentCourse, data: Mapping[str, Any], fields: Iterable[str], today: date
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field in fields:
        errors.update(record_date_errors(course, field, data.get(field), today))
    return errors


def _not_before(
    data: Mapping[str, Any], field: str, earlier: str, errors: dict[str, list[str]]
) -> None:
    if data.get(field) and data.get(earlier) and data[field] < data[earlier]:
        errors.setdefault(field, []).append(f"must not be before {earlier} ({data[earlier]}).")


def block_errors(
    course: TreatmentCourse, data: Mapping[str, Any], today: date
) -> dict[str, list[str]]:
    errors = _dates_errors(course, data, ("start_date", "end_date"), today)
    _not_before(data, "end_date", "start_date", errors)
    return errors


def assessment_errors(
    course: TreatmentCourse, data: Mapping[str, Any], today: date
) -> dict[str, list[str]]:
    errors = _dates_errors(course, data, ("assessed_on",), today)
    # CR2 means an M1 marrow and no extramedullary disease (CIBMTR / Ponte-di-Legno).
    if data.get("cr2") and data.get("marrow") != "M1":
        errors["cr2"] = ["CR2 requires an M1 marrow (< 5 % blasts)."]
    elif data.get("cr2") and data.get("em_status") in ("residual", "progressive"):
        errors["cr2"] = ["CR2 requires no extramedullary disease."]
    return errors


def mrd_errors(
    course: TreatmentCourse, data: Mapping[str, Any], today: date
) -> dict[str, list[str]]:
    errors = _dates_errors(course, data, ("sampled_on",), today)
    value = data.get("value")
    if value is None or not 0 <= value <= 1:
        errors["value"] = ["must be a fraction between 0 and 1 (e.g. 0.001 for 10^-3)."]
    sensitivity = data.get("sensitivity")
    if sensitivity is not None and not 0 < sensitivity <= 1:
        errors["sensitivity"] = ["must be a fraction above 0 and at most 1 (e.g. 0.0001)."]
    return errors


def event_errors(
    course: TreatmentCourse, data: Mapping[str, Any], today: date
) -> dict[str, list[str]]:
    return _dates_errors(course, data, ("occurred_on",), today)


def referral_errors(
    course: TreatmentCourse, data: Mapping[str, Any], today: date
) -> dict[str, list[str]]:
    """``data``: the referral as it would be stored (earlier values merged with the
    change)."""
    errors: dict[str, list[str]] = {}
    if not data.get("referred_on"):
        errors["referred_on"] = ["is required."]
    errors.update(_dates_errors(course, data, ("referred_on", "performed_on"), today))
    _not_before(data, "planned_on", "referred_on", errors)
    _not_before(data, "performed_on", "referred_on", errors)
    return errors


RECORD_ERRORS: dict[type, Callable[[TreatmentCourse, Mapping[str, Any], date], dict]] = {
    BlockAdministration: block_errors,
    ResponseAssessment: assessment_errors,
    MrdResult: mrd_errors,
    ClinicalEvent: event_errors,
    HsctReferral: referral_errors,
}


def record_errors(
    model: type, course: TreatmentCourse, data: Mapping[str, Any], now: datetime
) -> dict[str, list[str]]:
    """Why recording ``data`` as a ``model`` on ``course`` would be refused (for the
    admin forms, which show every problem at once before calling the service)."""
    if is_closed(course):
        return {"course": [f"the course is {course.state}; it takes no more records."]}
    return RECORD_ERRORS[model](course, data, course.patient.team.today(now))


# --- the services ---------------------------------------------------------------------


def _record(
    course: TreatmentCourse | int,
    model: type,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> tuple[TreatmentCourse, Any]:
    course = lock_course(course)
    require_active(course)
    Invalid.raise_if(RECORD_ERRORS[model](course, data, course.patient.team.today(now)))
    record = model.objects.create(course=course, recorded_by=actor, recorded_at=now, **data)
    audit(course, actor, now, "recorded", model.__name__, record.pk, data)
    touch(course, now)
    announce(course.pk)
    return course, record


@transaction.atomic
def block_record(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> BlockAdministration:
    course, block = _record(course, BlockAdministration, data, actor, now)
    if course.start_date:
        complete_step(course, kind=StepKind.BLOCK, on=block.start_date, block_type=block.block_type)
    return block


@transaction.atomic
def assessment_record(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> ResponseAssessment:
    course, assessment = _record(course, ResponseAssessment, data, actor, now)
    if course.start_date:
        complete_step(course, kind=StepKind.RESPONSE_ASSESSMENT, on=assessment.assessed_on)
    return assessment


@transaction.atomic
def mrd_record(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> MrdResult:
    course, result = _record(course, MrdResult, data, actor, now)
    if course.start_date:
        complete_step(
            course, kind=StepKind.MRD, on=result.sampled_on, mrd_time_point=result.time_point
        )
    _propose_hsct_from_mrd(course, result, actor, now)
    return result


def _propose_hsct_from_mrd(
    course: TreatmentCourse, result: MrdResult, actor: AbstractBaseUser, now: datetime
) -> None:
    """Where the group's HSCT indication hangs on MRD (ALL-REZ BFM 2002 S2: indicated
    at >= 10^-3 at the end of induction, Eckert 2013), the MRD result turns into a
    proposal. It is only a proposal: a clinician confirms it (course_confirm_hsct)."""
    if course.risk_group is None or course.hsct_indicated is not None:
        return
    rule = protocol_for(course.protocol_slug).hsct_indication.get(course.risk_group)
    if rule is None or rule.indicated != "mrd_threshold":
        return
    if result.time_point != rule.mrd_time_point:
        return
    proposed = result.value >= rule.mrd_threshold
    basis = (
        f"MRD {result.value:g} at {result.time_point} ({result.sampled_on}) is "
        f"{'at or above' if proposed else 'below'} {rule.mrd_threshold:g}: {rule.citation}"
    )[:300]
    TreatmentCourse.objects.filter(pk=course.pk).update(
        hsct_proposed=proposed, hsct_proposal_basis=basis
    )
    audit(
        course,
        actor,
        now,
        "hsct_proposed",
        "course",
        course.pk,
        {"hsct_proposed": proposed, "basis": basis},
    )


@transaction.atomic
def event_record(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> ClinicalEvent:
    _, event = _record(course, ClinicalEvent, data, actor, now)
    return event


REFERRAL_FIELDS = (
    "referred_on",
    "donor_search_status",
    "donor_type",
    "centre",
    "planned_on",
    "performed_on",
)


@transaction.atomic
def referral_save(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> HsctReferral:
    """Create or update the course's HSCT referral (one per course): ``data`` holds
    the fields that change."""
    course = lock_course(course)
    require_active(course)
    referral = HsctReferral.objects.filter(course=course).first()
    earlier = {f: getattr(referral, f) for f in REFERRAL_FIELDS} if referral else {}
    merged = {**earlier, **data}
    Invalid.raise_if(referral_errors(course, merged, course.patient.team.today(now)))
    if referral is None:
        referral = HsctReferral.objects.create(
            course=course, recorded_by=actor, recorded_at=now, **merged
        )
    else:
        for key, value in merged.items():
            setattr(referral, key, value)
        referral.recorded_by = actor
        referral.recorded_at = now
        referral.save()
    audit(course, actor, now, "recorded", "HsctReferral", referral.pk, data)
    touch(course, now)
    announce(course.pk)
    if course.start_date:
        complete_step(course, kind=StepKind.HSCT_REFERRAL, on=referral.referred_on)
        if referral.performed_on:
            complete_step(course, kind=StepKind.HSCT, on=referral.performed_on)
    return referral


RECORD_SERVICES: dict[type, Callable[..., Any]] = {
    BlockAdministration: block_record,
    ResponseAssessment: assessment_record,
    MrdResult: mrd_record,
    ClinicalEvent: event_record,
    HsctReferral: referral_save,
}
