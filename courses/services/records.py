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
    EmStatus,
    HsctReferral,
    MrdResult,
    MrdUnit,
    ResponseAssessment,
    StepKind,
    TreatmentCourse,
)
from courses.selectors import protocol_for
from courses.services.common import (
    audit,
    is_closed,
    lock_course,
    mrd_time_point_errors,
    record_date_errors,
    require_active,
    touch,
)
from courses.services.steps import complete_step
from courses.signals import announce
from stratification.engine import hsct_from_mrd
from stratification.facts import EM_DISEASE_SITES, MRD_QUALITATIVE_RESULTS

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
    elif (
        data.get("cr2")
        and data.get("em_status") == EmStatus.NOT_ASSESSED
        and course.relapse.site in EM_DISEASE_SITES
    ):
        # Remission is judged at every site the relapse involved (Ponte-di-Legno
        # consensus, Buchmann et al., Blood 2022): marrow alone cannot show it.
        sites = ", ".join(course.relapse.em_sites or []) or "an extramedullary site"
        errors["em_status"] = [
            f"must be assessed for CR2: the relapse involved {sites}, and CR2 requires no "
            "extramedullary disease there (Ponte-di-Legno consensus, Buchmann et al., "
            "Blood 2022)."
        ]
    return errors


# The largest number each MRD unit allows (a whole sample), and how a value reads in it.
MRD_UNIT_MAX = {MrdUnit.FRACTION: 1.0, MrdUnit.PERCENT: 100.0}
MRD_UNIT_EXAMPLE = {MrdUnit.FRACTION: "0.001 for 10^-3", MrdUnit.PERCENT: "0.1 for 10^-3"}


def mrd_errors(
    course: TreatmentCourse, data: Mapping[str, Any], today: date
) -> dict[str, list[str]]:
    """An MRD result cannot be misread: the unit of its value (and sensitivity) is
    named, a result is either a value or a qualitative one (negative / positive, not
    quantifiable), a qualitative result carries the sensitivity it lies below, and the
    time point is one of the protocol's."""
    errors = _dates_errors(course, data, ("sampled_on",), today)
    errors.update(mrd_time_point_errors(course, "time_point", data.get("time_point")))
    unit = data.get("unit")
    if unit not in MrdUnit.values:
        errors["unit"] = [
            "is required: fraction (0.001 = 10^-3) or percent (0.1 = 10^-3), the unit of "
            "value and sensitivity."
        ]
        return errors
    value, qualitative = data.get("value"), data.get("qualitative") or ""
    sensitivity = data.get("sensitivity")
    top = MRD_UNIT_MAX[unit]
    if value is not None and qualitative:
        errors["value"] = [f"give a value or a qualitative result ({qualitative}), not both."]
    elif value is None and not qualitative:
        errors["value"] = [
            "is required, unless the result is qualitative (negative, or "
            "positive_not_quantifiable)."
        ]
    elif value is not None and value == 0:
        errors["value"] = [
            "0 is not a measured value: record an undetectable result as qualitative "
            "negative, with the sensitivity of the assay."
        ]
    elif value is not None and not 0 < value <= top:
        errors["value"] = [
            f"must be above 0 and at most {top:g} in {unit} (e.g. {MRD_UNIT_EXAMPLE[unit]})."
        ]
    if qualitative and qualitative not in MRD_QUALITATIVE_RESULTS:
        errors["qualitative"] = [f"must be one of {', '.join(MRD_QUALITATIVE_RESULTS)}."]
    if sensitivity is None and qualitative:
        errors["sensitivity"] = [
            f"is required with a {qualitative.replace('_', ' ')} result: the limit of the "
            "assay it lies below (e.g. 10^-4), in the same unit."
        ]
    elif sensitivity is not None and not 0 < sensitivity <= top:
        errors["sensitivity"] = [f"must be above 0 and at most {top:g} in {unit}."]
    return errors


def _as_fraction(number: float | None, unit: str) -> float | None:
    # 0.1 / 100 is 0.0010000000000000002 in binary floating point: rounded to 12
    # significant digits, percent and fraction entries of one result store the same.
    if number is None or unit == MrdUnit.FRACTION:
        return number
    return float(f"{number / 100:.12g}")


def mrd_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The stored fields of a valid MRD entry: value and sensitivity as fractions, and
    the unit they were entered in."""
    fields = {k: v for k, v in data.items() if k != "unit"}
    fields["entered_unit"] = data["unit"]
    fields["value"] = _as_fraction(data.get("value"), data["unit"])
    fields["sensitivity"] = _as_fraction(data.get("sensitivity"), data["unit"])
    fields["qualitative"] = data.get("qualitative") or ""
    return fields


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


# How a record's input becomes its stored fields, where they differ (MRD: the unit).
RECORD_FIELDS: dict[type, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    MrdResult: mrd_fields,
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
    stored = RECORD_FIELDS.get(model, dict)(data)
    record = model.objects.create(course=course, recorded_by=actor, recorded_at=now, **stored)
    audit(course, actor, now, "recorded", model.__name__, record.pk, {**data, **stored})
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
    proposal -- undecided for a qualitative result the protocol file says does not
    decide. It is only a proposal: a clinician confirms it (course_confirm_hsct)."""
    if course.risk_group is None or course.hsct_indicated is not None:
        return
    rule = protocol_for(course.protocol_slug).hsct_indication.get(course.risk_group)
    if rule is None or rule.indicated != "mrd_threshold":
        return
    if result.time_point != rule.mrd_time_point:
        return
    outcome = hsct_from_mrd(rule, result.value, result.qualitative or None, result.sensitivity)
    basis = (
        f"Sample of {result.sampled_on}: {outcome.basis} Rule {outcome.rule}: "
        f"{outcome.source} ({outcome.confidence})."
    )
    TreatmentCourse.objects.filter(pk=course.pk).update(
        hsct_proposed=outcome.indicated, hsct_proposal_basis=basis
    )
    course.hsct_proposed, course.hsct_proposal_basis = outcome.indicated, basis
    audit(
        course,
        actor,
        now,
        "hsct_proposed",
        "course",
        course.pk,
        {"hsct_proposed": outcome.indicated, "basis": basis, "mrd_result": result.pk},
    )


def propose_hsct_from_recorded_mrd(
    course: TreatmentCourse, actor: AbstractBaseUser, now: datetime
) -> None:
    """After a change of group: the latest MRD result already recorded at the new
    group's deciding time point (if its indication hangs on MRD) becomes the proposal."""
    rule = protocol_for(course.protocol_slug).hsct_indication.get(course.risk_group or "")
    if rule is None or rule.indicated != "mrd_threshold":
        return
    latest = (
        course.mrd_results.filter(time_point=rule.mrd_time_point)
        .order_by("-sampled_on", "-id")
        .first()
    )
    if latest is not None:
        _propose_hsct_from_mrd(course, latest, actor, now)


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
