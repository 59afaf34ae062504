"""Writes on patients, relapses, courses, steps and clinical records.

Every service is one visible transaction. Services that change a course lock its row
first (``select_for_update``), so two clinicians acting on the same course at once are
serialized: the second sees the first one's result and is refused with 409 if its
action no longer applies — never a lost update. Every write leaves an audit entry or
a CourseTransition. ``now`` is read once by the caller and passed down.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F as models_F
from django_fsm import ConcurrentTransition

from config.errors import Invalid, Refused
from courses import schedule, transitions
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
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from courses.selectors import allowed_transitions, protocol_for
from stratification import services as stratification_services
from stratification.definitions import ProtocolDefinition
from stratification.facts import RelapseFacts, validate_facts
from stratification.models import DecisionAlreadyConfirmedError

# --- helpers -------------------------------------------------------------------------


def team_today(team_time_zone: str, now: datetime) -> date:
    """The team's calendar date: "in the future" and "overdue" are judged locally."""
    return now.astimezone(zoneinfo.ZoneInfo(team_time_zone)).date()


def _audit(
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
        data=_jsonable(data),
    )


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}


def _lock(course: TreatmentCourse | int) -> TreatmentCourse:
    pk = course if isinstance(course, int) else course.pk
    return (
        TreatmentCourse.objects.select_for_update(of=("self",))
        .select_related("patient", "patient__team", "relapse")
        .get(pk=pk)
    )


def _check_record_date(
    course: TreatmentCourse, field: str, value: date | None, today: date
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if value is None:
        return errors
    if value < course.relapse.relapse_date:
        errors[field] = [f"must not be before the relapse date ({course.relapse.relapse_date})."]
    elif value > today:
        errors[field] = [f"must not be in the future (today is {today})."]
    return errors


# --- patients and relapses -------------------------------------------------------------


def _frontline_errors(diagnosis: date | None, end: date | None, today: date) -> dict:
    errors: dict[str, list[str]] = {}
    if diagnosis and diagnosis > today:
        errors["initial_diagnosis_date"] = [f"must not be in the future (today is {today})."]
    if end and diagnosis and end < diagnosis:
        errors["frontline_end_date"] = [f"must not be before initial_diagnosis_date ({diagnosis})."]
    elif end and end > today:
        errors["frontline_end_date"] = [f"must not be in the future (today is {today})."]
    return errors


@transaction.atomic
def patient_create(*, team_id: int, data: Mapping[str, Any], now: datetime) -> Patient:
    patient = Patient(team_id=team_id, **data)
    today = team_today(patient.team.time_zone, now)
    Invalid.raise_if(
        _frontline_errors(patient.initial_diagnosis_date, patient.frontline_end_date, today)
    )
    if Patient.objects.filter(team_id=team_id, reference=patient.reference).exists():
        raise Invalid({"reference": ["is already used in this team."]})
    patient.save()
    return patient


@transaction.atomic
def patient_update(patient: Patient, data: Mapping[str, Any], now: datetime) -> Patient:
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    for key, value in data.items():
        setattr(patient, key, value)
    today = team_today(patient.team.time_zone, now)
    errors = _frontline_errors(patient.initial_diagnosis_date, patient.frontline_end_date, today)
    if patient.sex == "female" and any(
        "testis" in (r.em_sites or []) for r in patient.relapses.all()
    ):
        errors["sex"] = ["a relapse of this patient involves the testis."]
    Invalid.raise_if(errors)
    if (
        "reference" in data
        and Patient.objects.filter(team_id=patient.team_id, reference=patient.reference)
        .exclude(pk=patient.pk)
        .exists()
    ):
        raise Invalid({"reference": ["is already used in this team."]})
    patient.save()
    return patient


def relapse_facts(patient: Patient, relapse: Relapse | Mapping[str, Any]) -> dict[str, Any]:
    get = relapse.get if isinstance(relapse, Mapping) else lambda k, d=None: getattr(relapse, k, d)
    return {
        "initial_diagnosis_date": patient.initial_diagnosis_date,
        "frontline_therapy_end_date": patient.frontline_end_date,
        "relapse_date": get("relapse_date"),
        "immunophenotype": get("immunophenotype") or patient.immunophenotype,
        "site": get("site"),
        "em_sites": list(get("em_sites") or []),
        "bm_blast_percent": get("bm_blast_percent"),
        "mrd_end_of_induction": None,
    }


@transaction.atomic
def relapse_create(*, patient: Patient, data: Mapping[str, Any], now: datetime) -> Relapse:
    today = team_today(patient.team.time_zone, now)
    facts = relapse_facts(patient, data)
    errors = validate_facts(facts, today)
    # The facts validator speaks of the stratification input; a relapse names the
    # patient's diagnosis and front-line dates, which the client did not send here.
    for field in ("initial_diagnosis_date", "frontline_therapy_end_date"):
        if field in errors:
            errors.setdefault("relapse_date", []).extend(errors.pop(field))
    if patient.sex == "female" and "testis" in facts["em_sites"]:
        errors.setdefault("em_sites", []).append(
            "'testis' is impossible for a patient recorded as female."
        )
    Invalid.raise_if(errors)
    data = {**data, "immunophenotype": facts["immunophenotype"], "em_sites": facts["em_sites"]}
    return Relapse.objects.create(patient=patient, **data)


# --- courses -------------------------------------------------------------------------------


@transaction.atomic
def course_create(
    *, relapse: Relapse, protocol_slug: str, actor: AbstractBaseUser, now: datetime
) -> TreatmentCourse:
    """Open a course for a relapse: run the engine and store its proposal. The course
    stays ``registered`` until a clinician confirms the risk group."""
    relapse = Relapse.objects.select_for_update().select_related("patient__team").get(pk=relapse.pk)
    if TreatmentCourse.objects.filter(relapse=relapse).exists():
        raise Invalid({"relapse": ["already has a treatment course."]})
    protocol = protocol_for(protocol_slug)
    facts = RelapseFacts.from_mapping(relapse_facts(relapse.patient, relapse))
    decision = stratification_services.decision_propose(facts=facts, protocol=protocol, now=now)
    course = TreatmentCourse.objects.create(
        patient=relapse.patient,
        relapse=relapse,
        protocol_slug=protocol.slug,
        protocol_version=protocol.version,
        decision=decision,
        proposed_group=decision.proposed_group or "",
        hsct_indicated=decision.hsct_indicated,
        last_activity_at=now,
    )
    _audit(
        course,
        actor,
        now,
        "course_created",
        "course",
        course.pk,
        {
            "protocol": protocol.slug,
            "version": protocol.version,
            "proposed_group": decision.proposed_group,
            "status": decision.status,
        },
    )
    return course


def _hsct_for_group(protocol: ProtocolDefinition, group: str) -> bool | None:
    rule = protocol.hsct_indication[group].indicated
    return rule if isinstance(rule, bool) else None


@transaction.atomic
def course_confirm_stratification(
    course: TreatmentCourse,
    *,
    risk_group: str,
    reason: str,
    actor: AbstractBaseUser,
    now: datetime,
) -> TreatmentCourse:
    """A clinician confirms the proposed group (or chooses another with a reason); the
    course becomes ``stratified`` and its schedule is laid out from the protocol."""
    course = _lock(course)
    if course.state != State.REGISTERED:
        raise Refused(
            f"The course is already {course.state}; its stratification was confirmed.",
            code="already_stratified",
            allowed_transitions=allowed_transitions(course),
        )
    protocol = protocol_for(course.protocol_slug)
    if risk_group not in protocol.group_ids:
        raise Invalid({"risk_group": [f"must be one of {', '.join(sorted(protocol.group_ids))}."]})
    try:
        decision = stratification_services.decision_confirm(
            decision=course.decision, user=actor, chosen_group=risk_group, reason=reason, now=now
        )
    except Invalid as exc:
        # The decision speaks of chosen_group/override_reason; this endpoint's fields
        # are risk_group/reason.
        names = {"chosen_group": "risk_group", "override_reason": "reason"}
        raise Invalid({names.get(k, k): v for k, v in exc.fields.items()}) from exc
    except DecisionAlreadyConfirmedError as exc:
        raise Refused(
            "This stratification was confirmed a moment ago by someone else; reload.",
            code="already_stratified",
        ) from exc
    course.risk_group = risk_group
    course.decision_confirmed = True
    course.hsct_indicated = (
        decision.hsct_indicated
        if risk_group == decision.proposed_group
        else _hsct_for_group(protocol, risk_group)
    )
    course.start_date = team_today(course.patient.team.time_zone, now)
    course.stratified_at = now
    _lay_out_steps(course, protocol)
    _apply_transition(course, "stratify", transitions.TransitionInput(reason=reason), actor, now)
    _audit(
        course,
        actor,
        now,
        "stratification_confirmed",
        "decision",
        decision.pk,
        {
            "proposed_group": decision.proposed_group,
            "chosen_group": risk_group,
            "reason": reason,
        },
    )
    return course


def _lay_out_steps(course: TreatmentCourse, protocol: ProtocolDefinition) -> None:
    template = protocol.schedule_for(course.risk_group)
    steps = template.steps_for(course.hsct_indicated)
    keys = {s.id for s in steps}
    rows = []
    for step in steps:
        # An anchor outside the chosen branch falls back to the course start.
        anchor = step.anchor if step.anchor in keys else ""
        rows.append((step, anchor))
    plan = schedule.plan(((s.id, a, s.offset_days) for s, a in rows), course.start_date)
    PlannedStep.objects.bulk_create(
        PlannedStep(
            course=course,
            sequence=index,
            key=step.id,
            anchor_key=anchor,
            kind=step.kind,
            label=step.label,
            block_type=step.block_type or "",
            mrd_time_point=step.mrd_time_point or "",
            offset_days=step.offset_days,
            grace_days=step.grace_days,
            planned_on=row.planned_on,
            due_on=row.planned_on,
            local_default=step.local_default,
            note=step.note,
        )
        for index, ((step, anchor), row) in enumerate(zip(rows, plan, strict=True))
    )


# --- transitions -------------------------------------------------------------------


class TransitionRefused(Refused):
    code = "transition_not_allowed"


def _apply_transition(
    course: TreatmentCourse,
    name: str,
    given: transitions.TransitionInput,
    actor: AbstractBaseUser,
    now: datetime,
) -> CourseTransition:
    """Run the transition's guards (once) on the locked course and what the request
    brought, then move the course and log the transition."""
    from_state = course.state
    [transition] = [
        t
        for t in transitions.course_transitions()
        if t.name == name and transitions.leaves(t, from_state)
    ]
    problem = transitions.refusal(transition, course, given)
    if problem is not None:
        raise TransitionRefused(
            f"'{name}' is not possible now: {problem}.",
            state=course.state,
            allowed_transitions=allowed_transitions(course),
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
    course = _lock(course)
    if expected_version is not None and expected_version != course.version:
        raise TransitionRefused(
            f"The course is at version {course.version}, not {expected_version}: someone "
            "changed it since you loaded it. Reload and try again.",
            code="stale_version",
            state=course.state,
            version=course.version,
            allowed_transitions=allowed_transitions(course),
        )
    offered = {
        t.name for t in transitions.course_transitions() if transitions.offered_through_api(t)
    }
    if name not in offered:
        raise Invalid({"transition": [f"unknown transition; one of {', '.join(sorted(offered))}."]})
    if off_protocol_reason and off_protocol_reason not in OffProtocolReason.values:
        raise Invalid({"off_protocol_reason": [f"one of {', '.join(OffProtocolReason.values)}."]})
    if not any(
        t.name == name and transitions.leaves(t, course.state)
        for t in transitions.course_transitions()
    ):
        raise TransitionRefused(
            f"'{name}' is not possible from state '{course.state}'.",
            state=course.state,
            allowed_transitions=allowed_transitions(course),
        )
    given = transitions.TransitionInput(
        reason=reason.strip(), off_protocol_reason=off_protocol_reason
    )
    _apply_transition(course, name, given, actor, now)
    return course


# --- planned steps ---------------------------------------------------------------------


def _recompute(course: TreatmentCourse) -> None:
    steps = list(course.steps.order_by("sequence"))
    changed = schedule.recompute_due_dates(steps, course.start_date)
    if changed:
        PlannedStep.objects.bulk_update(changed, ["due_on"])


def _touch(course: TreatmentCourse, now: datetime) -> None:
    course.last_activity_at = now
    TreatmentCourse.objects.filter(pk=course.pk).update(last_activity_at=now)


def _require_schedule(course: TreatmentCourse) -> None:
    if course.start_date is None:
        raise Refused(
            "The course has no schedule until its stratification is confirmed.",
            code="not_stratified",
        )


def _require_active(course: TreatmentCourse) -> None:
    if course.state in (State.COMPLETED, State.OFF_PROTOCOL):
        raise Refused(f"The course is {course.state}; it takes no more records.", code="closed")


@transaction.atomic
def step_add(
    course: TreatmentCourse, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> PlannedStep:
    """Add a step after an existing one (``after``: its key); later steps keep their
    own anchors."""
    course = _lock(course)
    _require_schedule(course)
    _require_active(course)
    steps = list(course.steps.order_by("sequence"))
    after_key = data.get("after") or (steps[-1].key if steps else "")
    after = next((s for s in steps if s.key == after_key), None)
    if after_key and after is None:
        raise Invalid({"after": ["no step with this key in the course."]})
    position = (after.sequence + 1) if after else 0
    # Shift the sequence numbers after the insertion point (from the end, so the
    # unique (course, sequence) constraint holds at every row).
    for step in sorted((s for s in steps if s.sequence >= position), key=lambda s: -s.sequence):
        PlannedStep.objects.filter(pk=step.pk).update(sequence=step.sequence + 1)
    key = f"added_{len(steps) + 1}"
    while any(s.key == key for s in steps):
        key += "_"
    base = (after.done_on or after.due_on) if after else course.start_date
    due = base + timedelta(days=data["offset_days"])
    step = PlannedStep.objects.create(
        course=course,
        sequence=position,
        key=key,
        anchor_key=after.key if after else "",
        kind=data["kind"],
        label=data.get("label") or str(data["kind"]).replace("_", " "),
        block_type=data.get("block_type", ""),
        mrd_time_point=data.get("mrd_time_point", ""),
        offset_days=data["offset_days"],
        grace_days=data.get("grace_days", 0),
        planned_on=due,
        due_on=due,
        note=data.get("note", ""),
        local_default=False,
    )
    _audit(course, actor, now, "step_added", "step", step.pk, {"key": key, **data})
    _touch(course, now)
    return step


@transaction.atomic
def step_update(
    step: PlannedStep, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> PlannedStep:
    """Reschedule (``due_on`` + reason), skip (``status=skipped`` + reason), record
    the actual date (``done_on``), or reopen (``status=planned``)."""
    course = _lock(step.course_id)
    _require_active(course)
    step = PlannedStep.objects.get(pk=step.pk)
    today = team_today(course.patient.team.time_zone, now)
    reason = (data.get("reason") or "").strip()
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    if "due_on" in data:
        if not reason:
            errors["reason"] = ["is required to reschedule a step."]
        step.rescheduled_on = data["due_on"]
        changes["due_on"] = data["due_on"]
    if "done_on" in data:
        errors.update(_check_record_date(course, "done_on", data["done_on"], today))
        step.done_on = data["done_on"]
        step.status = StepStatus.DONE if data["done_on"] else StepStatus.PLANNED
        changes["done_on"] = data["done_on"]
    if "status" in data:
        status = data["status"]
        if status == StepStatus.SKIPPED and not reason:
            errors["reason"] = ["is required to skip a step."]
        if status == StepStatus.DONE and not step.done_on:
            errors["done_on"] = ["is required to mark a step done."]
        if status in (StepStatus.PLANNED, StepStatus.SKIPPED, StepStatus.CANCELLED):
            step.done_on = None if status != StepStatus.DONE else step.done_on
        step.status = status
        changes["status"] = status
    Invalid.raise_if(errors)
    if reason:
        step.note = reason
        changes["reason"] = reason
    step.save()
    _recompute(course)
    _audit(course, actor, now, "step_updated", "step", step.pk, changes)
    _touch(course, now)
    step.refresh_from_db()
    return step


def _complete_step(
    course: TreatmentCourse, *, kind: str, on: date, **match: str
) -> PlannedStep | None:
    """Mark the first open step of this kind (and block type / MRD time point) done on
    the record's date and move the later due dates."""
    step = (
        course.steps.filter(kind=kind, status=StepStatus.PLANNED, **match)
        .order_by("sequence")
        .first()
    )
    if step is None:
        return None
    step.done_on = on
    step.status = StepStatus.DONE
    step.save(update_fields=["done_on", "status"])
    _recompute(course)
    return step


# --- clinical records ---------------------------------------------------------------------


# Validation of each record kind: {field: [messages]} (empty: fine). Shared by the
# services and the admin forms, so both refuse the same values with the same words.


def _dates_errors(
    course: TreatmentCourse, data: Mapping[str, Any], fields: Iterable[str], today: date
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field in fields:
        errors.update(_check_record_date(course, field, data.get(field), today))
    return errors


def block_errors(course: TreatmentCourse, data: Mapping[str, Any], today: date) -> dict:
    errors = _dates_errors(course, data, ("start_date", "end_date"), today)
    if data.get("end_date") and data.get("start_date") and data["end_date"] < data["start_date"]:
        errors.setdefault("end_date", []).append(
            f"must not be before start_date ({data['start_date']})."
        )
    return errors


def assessment_errors(course: TreatmentCourse, data: Mapping[str, Any], today: date) -> dict:
    errors = _dates_errors(course, data, ("assessed_on",), today)
    # CR2 means an M1 marrow and no extramedullary disease (CIBMTR / Ponte-di-Legno).
    if data.get("cr2") and data.get("marrow") != "M1":
        errors["cr2"] = ["CR2 requires an M1 marrow (< 5 % blasts)."]
    elif data.get("cr2") and data.get("em_status") in ("residual", "progressive"):
        errors["cr2"] = ["CR2 requires no extramedullary disease."]
    return errors


def mrd_errors(course: TreatmentCourse, data: Mapping[str, Any], today: date) -> dict:
    errors = _dates_errors(course, data, ("sampled_on",), today)
    value = data.get("value")
    if value is None or not 0 <= value <= 1:
        errors["value"] = ["must be a fraction between 0 and 1 (e.g. 0.001 for 10^-3)."]
    sensitivity = data.get("sensitivity")
    if sensitivity is not None and not 0 < sensitivity <= 1:
        errors["sensitivity"] = ["must be a fraction above 0 and at most 1 (e.g. 0.0001)."]
    return errors


def event_errors(course: TreatmentCourse, data: Mapping[str, Any], today: date) -> dict:
    return _dates_errors(course, data, ("occurred_on",), today)


def record_errors(
    model: type, course: TreatmentCourse, data: Mapping[str, Any], now: datetime
) -> dict[str, list[str]]:
    if course.state in (State.COMPLETED, State.OFF_PROTOCOL):
        return {"course": [f"the course is {course.state}; it takes no more records."]}
    today = team_today(course.patient.team.time_zone, now)
    return RECORD_ERRORS[model](course, data, today)


def _record(
    course: TreatmentCourse,
    model: type,
    data: Mapping[str, Any],
    actor: AbstractBaseUser,
    now: datetime,
) -> tuple[TreatmentCourse, Any]:
    course = _lock(course)
    _require_active(course)
    today = team_today(course.patient.team.time_zone, now)
    Invalid.raise_if(RECORD_ERRORS[model](course, data, today))
    record = model.objects.create(course=course, recorded_by=actor, recorded_at=now, **data)
    _audit(course, actor, now, "recorded", model.__name__, record.pk, data)
    _touch(course, now)
    return course, record


@transaction.atomic
def block_record(course, *, data, actor, now) -> BlockAdministration:  # noqa: ANN001
    course, block = _record(course, BlockAdministration, data, actor, now)
    if course.start_date:
        _complete_step(
            course, kind=StepKind.BLOCK, on=block.start_date, block_type=block.block_type
        )
    return block


@transaction.atomic
def assessment_record(course, *, data, actor, now) -> ResponseAssessment:  # noqa: ANN001
    course, assessment = _record(course, ResponseAssessment, data, actor, now)
    if course.start_date:
        _complete_step(course, kind=StepKind.RESPONSE_ASSESSMENT, on=assessment.assessed_on)
    return assessment


@transaction.atomic
def mrd_record(course, *, data, actor, now) -> MrdResult:  # noqa: ANN001
    course, result = _record(course, MrdResult, data, actor, now)
    if course.start_date:
        _complete_step(
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
    _audit(
        course,
        actor,
        now,
        "hsct_proposed",
        "course",
        course.pk,
        {"hsct_proposed": proposed, "basis": basis},
    )


@transaction.atomic
def course_confirm_hsct(
    course: TreatmentCourse,
    *,
    hsct_indicated: bool,
    reason: str,
    actor: AbstractBaseUser,
    now: datetime,
) -> TreatmentCourse:
    """A clinician decides the HSCT indication (confirming the MRD-based proposal, or
    overriding it — or the group's default — with a reason). The schedule gains the
    steps of the chosen branch (referral, pre-HSCT MRD, transplant; or maintenance)."""
    course = _lock(course)
    _require_schedule(course)
    _require_active(course)
    reason = reason.strip()
    expected = course.hsct_proposed if course.hsct_proposed is not None else course.hsct_indicated
    if hsct_indicated != expected and not reason:
        if expected is None:
            why = "no proposal exists yet (no MRD result at the deciding time point)"
        else:
            why = f"the protocol proposes {'HSCT' if expected else 'no HSCT'}"
        raise Invalid({"reason": [f"is required: {why}."]})
    previous = course.hsct_indicated
    course.hsct_indicated = hsct_indicated
    course.last_activity_at = now
    course.save(update_fields=["hsct_indicated", "last_activity_at"])
    if previous != hsct_indicated:
        _relay_out_branch(course, protocol_for(course.protocol_slug))
    _audit(
        course,
        actor,
        now,
        "hsct_confirmed",
        "course",
        course.pk,
        {
            "hsct_indicated": hsct_indicated,
            "proposed": course.hsct_proposed,
            "previous": previous,
            "reason": reason,
        },
    )
    return course


def _relay_out_branch(course: TreatmentCourse, protocol: ProtocolDefinition) -> None:
    """Bring the schedule in line with the (new) HSCT indication: add the chosen
    branch's steps, cancel the open steps of the other branch, keep what happened and
    the clinicians' own steps, and re-order so every step follows its anchor."""
    template = protocol.schedule_for(course.risk_group)
    wanted = template.steps_for(course.hsct_indicated)
    wanted_keys = [s.id for s in wanted]
    existing = {s.key: s for s in course.steps.all()}
    template_keys = {s.id for s in template.steps}
    for key, step in existing.items():
        if key in template_keys and key not in wanted_keys and step.status == StepStatus.PLANNED:
            step.status = StepStatus.CANCELLED
            step.save(update_fields=["status"])
    ordered: list[PlannedStep] = []
    customs = [s for s in existing.values() if s.key not in template_keys]
    for spec in wanted:
        step = existing.get(spec.id)
        anchor = spec.anchor if spec.anchor in wanted_keys else ""
        if step is None:
            step = PlannedStep(
                course=course,
                key=spec.id,
                kind=spec.kind,
                label=spec.label,
                block_type=spec.block_type or "",
                mrd_time_point=spec.mrd_time_point or "",
                offset_days=spec.offset_days,
                grace_days=spec.grace_days,
                local_default=spec.local_default,
                note=spec.note,
            )
        step.anchor_key = anchor
        ordered.append(step)
        ordered += [c for c in customs if c.anchor_key == spec.id]
    placed = {s.key for s in ordered}
    ordered += [
        s for s in sorted(existing.values(), key=lambda s: s.sequence) if s.key not in placed
    ]
    # Two passes keep the unique (course, sequence) constraint true at every row.
    PlannedStep.objects.filter(course=course).update(sequence=models_F("sequence") + 100_000)
    new_steps = []
    for index, step in enumerate(ordered):
        step.sequence = index
        if step.pk is None:
            new_steps.append(step)
        else:
            PlannedStep.objects.filter(pk=step.pk).update(
                sequence=index, anchor_key=step.anchor_key
            )
    # New steps are planned from today's schedule: their plan date is their first due
    # date, so their own delay counts from now.
    schedule.recompute_due_dates_for_new(ordered, course.start_date)
    for step in new_steps:
        step.planned_on = step.due_on
    PlannedStep.objects.bulk_create(new_steps)
    _recompute(course)


@transaction.atomic
def event_record(course, *, data, actor, now) -> ClinicalEvent:  # noqa: ANN001
    _, event = _record(course, ClinicalEvent, data, actor, now)
    return event


RECORD_ERRORS = {
    BlockAdministration: block_errors,
    ResponseAssessment: assessment_errors,
    MrdResult: mrd_errors,
    ClinicalEvent: event_errors,
}
RECORD_SERVICES = {
    BlockAdministration: block_record,
    ResponseAssessment: assessment_record,
    MrdResult: mrd_record,
    ClinicalEvent: event_record,
}


@transaction.atomic
def referral_save(
    course: TreatmentCourse, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> HsctReferral:
    """Create or update the course's HSCT referral (one per course)."""
    course = _lock(course)
    _require_active(course)
    today = team_today(course.patient.team.time_zone, now)
    referral = HsctReferral.objects.filter(course=course).first()
    merged = {
        **(
            {
                f: getattr(referral, f)
                for f in (
                    "referred_on",
                    "donor_search_status",
                    "donor_type",
                    "centre",
                    "planned_on",
                    "performed_on",
                )
            }
            if referral
            else {}
        ),
        **data,
    }
    errors: dict[str, list[str]] = {}
    if not merged.get("referred_on"):
        errors["referred_on"] = ["is required."]
    for field in ("referred_on", "performed_on"):
        errors.update(_check_record_date(course, field, merged.get(field), today))
    if (
        merged.get("planned_on")
        and merged.get("referred_on")
        and (merged["planned_on"] < merged["referred_on"])
    ):
        errors["planned_on"] = [f"must not be before referred_on ({merged['referred_on']})."]
    if (
        merged.get("performed_on")
        and merged.get("referred_on")
        and (merged["performed_on"] < merged["referred_on"])
    ):
        errors["performed_on"] = [f"must not be before referred_on ({merged['referred_on']})."]
    Invalid.raise_if(errors)
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
    _audit(course, actor, now, "recorded", "HsctReferral", referral.pk, data)
    _touch(course, now)
    if course.start_date:
        _complete_step(course, kind=StepKind.HSCT_REFERRAL, on=referral.referred_on)
        if referral.performed_on:
            _complete_step(course, kind=StepKind.HSCT, on=referral.performed_on)
    return referral
