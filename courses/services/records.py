"""Clinical records: block administrations, response assessments, MRD results,
clinical events (follow-up contacts included) and the HSCT referral. Every write closes
the matching planned steps from the valid records (steps.link_records) and moves the
later due dates, whatever order the records come in.

A record is never deleted. One entered wrongly is voided with a reason (kept, shown as
voided, ignored by everything else: the related managers leave it out) or amended
with a reason (its old values, the new ones and the reason go to the audit trail);
both recompute the schedule and announce the change. A death or a second relapse
recorded on an active course ends it in the same transaction (off protocol, with that
reason, on the event's date); voiding that record reinstates the course.

Each record kind has one validator, ``{field: [messages]}`` (empty: fine), shared by
the services and the admin forms, so both refuse the same values with the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from config.errors import Invalid, Refused
from courses.bounds import number_bound, planned_date_errors, text_errors, value_errors
from courses.models import (
    ACTIVE_STATES,
    FOLLOW_UP_EVENT_KINDS,
    BlockAdministration,
    ClinicalEvent,
    ClinicalRecord,
    ContactStatus,
    DonorSearch,
    EmStatus,
    EventKind,
    HsctReferral,
    MrdResult,
    MrdUnit,
    OffProtocolReason,
    ResponseAssessment,
    State,
    TreatmentCourse,
)
from courses.selectors import block_starts, protocol_for
from courses.services.common import (
    audit,
    closed_message,
    is_closed,
    lock_course,
    mrd_time_point_errors,
    record_date_errors,
    require_active,
    touch,
)
from courses.services.hsct import hsct_refresh
from courses.services.steps import link_records
from courses.services.transitions import apply_transition
from courses.signals import announce
from courses.transitions import TransitionInput
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
    # The protocol's own blocks (its block_types): "R4" on an ALL-REZ BFM 90 course
    # would close no step and count as no block the protocol knows.
    allowed = protocol_for(course.protocol_slug).block_types
    if data.get("block_type") not in allowed:
        errors["block_type"] = [f"must be one of this protocol's blocks: {', '.join(allowed)}."]
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
    if data.get("cr2") and "cr2" not in errors and "assessed_on" not in errors:
        errors.update(_cr2_before_end_of_induction(course, data.get("assessed_on")))
    return errors


def _cr2_before_end_of_induction(course: TreatmentCourse, assessed_on: Any) -> dict:
    """CR2 is judged no earlier than the end of induction (Ponte di Legno consensus,
    Buchmann et al., Blood 2022): a marrow in remission before it is not CR2 yet. The
    end of induction follows the blocks as recorded (the protocol's
    ``end_of_induction``), so it is unknown until the block it counts from is recorded:
    then the CR2 waits for that block rather than being taken on trust. A protocol that
    names no end of induction is not checked."""
    protocol = protocol_for(course.protocol_slug)
    anchor = protocol.end_of_induction
    if anchor is None or not isinstance(assessed_on, date):
        return {}
    blocks = block_starts(course)
    ends = anchor.day(blocks)
    rule = "CR2 is judged no earlier than the end of induction"
    source = "Ponte di Legno consensus, Buchmann et al., Blood 2022"
    if ends is None:
        recorded = "; ".join(f"{kind} on {start}" for kind, start in blocks)
        recorded = f"blocks recorded: {recorded}" if blocks else "no block is recorded"
        return {
            "cr2": [
                f"{rule} ({anchor.words}, {protocol.title}; {source}), and {anchor.block} "
                f"is not recorded yet ({recorded}): record {anchor.block} first, or record "
                "this assessment without CR2."
            ]
        }
    if assessed_on < ends:
        return {
            "cr2": [
                f"{rule} ({ends}: {anchor.words}, {protocol.title}; {source}); this "
                f"assessment is dated {assessed_on}. Record it without CR2, or date the CR2 "
                f"assessment on or after {ends}."
            ]
        }
    return {}


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
    # The plausible range (courses/bounds.py), judged on the fractions that are stored
    # and said in the unit of entry too.
    fractions = {
        field: _as_fraction(data.get(field), unit)
        for field in ("value", "sensitivity")
        if field not in errors and isinstance(data.get(field), int | float)
    }
    for field in value_errors("MrdResult", fractions):
        bound = number_bound("MrdResult", field)
        words = f"must be between {bound.low:g} and {bound.high:g} as a fraction"
        if unit == MrdUnit.PERCENT:
            words += f" ({bound.low * 100:g} to {bound.high * 100:g} in percent)"
        errors[field] = [f"{words}: {bound.why}."]
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
    errors = _dates_errors(course, data, ("occurred_on",), today)
    status = data.get("contact_status") or ""
    if data.get("kind") == EventKind.FOLLOW_UP_CONTACT and not status:
        errors["contact_status"] = [
            "is required for a follow-up contact: " + ", ".join(ContactStatus.values) + "."
        ]
    elif data.get("kind") != EventKind.FOLLOW_UP_CONTACT and status:
        errors["contact_status"] = ["is only given for a follow-up contact."]
    return errors


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
    if "planned_on" not in errors:
        errors.update(
            planned_date_errors("planned_on", data.get("planned_on"), course.relapse.relapse_date)
        )
    return errors


def _bounded(
    model: type, check: Callable[[TreatmentCourse, Mapping[str, Any], date], dict]
) -> Callable[[TreatmentCourse, Mapping[str, Any], date], dict]:
    """The record kind's own checks, then the plausibility bounds of its values
    (courses/bounds.py) on the fields those checks left alone. (MRD values are judged
    by mrd_errors itself: they arrive in the unit of entry.)"""

    def run(course: TreatmentCourse, data: Mapping[str, Any], today: date) -> dict:
        errors = check(course, data, today)
        if model is not MrdResult:
            for field, messages in value_errors(model.__name__, data).items():
                errors.setdefault(field, messages)
        return errors

    return run


RECORD_ERRORS: dict[type, Callable[[TreatmentCourse, Mapping[str, Any], date], dict]] = {
    model: _bounded(model, check)
    for model, check in (
        (BlockAdministration, block_errors),
        (ResponseAssessment, assessment_errors),
        (MrdResult, mrd_errors),
        (ClinicalEvent, event_errors),
        (HsctReferral, referral_errors),
    )
}


# How a record's input becomes its stored fields, where they differ (MRD: the unit).
RECORD_FIELDS: dict[type, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    MrdResult: mrd_fields,
}


def _refusal_for_closed(course: TreatmentCourse, model: type, data: Mapping[str, Any]) -> str:
    """Why a closed course does not take this record ("" when it does): a completed or
    off-protocol course takes the patient's follow-up, unless it was entered in error."""
    if not is_closed(course):
        return ""
    follow_up = model is ClinicalEvent and data.get("kind") in FOLLOW_UP_EVENT_KINDS
    if follow_up and course.off_protocol_reason != OffProtocolReason.ENTERED_IN_ERROR:
        return ""
    return closed_message(course)


def record_errors(
    model: type, course: TreatmentCourse, data: Mapping[str, Any], now: datetime
) -> dict[str, list[str]]:
    """Why recording ``data`` as a ``model`` on ``course`` would be refused (for the
    admin forms, which show every problem at once before calling the service)."""
    refusal = _refusal_for_closed(course, model, data)
    if refusal:
        return {"course": [refusal]}
    return RECORD_ERRORS[model](course, data, course.patient.team.today(now))


# --- recording --------------------------------------------------------------------------

# The records the HSCT decision reads (courses.services.hsct): writing, amending or
# voiding one refreshes the proposal and checks a confirmed decision's basis.
HSCT_EVIDENCE = (MrdResult, BlockAdministration)


def _record(
    course: TreatmentCourse | int,
    model: type,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> tuple[TreatmentCourse, Any]:
    course = lock_course(course)
    refusal = _refusal_for_closed(course, model, data)
    if refusal:
        raise Refused(refusal, code="closed")
    Invalid.raise_if(RECORD_ERRORS[model](course, data, course.patient.team.today(now)))
    stored = RECORD_FIELDS.get(model, dict)(data)
    record = model.objects.create(course=course, recorded_by=actor, recorded_at=now, **stored)
    audit(course, actor, now, "recorded", model.__name__, record.pk, {**data, **stored})
    return course, record


def _settle(
    course: TreatmentCourse, model: type, actor: AbstractBaseUser, now: datetime
) -> None:
    """After any write on the course's records (of ``model``): the schedule follows the
    valid records, the latest clinical date is re-derived, the HSCT proposal follows
    the evidence it reads (an MRD result, or a block: the S2 deciding window opens
    after F2, so a sample entered before its F2 may decide now), and the change is
    announced (on commit)."""
    link_records(course)
    touch(course, now)
    if model in HSCT_EVIDENCE:
        hsct_refresh(course, actor, now)
    announce(course.pk)


@transaction.atomic
def block_record(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> BlockAdministration:
    course, block = _record(course, BlockAdministration, data, actor, now)
    _settle(course, BlockAdministration, actor, now)
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
    _settle(course, ResponseAssessment, actor, now)
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
    _settle(course, MrdResult, actor, now)
    return result


def _ending_reason(event: ClinicalEvent) -> str:
    """The off-protocol reason this event gives an active course ("" if it does not
    end it)."""
    if event.kind == EventKind.DEATH or (
        event.kind == EventKind.FOLLOW_UP_CONTACT and event.contact_status == ContactStatus.DEAD
    ):
        return OffProtocolReason.DEATH
    if event.kind == EventKind.SECOND_RELAPSE:
        return OffProtocolReason.SECOND_RELAPSE
    return ""


@transaction.atomic
def event_record(
    course: TreatmentCourse | int,
    *,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> ClinicalEvent:
    """Record a clinical event or follow-up contact (closed courses take these). A death
    or second relapse on an active course ends it here, in the same transaction: off
    protocol with that reason, dated the event's date."""
    course, event = _record(course, ClinicalEvent, data, actor, now)
    reason = _ending_reason(event)
    if reason and course.state in ACTIVE_STATES:
        given = TransitionInput(
            reason=f"{event.get_kind_display()} recorded ({event.occurred_on}).",
            off_protocol_reason=reason,
            on=event.occurred_on,
        )
        try:
            apply_transition(course, "take_off_protocol", given, actor, now)
        except Invalid as exc:  # the date is the event's: say so under its name
            raise Invalid({"occurred_on": exc.fields.get("on", [])}) from exc
        event.ended_course = True
        event.save(update_fields=["ended_course"])
    _settle(course, ClinicalEvent, actor, now)
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
    reason: str = "",
) -> HsctReferral:
    """Create or update the course's HSCT referral (one valid referral per course):
    ``data`` holds the fields that change. An update keeps the old values in the audit
    trail, like any amendment. The referral moves on as the transplant is prepared (a
    date filled in, the donor search moving forward: no reason needed); an update that
    changes what it already recorded is a correction and needs ``reason``
    (_corrected_fields)."""
    course = lock_course(course)
    require_active(course)
    referral = HsctReferral.objects.filter(course=course).first()
    if referral is not None:
        referral = _amend(course, referral, data, actor, now, reason)
        referral.recorded_by, referral.recorded_at = actor, now
        referral.save(update_fields=["recorded_by", "recorded_at"])
        _settle(course, HsctReferral, actor, now)
        return referral
    reason = (reason or "").strip()
    errors = RECORD_ERRORS[HsctReferral](course, data, course.patient.team.today(now))
    Invalid.raise_if({**errors, **text_errors("reason", reason)})
    referral = HsctReferral.objects.create(
        course=course, recorded_by=actor, recorded_at=now, **data
    )
    audit(
        course,
        actor,
        now,
        "recorded",
        "HsctReferral",
        referral.pk,
        {**data, "reason": reason} if reason else data,
    )
    _settle(course, HsctReferral, actor, now)
    return referral


# --- corrections ------------------------------------------------------------------------

# What a correction never touches: who recorded what when, the void, the link to the
# course and what the record did to it.
_NOT_AMENDABLE = frozenset(
    {
        "id",
        "course",
        "recorded_by",
        "recorded_at",
        "voided_at",
        "voided_by",
        "void_reason",
        "amended_at",
        "ended_course",
    }
)


def amendable_fields(model: type[ClinicalRecord]) -> tuple[str, ...]:
    """The record's own facts: every editable field but the bookkeeping ones (so a
    field added to a record kind can be amended without a change here)."""
    return tuple(
        f.name for f in model._meta.concrete_fields if f.editable and f.name not in _NOT_AMENDABLE
    )


def _event_amend_errors(event: ClinicalEvent, changes: Mapping[str, Any]) -> dict[str, list[str]]:
    """What an amendment cannot change on an event: what it is (a follow-up contact
    that becomes a death would end a course after the fact), nor the date of an event
    that ended the course (its off-protocol move carries that date)."""
    errors: dict[str, list[str]] = {}
    again = "void this record (with the reason) and record the right one."
    if "kind" in changes:
        errors["kind"] = [f"cannot be amended: {again}"]
    dead = ContactStatus.DEAD
    if "contact_status" in changes and dead in (event.contact_status, changes["contact_status"]):
        errors["contact_status"] = [f"cannot be amended to or from 'dead': {again}"]
    if "occurred_on" in changes and event.ended_course:
        errors["occurred_on"] = [
            f"this event ended the course on {event.occurred_on}: to change its date, {again}"
        ]
    return errors


def mrd_entry(record: MrdResult, unit: str | None = None) -> dict[str, Any]:
    """The stored result as an MRD entry in ``unit`` (default: the unit it was entered
    in): value and sensitivity converted from the stored fractions, with the unit. The
    web app's amend page starts from it, so a result typed in percent is corrected in
    percent."""
    unit = unit or record.entered_unit
    scale = 100.0 if unit == MrdUnit.PERCENT else 1.0
    entry: dict[str, Any] = {
        f: getattr(record, f) for f in amendable_fields(MrdResult) if f != "entered_unit"
    }
    for field in ("value", "sensitivity"):
        if entry[field] is not None:
            entry[field] = float(f"{entry[field] * scale:.12g}")
    return {**entry, "unit": unit}


def _mrd_amend_input(record: MrdResult, data: Mapping[str, Any]) -> dict[str, Any]:
    """An MRD amendment as an MRD entry: the stored result (fractions) in the unit the
    amendment names, with its changes. Without ``unit``, the changes are fractions."""
    unit = data.get("unit") or MrdUnit.FRACTION
    return {**mrd_entry(record, unit), **data, "unit": unit}


# How a referral moves on as the transplant is prepared: the donor search goes
# forward. Anything else (back to "not started", a found donor becoming none) changes
# what was recorded.
DONOR_SEARCH_PROGRESS: dict[str, frozenset[str]] = {
    DonorSearch.NOT_STARTED: frozenset(
        {DonorSearch.ONGOING, DonorSearch.DONOR_FOUND, DonorSearch.NO_DONOR}
    ),
    DonorSearch.ONGOING: frozenset({DonorSearch.DONOR_FOUND, DonorSearch.NO_DONOR}),
}


def _corrected_fields(record: ClinicalRecord, changes: Mapping[str, Any]) -> list[str]:
    """The fields whose recorded value ``changes`` overwrites: a correction, which
    needs a reason. Every change to a clinical record is one. The HSCT referral is also
    a record of progress (PUT .../hsct-referral/ as the work-up goes on): a field filled
    in where it was empty, or the donor search moving forward, corrects nothing."""
    if type(record) is not HsctReferral:
        return list(changes)
    corrected = []
    for field, new in changes.items():
        old = getattr(record, field)
        if field == "donor_search_status":
            if new not in DONOR_SEARCH_PROGRESS.get(old, frozenset()):
                corrected.append(field)
        elif old not in (None, ""):
            corrected.append(field)
    return corrected


def _reason_errors(
    record: ClinicalRecord, changes: Mapping[str, Any], reason: str
) -> dict[str, list[str]]:
    """An amendment says why: the reason is kept with the old and new values in the
    audit trail and shown beside the record (bounded like every free text)."""
    corrected = _corrected_fields(record, changes)
    if corrected and not reason:
        return {
            "reason": [
                f"is required to amend a record ({', '.join(corrected)} changed): say why "
                "the recorded value was wrong."
            ]
        }
    return text_errors("reason", reason)


def _amendment(
    record: ClinicalRecord, data: Mapping[str, Any], today: date, reason: str
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """What amending ``record`` with ``data`` would change, or why it is refused: the
    record as it would be stored is checked like a new one, plus what an amendment may
    never change, plus its reason (all at once, so the person fixes everything in one
    go)."""
    errors, changes = _amendment_changes(record, data, today)
    # With a field refused, what would change is judged on the fields given.
    judged = changes
    if errors:
        fields = amendable_fields(type(record))
        judged = {k: v for k, v in data.items() if k in fields and getattr(record, k) != v}
    return {**_reason_errors(record, judged, reason), **errors}, changes


def _amendment_changes(
    record: ClinicalRecord, data: Mapping[str, Any], today: date
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The record's own checks on the amended values, and the stored fields that would
    change."""
    model = type(record)
    fields = amendable_fields(model)
    # An MRD result is amended as it is entered: with the unit of its value, which is
    # stored as a fraction (entered_unit records the unit it was typed in).
    accepted = {*fields, "unit"} - {"entered_unit"} if model is MrdResult else set(fields)
    errors: dict[str, list[str]] = {k: ["cannot be amended."] for k in data if k not in accepted}
    if errors:
        return errors, {}
    course = record.course
    if model is MrdResult:
        if {"value", "sensitivity"} & set(data) and "unit" not in data:
            return {"unit": ["is required with a new value or sensitivity."]}, {}
        entry = _mrd_amend_input(record, data)
        errors = mrd_errors(course, entry, today)
        stored = {} if errors else mrd_fields(entry)
        if "unit" not in data:
            stored.pop("entered_unit", None)
    else:
        stored = {**{f: getattr(record, f) for f in fields}, **data}
        errors = RECORD_ERRORS[model](course, stored, today)
    changes = {k: v for k, v in stored.items() if getattr(record, k) != v}
    if model is ClinicalEvent:
        errors.update(_event_amend_errors(record, changes))
    return errors, changes


def amend_errors(
    record: ClinicalRecord, data: Mapping[str, Any], now: datetime, *, reason: str
) -> dict[str, list[str]]:
    """Why amending ``record`` with ``data`` for ``reason`` would be refused. Shared by
    the service and the admin's change form."""
    today = record.course.patient.team.today(now)
    return _amendment(record, data, today, (reason or "").strip())[0]


def _amend(
    course: TreatmentCourse,
    record: ClinicalRecord,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
    reason: str,
) -> Any:
    """Change ``record`` (locked) as ``data`` says, checked like a new record with the
    same values; the old values, the new ones and the reason go to the audit trail."""
    model = type(record)
    record.course = course  # the locked row, with its patient, team and relapse
    reason = (reason or "").strip()
    errors, changes = _amendment(record, data, course.patient.team.today(now), reason)
    Invalid.raise_if(errors)
    if not changes:
        return record
    before = {k: getattr(record, k) for k in changes}
    for key, value in changes.items():
        setattr(record, key, value)
    record.amended_at = now
    record.save(update_fields=[*changes, "amended_at"])
    audit(
        course,
        actor,
        now,
        "amended",
        model.__name__,
        record.pk,
        {"before": before, "after": changes, "reason": reason},
    )
    return record


def _locked_record(record: ClinicalRecord) -> tuple[TreatmentCourse, Any]:
    course = lock_course(record.course_id)
    locked = type(record).with_voided.select_for_update().get(pk=record.pk)
    locked.course = course  # its patient joined: the history reads the team from it
    return course, locked


@transaction.atomic
def record_amend(
    record: ClinicalRecord,
    *,
    data: Mapping[str, Any],
    reason: str,
    actor: AbstractBaseUser,
    now: datetime,
) -> Any:
    """Correct a record entered wrongly: ``data`` holds the fields that change and
    ``reason`` says why (required: a 400 naming ``reason`` without it). The old values,
    the new ones and the reason are kept in the audit trail; the schedule and the
    alerts follow."""
    course, record = _locked_record(record)
    if record.voided_at is not None:
        raise Refused(
            "A voided record cannot be amended; record the right values anew.", code="voided"
        )
    record = _amend(course, record, data, actor, now, reason)
    _settle(course, type(record), actor, now)
    return record


@transaction.atomic
def record_void(
    record: ClinicalRecord, *, reason: str, actor: AbstractBaseUser, now: datetime
) -> Any:
    """Void a record entered wrongly, with the reason: it is kept and shown as voided,
    and ignored from now on by the schedule (its step reopens), the guards, the alert
    rules and the figures. Voiding the death or second relapse that ended the course
    reinstates the course in the state it left."""
    course, record = _locked_record(record)
    model = type(record)
    if record.voided_at is not None:
        raise Refused(f"This record was already voided ({record.void_reason}).", code="voided")
    reason = reason.strip()
    if not reason:
        raise Invalid({"reason": ["is required to void a record."]})
    Invalid.raise_if(text_errors("reason", reason))
    record.voided_at, record.voided_by, record.void_reason = now, actor, reason
    record.save(update_fields=["voided_at", "voided_by", "void_reason"])
    audit(course, actor, now, "voided", model.__name__, record.pk, {"reason": reason})
    if model is ClinicalEvent and record.ended_course and course.state == State.OFF_PROTOCOL:
        given = TransitionInput(
            reason=f"The record that ended the course was voided: {reason}",
            on=course.patient.team.today(now),
        )
        apply_transition(course, "reinstate", given, actor, now)
    _settle(course, model, actor, now)
    return record


RECORD_SERVICES: dict[type, Callable[..., Any]] = {
    BlockAdministration: block_record,
    ResponseAssessment: assessment_record,
    MrdResult: mrd_record,
    ClinicalEvent: event_record,
    HsctReferral: referral_save,
}
