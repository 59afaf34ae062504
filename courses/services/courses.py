"""Opening a course and the clinical decisions that shape it: the risk group (the
engine proposes, a clinician confirms) and the HSCT indication; each lays out or
re-lays the protocol's schedule from the course's clinical start."""

from __future__ import annotations

from datetime import date, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from config.errors import Invalid, Refused
from courses import schedule
from courses.models import (
    ACTIVE_STATES,
    ClinicalEvent,
    EventKind,
    OffProtocolReason,
    PlannedStep,
    Relapse,
    State,
    StepStatus,
    TreatmentCourse,
)
from courses.selectors import allowed_transitions, protocol_for
from courses.services.common import audit, lock_course, require_active, require_schedule, touch
from courses.services.patients import relapse_facts
from courses.services.steps import link_records
from courses.services.transitions import apply_transition
from courses.signals import announce
from courses.transitions import TransitionInput
from stratification import services as stratification_services
from stratification.definitions import ProtocolDefinition
from stratification.facts import RelapseFacts
from stratification.models import DecisionAlreadyConfirmedError


@transaction.atomic
def course_create(
    *, relapse: Relapse, protocol_slug: str, actor: AbstractBaseUser, now: datetime
) -> TreatmentCourse:
    """Open a course for a relapse: run the engine and store its proposal. The course
    stays ``registered`` until a clinician confirms the risk group."""
    relapse = Relapse.objects.select_for_update().select_related("patient__team").get(pk=relapse.pk)
    if TreatmentCourse.objects.filter(relapse=relapse).exists():
        raise Invalid({"relapse": ["already has a treatment course."]})
    previous = _previous_course(relapse)
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
        previous_course=previous,
        last_activity_at=now,
    )
    audit(
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
            "previous_course": previous.pk if previous else None,
        },
    )
    announce(course.pk)
    return course


def _previous_course(relapse: Relapse) -> TreatmentCourse | None:
    """The course of the patient's latest earlier relapse, which a course for this
    (later) relapse links to. That course must have ended with the relapse recorded on
    it: its event-free survival ends there, and the two courses must not run side by
    side. A course entered in error is no earlier course."""
    earlier = (
        TreatmentCourse.objects.filter(
            patient_id=relapse.patient_id, relapse__relapse_date__lt=relapse.relapse_date
        )
        .exclude(off_protocol_reason=OffProtocolReason.ENTERED_IN_ERROR)
        .order_by("-relapse__relapse_date", "-pk")
        .first()
    )
    if earlier is None:
        return None
    if earlier.state in ACTIVE_STATES:
        raise Refused(
            f"Course {earlier.pk} (relapse of {earlier.relapse.relapse_date}) is still "
            f"{earlier.state}: record the second relapse on it first (that ends it), then "
            "open a course for this relapse.",
            code="earlier_course_active",
            course=earlier.pk,
        )
    recorded = ClinicalEvent.objects.filter(
        course=earlier, kind=EventKind.SECOND_RELAPSE, occurred_on__lte=relapse.relapse_date
    ).exists()
    if not recorded and earlier.off_protocol_reason != OffProtocolReason.SECOND_RELAPSE:
        raise Refused(
            f"Course {earlier.pk} (relapse of {earlier.relapse.relapse_date}) has no second "
            f"relapse recorded on or before {relapse.relapse_date}: record it there first, "
            "so that course's event-free survival ends with it.",
            code="second_relapse_not_recorded",
            course=earlier.pk,
        )
    return earlier


def _hsct_for_group(protocol: ProtocolDefinition, group: str) -> bool | None:
    rule = protocol.hsct_indication[group].indicated
    return rule if isinstance(rule, bool) else None


def _start_date_errors(course: TreatmentCourse, start: date, today: date) -> list[str]:
    """The clinical start: not in the future, not before the relapse, and not after a
    block already recorded (therapy began with it at the latest)."""
    if start > today:
        return [f"must not be in the future (today is {today})."]
    if start < course.relapse.relapse_date:
        return [f"must not be before the relapse date ({course.relapse.relapse_date})."]
    first = course.blocks.order_by("start_date", "pk").first()
    if first is not None and start > first.start_date:
        return [
            f"must not be after the first recorded block ({first.block_type} on "
            f"{first.start_date}): therapy began with it at the latest."
        ]
    return []


@transaction.atomic
def course_confirm_stratification(
    course: TreatmentCourse,
    *,
    risk_group: str,
    reason: str,
    actor: AbstractBaseUser,
    now: datetime,
    start_date: date | None = None,
) -> TreatmentCourse:
    """A clinician confirms the proposed group (or chooses another with a reason) and
    gives the day therapy began (``start_date``; by default the first recorded block's
    start, else the team's today). The course becomes ``stratified``; its schedule is
    laid out from that date, and what was recorded before is linked to it."""
    course = lock_course(course)
    today = course.patient.team.today(now)
    if course.state != State.REGISTERED:
        raise Refused(
            f"The course is already {course.state}; its stratification was confirmed.",
            code="already_stratified",
            allowed_transitions=allowed_transitions(course, today),
        )
    protocol = protocol_for(course.protocol_slug)
    if risk_group not in protocol.group_ids:
        raise Invalid({"risk_group": [f"must be one of {', '.join(sorted(protocol.group_ids))}."]})
    if start_date is None:
        first = course.blocks.order_by("start_date", "pk").first()
        start_date = first.start_date if first is not None else today
    problems = _start_date_errors(course, start_date, today)
    if problems:
        raise Invalid({"start_date": problems})
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
    course.start_date = start_date
    course.stratified_at = now
    _lay_out_steps(course, protocol)
    link_records(course)
    # The course is stratified as of its clinical start: the moves that follow (the
    # induction began that day) can then be dated back to it.
    apply_transition(course, "stratify", TransitionInput(reason=reason, on=start_date), actor, now)
    audit(
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
            "start_date": start_date,
        },
    )
    touch(course, now)
    announce(course.pk)
    return course


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
    course = lock_course(course)
    require_schedule(course)
    require_active(course)
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
    audit(
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
    announce(course.pk)
    return course


# --- laying out the schedule ---------------------------------------------------------


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
        PlannedStep.from_template(
            course, step, anchor, sequence=index, planned_on=row.planned_on, due_on=row.planned_on
        )
        for index, ((step, anchor), row) in enumerate(zip(rows, plan, strict=True))
    )


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
            step = PlannedStep.from_template(course, spec, anchor)
        step.anchor_key = anchor
        ordered.append(step)
        ordered += [c for c in customs if c.anchor_key == spec.id]
    placed = {s.key for s in ordered}
    ordered += [
        s for s in sorted(existing.values(), key=lambda s: s.sequence) if s.key not in placed
    ]
    # Two passes keep the unique (course, sequence) constraint true at every row.
    PlannedStep.objects.filter(course=course).update(sequence=F("sequence") + 100_000)
    new_steps = []
    for index, step in enumerate(ordered):
        step.sequence = index
        if step.pk is None:
            new_steps.append(step)
        else:
            PlannedStep.objects.filter(pk=step.pk).update(
                sequence=index, anchor_key=step.anchor_key
            )
    # A new step's plan is the protocol's plan from the clinical start, like every
    # other step's: its delay then says how much later than the protocol it is, the
    # time the decision took included.
    plan = {
        row.key: row.planned_on
        for row in schedule.plan(
            ((s.key, s.anchor_key, s.offset_days) for s in ordered), course.start_date
        )
    }
    schedule.recompute_due_dates_for_new(ordered, course.start_date)
    for step in new_steps:
        step.planned_on = plan[step.key]
    PlannedStep.objects.bulk_create(new_steps)
    # A record entered before its step existed (a pre-HSCT MRD, say) closes it now.
    link_records(course)
