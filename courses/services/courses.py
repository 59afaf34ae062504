"""Opening a course and the clinical decisions that shape it: the risk group (the
engine proposes, a clinician confirms; stratified again when a fact it read changed)
and the HSCT indication; each lays out or re-lays the protocol's schedule from the
course's clinical start."""

from __future__ import annotations

from datetime import date, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from config.errors import Invalid, Refused
from courses import schedule
from courses.bounds import text_errors
from courses.models import (
    ACTIVE_STATES,
    ClinicalEvent,
    CourseDecision,
    EventKind,
    OffProtocolReason,
    PlannedStep,
    Relapse,
    State,
    StepStatus,
    TreatmentCourse,
)
from courses.selectors import allowed_transitions, protocol_for
from courses.services.common import (
    audit,
    lock_course,
    record_date_errors,
    refresh_staleness,
    reload_facts,
    require_active,
    require_schedule,
    touch,
)
from courses.services.facts import relapse_facts
from courses.services.hsct import (
    evidence_for,
    flag_for_review,
    hsct_refresh,
    record_confirmation,
)
from courses.services.steps import is_added, link_records
from courses.services.transitions import apply_transition
from courses.signals import announce
from courses.transitions import TransitionInput
from stratification import services as stratification_services
from stratification.definitions import ProtocolDefinition, Step
from stratification.engine import on_therapy_errors
from stratification.facts import RelapseFacts, validate_facts
from stratification.models import DecisionAlreadyConfirmedError, StratificationDecision


def _checked_facts(
    relapse: Relapse,
    protocol: ProtocolDefinition,
    today: date,
    *,
    confirm_implausible: bool,
    implausible_reason: str,
) -> RelapseFacts:
    """The relapse's facts as the records hold them, checked as the dry run checks a
    request: the facts validator, then the protocol's own checks ("on therapy" long
    after diagnosis is refused unless confirmed with a reason)."""
    values = relapse_facts(
        relapse.patient,
        relapse,
        confirm_implausible=confirm_implausible,
        implausible_reason=implausible_reason,
    )
    errors = validate_facts(values, today)
    # The facts validator names the stratification input; the records name the
    # front-line end date so.
    if "frontline_therapy_end_date" in errors:
        errors["frontline_end_date"] = errors.pop("frontline_therapy_end_date")
    Invalid.raise_if(errors)
    facts = RelapseFacts.from_mapping(values)
    Invalid.raise_if(on_therapy_errors(facts, protocol))
    return facts


@transaction.atomic
def course_create(
    *,
    relapse: Relapse,
    protocol_slug: str,
    actor: AbstractBaseUser,
    now: datetime,
    confirm_implausible: bool = False,
    implausible_reason: str = "",
) -> TreatmentCourse:
    """Open a course for a relapse: run the engine and store its proposal. The course
    stays ``registered`` until a clinician confirms the risk group. A case outside the
    protocol's population gets no group (needs review, the exclusion named). A course
    for a later relapse links to the course of the earlier one."""
    # The relapse's own row (not its patient's or team's): one course per relapse.
    relapse = (
        Relapse.objects.select_for_update(no_key=True, of=("self",))
        .select_related("patient__team")
        .get(pk=relapse.pk)
    )
    existing = TreatmentCourse.objects.filter(relapse=relapse).values_list("pk", flat=True).first()
    if existing is not None:
        raise Invalid({"relapse": [f"already has a treatment course: course {existing}."]})
    previous = _previous_course(relapse)
    protocol = protocol_for(protocol_slug)
    facts = _checked_facts(
        relapse,
        protocol,
        relapse.patient.team.today(now),
        confirm_implausible=confirm_implausible,
        implausible_reason=implausible_reason,
    )
    decision = stratification_services.decision_propose(facts=facts, protocol=protocol, now=now)
    course = TreatmentCourse.objects.create(
        patient=relapse.patient,
        relapse=relapse,
        protocol_slug=protocol.slug,
        protocol_version=protocol.version,
        decision=decision,
        proposed_group=decision.proposed_group,
        hsct_indicated=decision.hsct_indicated,
        previous_course=previous,
        last_activity_at=now,
    )
    CourseDecision.objects.create(course=course, decision=decision, at=now)
    # What the proposed group's HSCT rule says, shown before anyone confirms.
    hsct_refresh(course, actor, now)
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
            "decision": decision.pk,
            "proposed_group": decision.proposed_group,
            "status": decision.status,
            "previous_course": previous.pk if previous else None,
        },
    )
    announce(course.pk)
    return course


@transaction.atomic
def course_restratify(
    course: TreatmentCourse,
    *,
    actor: AbstractBaseUser,
    now: datetime,
    confirm_implausible: bool | None = None,
    implausible_reason: str | None = None,
) -> TreatmentCourse:
    """Stratify the course again, with the facts the records hold now and the loaded
    protocol version, when its decision is stale (a fact it read changed) or was made
    with another version. The new decision is appended to the course's history and
    becomes the current one; a course that follows a confirmed group keeps it until a
    clinician confirms again (course_confirm_stratification). Without
    ``confirm_implausible``, the previous decision's confirmation of an implausible
    front-line status carries over (the clinician's statement about the same patient)."""
    course = lock_course(course)
    require_active(course)
    reload_facts(course)
    protocol = protocol_for(course.protocol_slug)
    previous = course.decision
    today = course.patient.team.today(now)
    changed = refresh_staleness(course, course.patient, course.relapse, today)
    if previous is not None and not changed and previous.protocol_version == protocol.version:
        raise Refused(
            "The current decision still holds: no fact it read has changed and it was made "
            f"with the loaded protocol version ({protocol.version}). Nothing to re-stratify.",
            code="decision_current",
        )
    snapshot = previous.input_snapshot if previous is not None else {}
    if confirm_implausible is None:
        confirm_implausible = bool(snapshot.get("confirm_implausible"))
        implausible_reason = snapshot.get("implausible_reason") or ""
    facts = _checked_facts(
        course.relapse,
        protocol,
        today,
        confirm_implausible=confirm_implausible,
        implausible_reason=implausible_reason or "",
    )
    decision = stratification_services.decision_propose(facts=facts, protocol=protocol, now=now)
    CourseDecision.objects.create(course=course, decision=decision, at=now)
    course.decision = decision
    course.proposed_group = decision.proposed_group
    course.last_activity_at = now
    if course.risk_group is None:
        # Nothing confirmed yet: the course simply waits for the new proposal's review,
        # on the version it was made with.
        course.protocol_version = protocol.version
        course.hsct_indicated = decision.hsct_indicated
    course.save(
        update_fields=[
            "decision",
            "proposed_group",
            "last_activity_at",
            "protocol_version",
            "hsct_indicated",
        ]
    )
    refresh_staleness(course, course.patient, course.relapse, today)
    hsct_refresh(course, actor, now)
    audit(
        course,
        actor,
        now,
        "restratified",
        "decision",
        decision.pk,
        {
            "previous_decision": previous.pk if previous is not None else None,
            "changed_facts": changed,
            "protocol_version": protocol.version,
            "proposed_group": decision.proposed_group,
            "status": decision.status,
            "confirmed_group": course.risk_group,
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
    if problems := record_date_errors(course, "start_date", start, today):
        return problems["start_date"]
    first = course.blocks.order_by("start_date", "pk").first()
    if first is not None and start > first.start_date:
        return [
            f"must not be after the first recorded block ({first.block_type} on "
            f"{first.start_date}): therapy began with it at the latest."
        ]
    return []


def _confirm_decision(
    course: TreatmentCourse, risk_group: str, reason: str, actor: AbstractBaseUser, now: datetime
) -> StratificationDecision:
    try:
        return stratification_services.decision_confirm(
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
    """A clinician confirms the proposed group (or chooses another with a reason).

    A registered course becomes ``stratified``: the clinician gives the day therapy
    began (``start_date``; by default the first recorded block's start, else the
    team's today), the schedule is laid out from that date, and what was recorded
    before is linked to it. A course already under way confirms its re-stratification:
    the group it follows becomes the chosen one, and if that changed, the open part of
    the schedule is laid out anew from the new group's template, everything recorded
    kept (its clinical start stays). A decision whose facts changed since it was made
    is not confirmed: stratify again."""
    Invalid.raise_if(text_errors("reason", reason))
    course = lock_course(course)
    reload_facts(course)
    today = course.patient.team.today(now)
    stale = refresh_staleness(course, course.patient, course.relapse, today)
    if stale:
        raise Refused(
            f"The facts this decision read have changed since ({', '.join(stale)}): "
            "re-stratify the course, then confirm the new proposal.",
            code="decision_stale",
            decision_stale_fields=stale,
        )
    if course.decision is None or course.decision.is_confirmed:
        raise Refused(
            f"The course is already {course.state}; its stratification was confirmed.",
            code="already_stratified",
            allowed_transitions=allowed_transitions(course, today),
        )
    protocol = protocol_for(course.protocol_slug)
    if risk_group not in protocol.group_ids:
        raise Invalid({"risk_group": [f"must be one of {', '.join(sorted(protocol.group_ids))}."]})
    if course.state != State.REGISTERED:
        if start_date is not None and start_date != course.start_date:
            raise Invalid(
                {
                    "start_date": [
                        f"is the course's clinical start ({course.start_date}); confirming a "
                        "re-stratification does not move it."
                    ]
                }
            )
        return _reconfirm(course, protocol, risk_group, reason, actor, now)
    if start_date is None:
        first = course.blocks.order_by("start_date", "pk").first()
        start_date = first.start_date if first is not None else today
    problems = _start_date_errors(course, start_date, today)
    if problems:
        raise Invalid({"start_date": problems})
    decision = _confirm_decision(course, risk_group, reason, actor, now)
    course.risk_group = risk_group
    course.decision_confirmed = True
    course.protocol_version = decision.protocol_version
    course.start_date = start_date
    course.stratified_at = now
    # A fixed indication (group A, S3/S4 ...) is confirmed with the group, by the same
    # clinician; an MRD-decided one waits for its deciding sample and confirm-hsct.
    indicated = (
        decision.hsct_indicated
        if risk_group == decision.proposed_group
        else _hsct_for_group(protocol, risk_group)
    )
    found = evidence_for(course)
    record_confirmation(
        course, indicated=indicated, found=found, reason=reason, actor=actor, now=now
    )
    _lay_out_steps(course, protocol)
    link_records(course)
    # What was recorded before the confirmation (a back-entered course) decides now.
    hsct_refresh(course, actor, now, found)
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


def _reconfirm(
    course: TreatmentCourse,
    protocol: ProtocolDefinition,
    risk_group: str,
    reason: str,
    actor: AbstractBaseUser,
    now: datetime,
) -> TreatmentCourse:
    """Confirm a re-stratification of a course under way (see
    course_confirm_stratification)."""
    require_active(course)
    decision = _confirm_decision(course, risk_group, reason, actor, now)
    previous_group = course.risk_group
    course.risk_group = risk_group
    course.decision_confirmed = True
    course.protocol_version = decision.protocol_version
    course.decision_stale_fields = []
    course.decision_stale_since = None
    course.last_activity_at = now
    relaid = risk_group != previous_group
    fields = [
        "risk_group",
        "decision_confirmed",
        "protocol_version",
        "decision_stale_fields",
        "decision_stale_since",
        "last_activity_at",
    ]
    review = ""
    if relaid:
        # The new group's HSCT indication; an MRD-dependent one is proposed again from
        # the MRD already recorded (hsct_refresh, below).
        indicated = (
            decision.hsct_indicated
            if risk_group == decision.proposed_group
            else _hsct_for_group(protocol, risk_group)
        )
        previous, confirmed_at = course.hsct_indicated, course.hsct_confirmed_at
        found = evidence_for(course)
        fields += record_confirmation(
            course, indicated=indicated, found=found, reason=reason, actor=actor, now=now
        )
        if confirmed_at is not None and previous is not None and previous != indicated:
            # A decision confirmed for the old group does not carry over silently: the
            # schedule follows the new group, and a clinician decides HSCT again.
            words = {True: "HSCT indicated", False: "no HSCT", None: "undecided (MRD-decided)"}
            review = (
                f"The group changed from {previous_group} to {risk_group}: the HSCT decision "
                f"confirmed on {confirmed_at.date()} ({words[previous]}) was made for group "
                f"{previous_group}; group {risk_group} gives {words[indicated]}. Confirm the "
                "HSCT indication for the new group."
            )
    course.save(update_fields=fields)
    if relaid:
        _relay_out(course, protocol)
        # The new group's proposal from the records (a fixed group's: none).
        hsct_refresh(course, actor, now, found)
        if review:
            flag_for_review(course, review, actor, now)
    audit(
        course,
        actor,
        now,
        "stratification_reconfirmed",
        "decision",
        decision.pk,
        {
            "previous_group": previous_group,
            "proposed_group": decision.proposed_group,
            "chosen_group": risk_group,
            "reason": reason,
            "schedule_relaid": relaid,
        },
    )
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
    Invalid.raise_if(text_errors("reason", reason))
    expected = course.hsct_proposed if course.hsct_proposed is not None else course.hsct_indicated
    if course.hsct_review_since is not None and not reason:
        raise Invalid(
            {
                "reason": [
                    "is required: the HSCT decision is under review since "
                    f"{course.hsct_review_since}: {course.hsct_review_reason} Say why it "
                    "stands or changes."
                ]
            }
        )
    if hsct_indicated != expected and not reason:
        if expected is None and course.hsct_proposal_basis:
            why = f"the MRD result does not decide it ({course.hsct_proposal_basis})"
        elif expected is None:
            why = "no proposal exists yet (no MRD result at the deciding time point)"
        else:
            why = f"the protocol proposes {'HSCT' if expected else 'no HSCT'}"
        raise Invalid({"reason": [f"is required: {why}."]})
    previous = course.hsct_indicated
    review = course.hsct_review_reason
    fields = record_confirmation(
        course,
        indicated=hsct_indicated,
        found=evidence_for(course),
        reason=reason,
        actor=actor,
        now=now,
    )
    course.last_activity_at = now
    course.save(update_fields=[*fields, "last_activity_at"])
    if previous != hsct_indicated:
        _relay_out(course, protocol_for(course.protocol_slug))
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
            "basis": course.hsct_confirmed_basis,
            "review_cleared": review,
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


def _relay_out(course: TreatmentCourse, protocol: ProtocolDefinition) -> None:
    """Bring the schedule in line with the course's group and HSCT indication (a new
    indication, or a new group after a re-stratification): what happened stays (done
    and skipped steps), open template steps the chosen template no longer holds are
    cancelled, open ones it still holds follow its specification, missing ones are
    added (a cancelled one it wants again is reopened), the clinicians' own steps stay,
    and the steps are re-ordered so that every step follows its anchor."""
    template = protocol.schedule_for(course.risk_group)
    wanted = template.steps_for(course.hsct_indicated)
    wanted_keys = [s.id for s in wanted]
    existing = {s.key: s for s in course.steps.all()}
    for key, step in existing.items():
        if not is_added(step) and key not in wanted_keys and step.status == StepStatus.PLANNED:
            step.status = StepStatus.CANCELLED
            step.save(update_fields=["status"])
    ordered: list[PlannedStep] = []
    customs = [s for s in existing.values() if is_added(s)]
    for spec in wanted:
        step = existing.get(spec.id)
        anchor = spec.anchor if spec.anchor in wanted_keys else ""
        if step is None:
            step = PlannedStep.from_template(course, spec, anchor)
        elif step.status in (StepStatus.PLANNED, StepStatus.CANCELLED):
            _follow_template(step, spec, course)
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
                sequence=index, **{f: getattr(step, f) for f in TEMPLATE_FIELDS}
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
    # A record entered before its step existed (a pre-HSCT MRD, say) closes it now, and
    # the later due dates follow.
    link_records(course)


# What a template step specifies; an open step follows it when its template changes
# (with the template's basis note), and the re-lay writes these back with the status.
SPEC_FIELDS = ("kind", "label", "block_type", "mrd_time_point", "offset_days", "grace_days")
TEMPLATE_FIELDS = ("anchor_key", *SPEC_FIELDS, "local_default", "note", "status")


def _follow_template(step: PlannedStep, spec: Step, course: TreatmentCourse) -> None:
    """An open (or cancelled) step takes the template's specification; its note is the
    template's only when the specification differs (a team's reason on a rescheduled
    step is kept otherwise). A cancelled step the template wants again is reopened."""
    fresh = PlannedStep.from_template(course, spec, step.anchor_key)
    if any(getattr(step, f) != getattr(fresh, f) for f in SPEC_FIELDS):
        for field in (*SPEC_FIELDS, "local_default", "note"):
            setattr(step, field, getattr(fresh, field))
    if step.status == StepStatus.CANCELLED:
        step.status = StepStatus.PLANNED
