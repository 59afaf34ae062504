"""Patients and their relapses: pseudonymous references, dates judged on the team's
calendar, and relapse facts checked with the stratification's own validator (so the
API, the admin and the engine refuse the same relapse with the same words).

The same checks run on create and on update: a PATCH that moves the diagnosis after a
relapse is refused exactly as a POST with those dates is. A change to a fact that a
course's stratification read marks the decision stale (``refresh_staleness``) and is
audited on the course.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Min

from config.errors import Invalid
from courses.bounds import value_errors
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    HsctReferral,
    MrdResult,
    Patient,
    Relapse,
    ResponseAssessment,
    State,
    TreatmentCourse,
)
from courses.services.common import audit, lock_course, refresh_staleness
from courses.services.facts import relapse_facts
from courses.signals import announce
from stratification.facts import (
    UNKNOWN,
    derive_age_at_diagnosis_months,
    known,
    validate_facts,
)

# The facts validator names the stratification input; these are the same facts under
# the patient's field names.
PATIENT_FIELD_OF_FACT = {
    "initial_diagnosis_date": "initial_diagnosis_date",
    "relapse_date": "initial_diagnosis_date",
    "frontline_therapy_end_date": "frontline_end_date",
    "frontline_status": "frontline_status",
}
# ... and what a relapse answers for a fact that lives on its patient.
RELAPSE_FIELD_OF_FACT = {
    "initial_diagnosis_date": "relapse_date",
    "frontline_therapy_end_date": "relapse_date",
    "frontline_status": "relapse_date",
}
RELAPSE_FIELDS = (
    "relapse_date",
    "site",
    "em_sites",
    "bm_blast_percent",
    "immunophenotype",
    "relapse_number",
    "prior_hsct",
)


def _locked(model: type) -> Any:
    """Rows of ``model`` (not the joined team's) locked FOR NO KEY UPDATE. It serializes
    writers of the same patient or relapse, yet lets a course service that updated its
    course row twice commit: PostgreSQL then re-checks the course's foreign keys (FOR KEY
    SHARE on the patient and the relapse), which a plain FOR UPDATE held here, by a
    transaction waiting for that course's lock, would turn into a deadlock."""
    return model.objects.select_for_update(no_key=True, of=("self",))


def _add(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def relapse_label(relapse: Relapse) -> str:
    """How a message names another relapse: by its id and number, never by patient data."""
    number = relapse.relapse_number if relapse.relapse_number is not None else UNKNOWN
    return f"relapse {relapse.pk} (relapse number {number})"


def _frontline_errors(patient: Patient, today: date) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    diagnosis, end = patient.initial_diagnosis_date, patient.frontline_end_date
    status = patient.frontline_status
    if diagnosis and diagnosis > today:
        _add(errors, "initial_diagnosis_date", f"must not be in the future (today is {today}).")
    if end and diagnosis and end < diagnosis:
        _add(
            errors,
            "frontline_end_date",
            f"must not be before initial_diagnosis_date ({diagnosis}).",
        )
    elif end and end > today:
        _add(errors, "frontline_end_date", f"must not be in the future (today is {today}).")
    if status == "completed" and end is None:
        _add(errors, "frontline_end_date", "is required when frontline_status is completed.")
    elif status != "completed" and end is not None:
        _add(
            errors,
            "frontline_status",
            f"is {status} but frontline_end_date is given: an end date means completed; "
            "leave the end date empty otherwise.",
        )
    return errors


def _birth_errors(patient: Patient, today: date) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    year, month, diagnosis = patient.birth_year, patient.birth_month, patient.initial_diagnosis_date
    if year is None:
        return errors
    if year > today.year:
        _add(errors, "birth_year", f"must not be in the future (today is {today}).")
    elif month is not None and (year, month) > (today.year, today.month):
        _add(errors, "birth_month", f"must not be in the future (today is {today}).")
    if diagnosis is None or "birth_year" in errors or "birth_month" in errors:
        return errors
    if month is None:
        if diagnosis.year < year:
            _add(errors, "initial_diagnosis_date", f"must not be before the birth year ({year}).")
        return errors
    try:
        derive_age_at_diagnosis_months(year, month, diagnosis)
    except ValueError:
        _add(
            errors,
            "initial_diagnosis_date",
            f"must not be before the birth month ({year}-{month:02d}).",
        )
    return errors


def patient_errors(patient: Patient, now: datetime) -> dict[str, list[str]]:
    """Why ``patient`` (new, or with its changes applied) would be refused:
    ``{field: [messages]}``, empty when fine. Shared by the services and the admin.

    An existing patient's relapses are checked against the patient as it would be: the
    same fact checks a relapse meets when it is recorded, under the patient's field
    names and naming the relapse."""
    today = patient.team.today(now)
    errors = value_errors("Patient", {"birth_month": patient.birth_month})
    for found in (_frontline_errors(patient, today), _birth_errors(patient, today)):
        for field, messages in found.items():
            errors.setdefault(field, []).extend(messages)
    if patient.pk is not None:
        relapses = list(patient.relapses.all())
        if patient.sex == "female" and any("testis" in (r.em_sites or []) for r in relapses):
            _add(errors, "sex", "a relapse of this patient involves the testis.")
        if not errors:
            for relapse in relapses:
                found = validate_facts(relapse_facts(patient, relapse), today)
                for fact, messages in found.items():
                    field = PATIENT_FIELD_OF_FACT.get(fact)
                    if field is None:
                        continue  # the relapse's own fields: not this change's doing
                    for message in messages:
                        _add(errors, field, f"{relapse_label(relapse)}: {fact} {message}")
    if (
        Patient.objects.filter(team_id=patient.team_id, reference=patient.reference)
        .exclude(pk=patient.pk)
        .exists()
    ):
        _add(errors, "reference", "is already used in this team.")
    return errors


def _with_frontline_status(data: Mapping[str, Any]) -> dict[str, Any]:
    """Absent front-line status where the end date is given: derived from it (an end
    date means completed, none means unknown -- never on therapy), as the dry-run
    stratification does."""
    data = dict(data)
    if "frontline_status" not in data and "frontline_end_date" in data:
        data["frontline_status"] = "completed" if data["frontline_end_date"] else "unknown"
    return data


@transaction.atomic
def patient_create(*, team_id: int, data: Mapping[str, Any], now: datetime) -> Patient:
    data = _with_frontline_status(data)
    patient = Patient(team_id=team_id, **data)
    Invalid.raise_if(patient_errors(patient, now))
    patient.save()
    return patient


@transaction.atomic
def patient_update(
    patient: Patient, data: Mapping[str, Any], now: datetime, *, actor: AbstractBaseUser
) -> Patient:
    """Change a patient. Relapses recorded with the diagnosis immunophenotype (no
    lineage switch recorded) follow a correction of it. Every course of the patient
    whose decision read a changed fact is marked stale, with an audit entry."""
    patient = _locked(Patient).select_related("team").get(pk=patient.pk)
    before = {f.attname: getattr(patient, f.attname) for f in Patient._meta.concrete_fields}
    for key, value in _with_frontline_status(data).items():
        setattr(patient, key, value)
    Invalid.raise_if(patient_errors(patient, now))
    patient.save()
    changed = {
        k: (before[k], getattr(patient, k)) for k in before if before[k] != getattr(patient, k)
    }
    relapses = list(patient.relapses.all())
    if "immunophenotype" in changed:
        old, new = changed["immunophenotype"]
        following = [r for r in relapses if r.immunophenotype == old]
        Relapse.objects.filter(pk__in=[r.pk for r in following]).update(immunophenotype=new)
        for relapse in following:
            relapse.immunophenotype = new
    if changed:
        _after_fact_change(patient, relapses, "patient", patient.pk, changed, actor, now)
    return patient


def _after_fact_change(
    patient: Patient,
    relapses: Iterable[Relapse],
    target: str,
    target_id: int,
    changed: Mapping[str, tuple[Any, Any]],
    actor: AbstractBaseUser,
    now: datetime,
) -> None:
    """Re-judge the decisions of the courses on ``relapses`` against the changed
    records, and audit the change on each course."""
    today = patient.team.today(now)
    by_relapse = {r.pk: r for r in relapses}
    for course_id in TreatmentCourse.objects.filter(relapse__in=by_relapse).values_list(
        "pk", flat=True
    ):
        course = lock_course(course_id)
        stale = refresh_staleness(course, patient, by_relapse[course.relapse_id], today)
        audit(
            course,
            actor,
            now,
            f"{target}_changed",
            target,
            target_id,
            {
                # audit() makes the dates plain (common._plain, recursively).
                "changed": {k: [old, new] for k, (old, new) in sorted(changed.items())},
                "decision_stale_fields": stale,
            },
        )
        announce(course.pk)


# --- relapses ---------------------------------------------------------------------------


def _transplant_before(patient: Patient, day: date) -> tuple[int, str] | None:
    """Where a transplant of this patient is recorded here before ``day`` (an earlier
    course): (course id, what says so), or None. A referral's transplant date says so,
    and so does a course that reached the transplant (the transplanted state, which a
    completed course after a transplant went through) before ``day``."""
    referral = (
        HsctReferral.objects.filter(course__patient=patient, performed_on__lt=day)
        .order_by("performed_on")
        .first()
    )
    if referral is not None:
        return referral.course_id, f"a transplant on {referral.performed_on}"
    moved = (
        CourseTransition.objects.filter(
            course__patient=patient, to_state=State.TRANSPLANTED, on__lt=day
        )
        .order_by("on")
        .first()
    )
    if moved is not None:
        return moved.course_id, f"the move to transplanted on {moved.on}"
    return None


# The clinical dates recorded on a course, which must not come before its relapse.
COURSE_DATES = (
    (BlockAdministration, "start_date", "a block"),
    (ResponseAssessment, "assessed_on", "a response assessment"),
    (MrdResult, "sampled_on", "an MRD result"),
    (ClinicalEvent, "occurred_on", "an event"),
    (HsctReferral, "referred_on", "the HSCT referral"),
)


def _first_course_date(relapse: Relapse) -> tuple[date, int, str] | None:
    """The earliest clinical date recorded on the relapse's course, with the course id
    and what it is; None without a course or a date."""
    course = TreatmentCourse.objects.filter(relapse=relapse).only("pk", "start_date").first()
    if course is None:
        return None
    found = [(course.start_date, "the start of therapy")] if course.start_date else []
    for model, field, what in COURSE_DATES:
        day = model.objects.filter(course=course).aggregate(first=Min(field))["first"]
        if day is not None:
            found.append((day, what))
    if not found:
        return None
    day, what = min(found, key=lambda item: item[0])
    return day, course.pk, what


# Why the relapse number and prior HSCT must be given when the records here do not say.
_NOT_FROM_THE_RECORDS = (
    "Both built-in protocols are for first relapses without a prior HSCT, so this decides "
    "whether the relapse can be stratified at all; unknown makes the stratification "
    "needs_review."
)
REQUIRED_UNLESS_RECORDED = {
    "relapse_number": "is required: no earlier relapse of this patient is recorded here, "
    "so the records cannot say which relapse this is. Give 1 for a first relapse, the "
    f"number of a later one, or unknown. {_NOT_FROM_THE_RECORDS}",
    "prior_hsct": "is required: no transplant of this patient is recorded here, so the "
    "records cannot say whether there was one before this relapse. Give true, false or "
    f"unknown. {_NOT_FROM_THE_RECORDS}",
}


def _number_from_records(patient: Patient, day: date) -> int | None:
    """One more than the patient's latest earlier relapse recorded here (a second
    relapse recorded as number 1 would be stratified as a first one); None without an
    earlier relapse, or when that one's number is unknown."""
    earlier = [r for r in patient.relapses.all() if r.relapse_date < day]
    if not earlier:
        return None
    latest = max(earlier, key=lambda r: r.relapse_date)
    return latest.relapse_number + 1 if latest.relapse_number is not None else None


def _with_recorded_facts(
    patient: Patient, data: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A new relapse's number and prior HSCT, from the records kept here where they
    say (an earlier relapse recorded: the number follows it; a transplant recorded
    before this relapse: prior HSCT), else as given -- ``unknown`` is stored as None.
    Nothing is assumed: not given and not in the records is an error naming the field
    (returned beside the values). Where the records say, they win over ``unknown``; a
    given value that contradicts them is refused by relapse_errors."""
    data = dict(data)
    errors: dict[str, list[str]] = {}
    day = data.get("relapse_date")
    if not isinstance(day, date):
        return data, errors  # relapse_errors names the date; nothing to infer from
    for field, from_records in (
        ("relapse_number", lambda: _number_from_records(patient, day)),
        ("prior_hsct", lambda: True if _transplant_before(patient, day) else None),
    ):
        given = data.get(field)
        if given is not None and given != UNKNOWN:
            continue
        recorded = from_records()
        if recorded is not None:
            data[field] = recorded
        elif given == UNKNOWN:
            data[field] = None
        else:
            data.pop(field, None)
            errors[field] = [REQUIRED_UNLESS_RECORDED[field]]
    return data, errors


def relapse_errors(
    patient: Patient,
    data: Mapping[str, Any],
    now: datetime,
    *,
    relapse: Relapse | None = None,
) -> dict[str, list[str]]:
    """Why a relapse with ``data`` (all its fields as they would be stored) would be
    refused for ``patient``; ``relapse``: the one being changed. The stratification's
    own fact checks, in the relapse's field names, and its place among the patient's
    other relapses (one per date, numbered in date order).

    A new relapse (no ``relapse``) takes its number and prior HSCT from the records
    where they say (``_with_recorded_facts``), and must be given them otherwise; a
    stored relapse keeps its own (None: unknown), and ``unknown`` given stores None."""
    if relapse is None:
        filled, missing = _with_recorded_facts(patient, data)
    else:
        filled, missing = {k: known(v) for k, v in data.items()}, {}
    return _relapse_errors(patient, filled, missing, now, relapse)


def _relapse_errors(
    patient: Patient,
    data: Mapping[str, Any],
    missing: Mapping[str, list[str]],
    now: datetime,
    relapse: Relapse | None = None,
) -> dict[str, list[str]]:
    """relapse_errors on ``data`` as it would be stored (the number and prior HSCT
    filled in from the records, ``unknown`` as None), with ``missing``: the facts
    neither given nor recorded."""
    facts = relapse_facts(patient, data)
    errors = validate_facts(facts, patient.team.today(now))
    for field, messages in missing.items():
        errors.setdefault(field, messages)
    for field, messages in value_errors("Relapse", data).items():
        errors.setdefault(field, messages)  # the facts' own check may have said it
    # The facts validator speaks of the stratification input; a relapse names the
    # patient's diagnosis and front-line facts, which the client did not send here.
    for fact, field in RELAPSE_FIELD_OF_FACT.items():
        if fact in errors:
            errors.setdefault(field, []).extend(errors.pop(fact))
    if patient.sex == "female" and "testis" in facts["em_sites"]:
        _add(errors, "em_sites", "'testis' is impossible for a patient recorded as female.")
    day, number = data.get("relapse_date"), data.get("relapse_number")
    if not isinstance(day, date) or "relapse_date" in errors:
        return errors
    others = [r for r in patient.relapses.all() if relapse is None or r.pk != relapse.pk]
    same_day = next((r for r in others if r.relapse_date == day), None)
    if same_day is not None:
        _add(
            errors,
            "relapse_date",
            f"this patient already has a relapse on this date: {relapse_label(same_day)}.",
        )
    if isinstance(number, int) and "relapse_number" not in errors:
        # Relapses of unknown number say nothing about this one's.
        known = [r for r in others if r.relapse_number is not None]
        before = [r for r in known if r.relapse_date < day and r.relapse_number >= number]
        after = [r for r in known if r.relapse_date > day and r.relapse_number <= number]
        if before:
            last = max(before, key=lambda r: r.relapse_number)
            _add(
                errors,
                "relapse_number",
                f"must be at least {last.relapse_number + 1}: {relapse_label(last)} came "
                "before this one.",
            )
        elif after:
            first = min(after, key=lambda r: r.relapse_number)
            _add(
                errors,
                "relapse_number",
                f"must be below {first.relapse_number}: {relapse_label(first)} came after "
                "this one.",
            )
    first = _first_course_date(relapse) if relapse is not None else None
    if first is not None and day > first[0]:
        course_id, what = first[1], first[2]
        _add(
            errors,
            "relapse_date",
            f"must not be after {first[0]}, the first date recorded on course {course_id} "
            f"({what}): a course's dates are not before its relapse.",
        )
    if data.get("prior_hsct") is False:
        transplant = _transplant_before(patient, day)
        if transplant is not None:
            _add(
                errors,
                "prior_hsct",
                f"must be true: course {transplant[0]} records {transplant[1]}, before "
                "this relapse.",
            )
    return errors


def _relapse_values(patient: Patient, data: Mapping[str, Any]) -> dict[str, Any]:
    """The values to store: the immunophenotype at diagnosis when none was given, the
    EM sites in their canonical order."""
    facts = relapse_facts(patient, data)
    return {**data, "immunophenotype": facts["immunophenotype"], "em_sites": facts["em_sites"]}


@transaction.atomic
def relapse_create(*, patient: Patient, data: Mapping[str, Any], now: datetime) -> Relapse:
    # The patient's row lock serializes relapse writes of one patient: the duplicate
    # and numbering checks see every other relapse (the unique constraint backs them).
    patient = _locked(Patient).select_related("team").get(pk=patient.pk)
    data, missing = _with_recorded_facts(patient, data)
    Invalid.raise_if(_relapse_errors(patient, data, missing, now))
    return Relapse.objects.create(patient=patient, **_relapse_values(patient, data))


@transaction.atomic
def relapse_update(
    relapse: Relapse, data: Mapping[str, Any], now: datetime, *, actor: AbstractBaseUser
) -> Relapse:
    """Change a relapse's facts, with the checks of relapse_create; a course whose
    decision read a changed fact is marked stale, with an audit entry."""
    patient = _locked(Patient).select_related("team").get(pk=relapse.patient_id)
    relapse = _locked(Relapse).get(pk=relapse.pk)
    before = {f: getattr(relapse, f) for f in RELAPSE_FIELDS}
    merged = {**before, **{k: known(v) for k, v in data.items() if k in RELAPSE_FIELDS}}
    Invalid.raise_if(_relapse_errors(patient, merged, {}, now, relapse))
    for key, value in _relapse_values(patient, merged).items():
        setattr(relapse, key, value)
    relapse.save()
    changed = {
        k: (before[k], getattr(relapse, k)) for k in before if before[k] != getattr(relapse, k)
    }
    if changed:
        _after_fact_change(patient, [relapse], "relapse", relapse.pk, changed, actor, now)
    return relapse
