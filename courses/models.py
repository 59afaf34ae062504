"""Patients, relapses, treatment courses (a state machine), their planned steps,
clinical records and audit trail.

No names or identifying data: a patient is a pseudonymous ``reference`` that the
centre links to its own records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from courses.transitions import (
    AFTER_TRANSPLANT_DAY,
    BLOCK_RECORDED,
    CONFIRMED_DECISION,
    CR2_RECORDED,
    END_OF_THERAPY_REACHED,
    ENDING_RECORD_VOIDED,
    HSCT_DECIDED,
    HSCT_INDICATED,
    HSCT_NOT_INDICATED,
    LATEST_ASSESSMENT_CR2,
    MRD_BEFORE_TRANSPLANT,
    NOT_NON_RESPONSE,
    OFF_PROTOCOL_REASON,
    TRANSPLANT_DATE,
    OffProtocolReason,
    TransitionInput,
    recorded_as,
)
from courses.units import fraction_display
from stratification.definitions import MrdTimePoint, StepKind
from stratification.facts import (
    BCR_ABL1_VALUES,
    FRONTLINE_STATUSES,
    MRD_QUALITATIVE_RESULTS,
    Immunophenotype,
    Site,
)
from teams.models import Team

if TYPE_CHECKING:
    from stratification.definitions import Step

reference_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
    "Use 1-40 letters, digits, '.', '_' or '-' (a pseudonymous code, never a name).",
)


class Sex(models.TextChoices):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


# The words are the stratification facts' (stratification/facts.py); the labels are
# what a form shows.
FRONTLINE_STATUS_CHOICES = [
    (value, label)
    for value, label in zip(
        FRONTLINE_STATUSES,
        ("completed (end date known)", "on front-line therapy at the relapse", "unknown"),
        strict=True,
    )
]
BCR_ABL1_CHOICES = [
    (value, label)
    for value, label in zip(BCR_ABL1_VALUES, ("positive (Ph+)", "negative", "unknown"), strict=True)
]


class Patient(models.Model):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="patients")
    reference = models.CharField(max_length=40, validators=[reference_validator])
    birth_year = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1990), MaxValueValidator(2100)]
    )
    # Optional: with it the age at diagnosis is known (the infant exclusion); the day of
    # birth is never recorded.
    birth_month = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    sex = models.CharField(max_length=10, choices=Sex.choices)
    immunophenotype = models.CharField(max_length=4, choices=Immunophenotype.choices)
    bcr_abl1 = models.CharField(max_length=8, choices=BCR_ABL1_CHOICES, default="unknown")
    initial_diagnosis_date = models.DateField()
    frontline_protocol = models.CharField(max_length=80, blank=True)
    # "completed" with its end date; "on_therapy" (the relapse came during front-line
    # therapy) or "unknown" without one. Unknown is never read as on therapy.
    frontline_status = models.CharField(
        max_length=10, choices=FRONTLINE_STATUS_CHOICES, default="unknown"
    )
    frontline_end_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team_id", "reference"]
        constraints = [
            models.UniqueConstraint(fields=["team", "reference"], name="patient_unique_reference"),
            models.CheckConstraint(
                condition=models.Q(frontline_status="completed", frontline_end_date__isnull=False)
                | models.Q(
                    frontline_status__in=["on_therapy", "unknown"], frontline_end_date__isnull=True
                ),
                name="patient_frontline_end_date_iff_completed",
                violation_error_message="frontline_end_date is required when frontline_status "
                "is completed, and must be empty otherwise.",
            ),
        ]

    def __str__(self) -> str:
        return self.reference


class Relapse(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="relapses")
    relapse_date = models.DateField()
    site = models.CharField(max_length=12, choices=Site.choices)
    em_sites = models.JSONField(default=list, blank=True)
    bm_blast_percent = models.FloatField(null=True, blank=True)
    immunophenotype = models.CharField(max_length=4, choices=Immunophenotype.choices)
    # 1 for a first relapse. Both built-in protocols are for first relapses without a
    # prior HSCT, so neither has a default: the services infer them from the records
    # here or take them as given; null is "unknown" (the stratification needs review).
    relapse_number = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="1 for a first relapse; empty: unknown",
    )
    prior_hsct = models.BooleanField(
        null=True, blank=True, help_text="an HSCT before this relapse; empty: unknown"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient_id", "relapse_date"]
        constraints = [
            # The service names the existing relapse; this holds against a race.
            models.UniqueConstraint(
                fields=["patient", "relapse_date"],
                name="relapse_unique_patient_date",
                violation_error_message="This patient already has a relapse on this date.",
            ),
            models.CheckConstraint(
                condition=models.Q(relapse_number__gte=1),
                name="relapse_number_at_least_one",
                violation_error_message="relapse_number must be at least 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} relapse {self.relapse_date}"


class State(models.TextChoices):
    REGISTERED = "registered"
    STRATIFIED = "stratified"
    INDUCTION = "induction"
    RESPONSE_ASSESSMENT = "response_assessment"
    POST_REMISSION_CHEMO = "post_remission_chemo"
    HSCT_WORKUP = "hsct_workup"
    TRANSPLANTED = "transplanted"
    MAINTENANCE = "maintenance"
    COMPLETED = "completed"
    OFF_PROTOCOL = "off_protocol"


ACTIVE_STATES: tuple[str, ...] = (
    State.REGISTERED,
    State.STRATIFIED,
    State.INDUCTION,
    State.RESPONSE_ASSESSMENT,
    State.POST_REMISSION_CHEMO,
    State.HSCT_WORKUP,
    State.TRANSPLANTED,
    State.MAINTENANCE,
)


class TreatmentCourse(ConcurrentTransitionMixin, models.Model):
    """One relapse treatment course. ``state`` is protected: it changes only through
    the transition methods below, which ``courses.services`` applies after running
    their guards (declared in courses/transitions.py, attached with ``custom``).
    ConcurrentTransitionMixin makes the UPDATE conditional on the state we read, and
    ``version`` lets a client say which version it saw (optimistic concurrency)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="courses")
    relapse = models.OneToOneField(Relapse, on_delete=models.PROTECT, related_name="course")
    protocol_slug = models.CharField(max_length=60)
    protocol_version = models.CharField(max_length=30)
    decision = models.ForeignKey(
        "stratification.StratificationDecision",
        on_delete=models.PROTECT,
        related_name="courses",
        null=True,
        blank=True,
    )
    # The current decision's proposal (None: no group proposed, needs review).
    proposed_group = models.CharField(max_length=10, null=True, blank=True)
    # The group the course follows, once a clinician confirmed one.
    risk_group = models.CharField(max_length=10, null=True, blank=True)
    # The confirmed HSCT indication (None: undecided, e.g. S2 until MRD is known).
    hsct_indicated = models.BooleanField(null=True, blank=True)
    # What the protocol proposes once the deciding value arrives (MRD at the end of
    # induction for ALL-REZ BFM 2002 S2); a clinician confirms it (confirm-hsct).
    hsct_proposed = models.BooleanField(null=True, blank=True)
    hsct_proposal_basis = models.TextField(blank=True)
    # The clinical date of the sample the proposal comes from (None: no proposal).
    hsct_proposed_on = models.DateField(null=True, blank=True)
    # The proposal as data (courses.services.hsct.Evidence.as_dict(): the deciding
    # sample, its value, the rule and source, and the samples that do not decide with
    # why), so the course page and the API show the basis without re-deriving it.
    hsct_evidence = models.JSONField(default=dict, blank=True)
    # Who decided the HSCT indication the course follows, when, why and on what basis
    # (the evidence as it stood then): kept after confirmation, so a later change of
    # that basis can be seen and flagged (courses.services.hsct).
    hsct_confirmed_at = models.DateTimeField(null=True, blank=True)
    hsct_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    hsct_confirm_reason = models.TextField(blank=True)
    hsct_confirmed_basis = models.JSONField(default=dict, blank=True)
    # The team's date since which the confirmed HSCT decision is in doubt (its deciding
    # MRD amended or voided, a later deciding sample pointing the other way, the group
    # changed) and why; cleared only when a clinician decides again, with a reason.
    hsct_review_since = models.DateField(null=True, blank=True)
    hsct_review_reason = models.TextField(blank=True)
    # A clinician confirmed the group the course follows (risk_group). It stays true
    # while a re-stratification awaits confirmation (the current decision's
    # confirmed_at is then empty: selectors.awaiting_confirmation).
    decision_confirmed = models.BooleanField(default=False)
    # The stratification inputs (fact names) whose current values differ from the
    # current decision's snapshot: non-empty means the decision is stale.
    decision_stale_fields = models.JSONField(default=list, blank=True)
    # The team's date since which the confirmed group is in doubt (inputs changed, or a
    # re-stratification awaits confirmation); None when it is not.
    decision_stale_since = models.DateField(null=True, blank=True)
    state = FSMField(default=State.REGISTERED, choices=State.choices, protected=True)
    off_protocol_reason = models.CharField(
        max_length=40, choices=OffProtocolReason.choices, blank=True
    )
    version = models.PositiveIntegerField(default=1)
    # The day therapy began (a clinical date, given when the stratification is
    # confirmed); the schedule's plan counts from it. ``stratified_at`` is when the
    # confirmation was typed in.
    start_date = models.DateField(null=True, blank=True)
    stratified_at = models.DateTimeField(null=True, blank=True)
    # The course of the same patient's earlier relapse (a course opened for a second
    # or later relapse links to the one that relapse ended).
    previous_course = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="later_courses"
    )
    # When something was last typed in (the audit's clock) ...
    last_activity_at = models.DateTimeField()
    # ... and the latest clinical date the record holds: the start, every valid
    # record's dates, the steps done, the transitions' clinical dates. Kept by the
    # services (courses.services.common.touch) so the alert sweep and the outcomes
    # read one column instead of six tables.
    last_clinical_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state"]),
            models.Index(fields=["risk_group"]),
            models.Index(fields=["protocol_slug"]),
            # The periodic alert sweep refreshes the dashboards of the courses written
            # since its last run (notifications.services._written_since).
            models.Index(fields=["last_activity_at"], name="course_last_activity"),
        ]

    def __str__(self) -> str:
        return f"course {self.pk} ({self.patient.reference})"

    @property
    def hsct_referral(self) -> HsctReferral | None:
        """The course's valid HSCT referral, if any (one query; a voided one is not
        it). Queries join ``hsct_referrals`` and filter the void themselves."""
        return self.hsct_referrals.first()

    # Each transition method takes what the request brought (TransitionInput); its
    # guards have run, once, before the service calls it.

    @transition(
        field=state,
        source=State.REGISTERED,
        target=State.STRATIFIED,
        custom={"guards": (CONFIRMED_DECISION,), "api": False},
    )
    def stratify(self, given: TransitionInput) -> None:
        """Only through the confirm-stratification endpoint, which records the decision."""

    @transition(field=state, source=State.STRATIFIED, target=State.INDUCTION)
    def start_induction(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=State.INDUCTION,
        target=State.RESPONSE_ASSESSMENT,
        custom={"guards": (BLOCK_RECORDED,)},
    )
    def assess_response(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=State.RESPONSE_ASSESSMENT,
        target=State.POST_REMISSION_CHEMO,
        custom={"guards": (NOT_NON_RESPONSE, CR2_RECORDED, HSCT_NOT_INDICATED, HSCT_DECIDED)},
    )
    def continue_chemotherapy(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=[State.RESPONSE_ASSESSMENT, State.POST_REMISSION_CHEMO],
        target=State.HSCT_WORKUP,
        custom={"guards": (NOT_NON_RESPONSE, CR2_RECORDED, HSCT_INDICATED)},
    )
    def start_hsct_workup(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=State.HSCT_WORKUP,
        target=State.TRANSPLANTED,
        custom={"guards": (LATEST_ASSESSMENT_CR2, TRANSPLANT_DATE, MRD_BEFORE_TRANSPLANT)},
    )
    def transplant(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=State.POST_REMISSION_CHEMO,
        target=State.MAINTENANCE,
        custom={"guards": (NOT_NON_RESPONSE, HSCT_NOT_INDICATED, HSCT_DECIDED)},
    )
    def start_maintenance(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=[State.TRANSPLANTED, State.MAINTENANCE],
        target=State.COMPLETED,
        custom={"guards": (NOT_NON_RESPONSE, AFTER_TRANSPLANT_DAY, END_OF_THERAPY_REACHED)},
    )
    def complete(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=list(ACTIVE_STATES),
        target=State.OFF_PROTOCOL,
        custom={"guards": (OFF_PROTOCOL_REASON,)},
    )
    def take_off_protocol(self, given: TransitionInput) -> None:
        self.off_protocol_reason = given.off_protocol_reason

    @transition(
        field=state,
        source=State.OFF_PROTOCOL,
        target=RETURN_VALUE(*ACTIVE_STATES),
        custom={"guards": (ENDING_RECORD_VOIDED,), "api": False},
    )
    def reinstate(self, given: TransitionInput) -> str:
        """Only by voiding the death or second-relapse record that ended the course
        (courses.services.record_void): the course goes back to the state it left,
        its safety net (the alert rules) with it."""
        left = (
            self.transitions.filter(to_state=State.OFF_PROTOCOL)
            .order_by("-at", "-id")
            .values_list("from_state", flat=True)
            .first()
        )
        self.off_protocol_reason = ""
        return left or State.REGISTERED


class CourseDecision(models.Model):
    """Append-only: every stratification decision made for a course, in order (the
    first at the opening, one more per re-stratification). The decision rows themselves
    know nothing of courses (stratification sits below courses)."""

    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="decision_links"
    )
    decision = models.OneToOneField(
        "stratification.StratificationDecision",
        on_delete=models.PROTECT,
        related_name="course_link",
    )
    # When the decision was made (who asked for it is in the course's audit trail).
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"decision {self.decision_id} of course {self.course_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("A course's decision history is append-only.")
        super().save(*args, **kwargs)


class CourseTransition(models.Model):
    """Append-only log of every state change."""

    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="transitions"
    )
    name = models.CharField(max_length=40)
    from_state = models.CharField(max_length=30)
    to_state = models.CharField(max_length=30)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    # The clinical date the move happened on (the team's calendar); ``at`` is when it
    # was recorded, for the audit. Never in the future, never before the previous
    # transition's date, so the two orders agree.
    on = models.DateField()
    at = models.DateTimeField()
    reason = models.TextField(blank=True)
    # The guards the reason overrode (names, courses/transitions.py): a transplant in
    # non-CR is recorded as one, not only as a reason's free text.
    overridden = models.JSONField(default=list, blank=True)
    # What the guards said of the records that let the move through (a pre-HSCT MRD
    # labelled end of induction, counted as the pre-HSCT MRD).
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.name}: {self.from_state} -> {self.to_state}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Course transitions are append-only.")
        super().save(*args, **kwargs)

    @property
    def recorded_as(self) -> str:
        """What the move is shown as when its reason overrode a guard ("transplant in
        non-CR"), else empty."""
        return recorded_as(self.overridden)


class StepStatus(models.TextChoices):
    PLANNED = "planned"
    DONE = "done"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class PlannedStep(models.Model):
    """One expected event of the course. ``due_on`` moves when an earlier step is late
    (anchored to what happened, not to the plan); ``planned_on`` keeps the original
    plan so the cumulative delay stays visible."""

    course = models.ForeignKey(TreatmentCourse, on_delete=models.CASCADE, related_name="steps")
    sequence = models.PositiveIntegerField()
    # The template step id, and the step whose actual date this one counts from
    # (empty: the course start). Added steps anchor on the step they follow.
    key = models.CharField(max_length=40)
    anchor_key = models.CharField(max_length=40, blank=True)
    kind = models.CharField(max_length=24, choices=StepKind.choices)
    label = models.CharField(max_length=80)
    block_type = models.CharField(max_length=10, blank=True)
    mrd_time_point = models.CharField(max_length=30, blank=True)
    offset_days = models.IntegerField(help_text="days after the previous step")
    grace_days = models.PositiveIntegerField(default=0)
    planned_on = models.DateField()
    due_on = models.DateField()
    # A clinician's explicit reschedule pins the due date; later steps follow it.
    rescheduled_on = models.DateField(null=True, blank=True)
    done_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PLANNED)
    # The protocol's basis for the step (from the template), and the team's own reason
    # for rescheduling or skipping it: kept apart, the one never overwrites the other.
    note = models.TextField(blank=True)
    team_reason = models.TextField(blank=True)
    # What closed the step: "<record>:<id>" for a clinical record (re-derived from the
    # valid records whenever they change, courses.services.steps.link_records),
    # "transition:<name>" for a move, "" when a clinician set it by hand.
    done_by = models.CharField(max_length=40, blank=True)
    local_default = models.BooleanField(default=True)

    class Meta:
        ordering = ["course_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["course", "sequence"], name="step_unique_sequence"),
            models.UniqueConstraint(fields=["course", "key"], name="step_unique_key"),
        ]
        indexes = [
            models.Index(fields=["status", "due_on"]),
            # The open steps only (a fraction of all): the overdue-step alert rule
            # range-scans them by due date, and the worklist's next step of a course is
            # its first open one by due date.
            models.Index(
                fields=["due_on"], condition=models.Q(status="planned"), name="step_planned_due"
            ),
            models.Index(
                fields=["course", "due_on", "sequence"],
                condition=models.Q(status="planned"),
                name="step_planned_next",
            ),
            # The open MRD steps (a few percent of the open steps, scattered over the
            # table): mrd_decision_missing range-scans them by due date instead of
            # reading every open step's row.
            models.Index(
                fields=["due_on"],
                condition=models.Q(status="planned", kind="mrd"),
                name="step_planned_mrd_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} due {self.due_on}"

    @property
    def delay_days(self) -> int:
        actual = self.done_on or self.due_on
        return (actual - self.planned_on).days

    @classmethod
    def from_template(
        cls, course: TreatmentCourse, spec: Step, anchor_key: str, **fields: Any
    ) -> PlannedStep:
        """An unsaved step from the protocol's template step; ``fields`` adds what the
        caller decides (sequence, dates)."""
        return cls(
            course=course,
            key=spec.id,
            anchor_key=anchor_key,
            kind=spec.kind,
            label=spec.label,
            block_type=spec.block_type or "",
            mrd_time_point=spec.mrd_time_point or "",
            offset_days=spec.offset_days,
            grace_days=spec.grace_days,
            local_default=spec.local_default,
            note=spec.note,
            **fields,
        )


class RecordManager(models.Manager):
    """The valid records: a voided record is left out of every read that does not ask
    for it (``with_voided``), so rules, guards, the schedule and the figures ignore it
    without each having to remember. Joins through the course (``hsct_referrals__``)
    bypass managers and filter ``voided_at`` themselves."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(voided_at__isnull=True)


class ClinicalRecord(models.Model):
    """What every clinical record shares beyond its own facts: it is never deleted. A
    record entered wrongly is voided with a reason (kept, shown as voided, ignored by
    everything else) or amended (the old values go to the audit trail)."""

    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    void_reason = models.TextField(blank=True)
    amended_at = models.DateTimeField(null=True, blank=True)

    # The first manager is the default one (related managers, the admin): the valid
    # records. ruff takes the second manager for a field.
    objects = RecordManager()
    with_voided = models.Manager()  # noqa: DJ012

    class Meta:
        abstract = True

    @property
    def voided(self) -> bool:
        return self.voided_at is not None


class BlockAdministration(ClinicalRecord):
    course = models.ForeignKey(TreatmentCourse, on_delete=models.PROTECT, related_name="blocks")
    block_type = models.CharField(max_length=10)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    delay_reason = models.TextField(blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["start_date", "id"]

    def __str__(self) -> str:
        return f"{self.block_type} from {self.start_date}"


class Marrow(models.TextChoices):
    M1 = "M1", "M1 (< 5 % blasts)"
    M2 = "M2", "M2 (5-24.9 % blasts)"
    M3 = "M3", "M3 (>= 25 % blasts)"


class EmStatus(models.TextChoices):
    NONE = "none", "No EM disease"
    RESIDUAL = "residual", "Residual EM disease"
    PROGRESSIVE = "progressive", "Progressive EM disease"
    NOT_ASSESSED = "not_assessed", "Not assessed"


class ResponseAssessment(ClinicalRecord):
    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="assessments"
    )
    assessed_on = models.DateField()
    marrow = models.CharField(max_length=2, choices=Marrow.choices)
    cr2 = models.BooleanField()
    em_status = models.CharField(max_length=14, choices=EmStatus.choices)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["assessed_on", "id"]
        indexes = [
            # The valid assessments without CR2 (a few percent): the non-responders
            # subquery that most alert rules exclude with starts from them, instead of
            # probing the assessments of every course past induction (issue 13).
            models.Index(
                fields=["course"],
                condition=models.Q(cr2=False, voided_at__isnull=True),
                name="assessment_valid_not_cr2",
            ),
        ]

    def __str__(self) -> str:
        return f"assessment {self.assessed_on} ({self.marrow}, CR2={self.cr2})"


class MrdUnit(models.TextChoices):
    """The unit an MRD value is entered in. Flow results are often written in percent
    (0.1 % = 10^-3), PCR results as a fraction: entry must name it (clinical notes)."""

    FRACTION = "fraction", "fraction (0.001 = 10⁻³)"
    PERCENT = "percent", "percent (0.1 % = 10⁻³)"


MRD_QUALITATIVE_CHOICES = [
    (value, label)
    for value, label in zip(
        MRD_QUALITATIVE_RESULTS, ("negative", "positive, not quantifiable"), strict=True
    )
]


class MrdResult(ClinicalRecord):
    """An MRD result: a quantified ``value`` (always stored as a fraction, whatever unit
    it was entered in) or a qualitative one (negative / positive, not quantifiable),
    with the sensitivity of the assay (a fraction)."""

    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="mrd_results"
    )
    sampled_on = models.DateField()
    time_point = models.CharField(max_length=30, choices=MrdTimePoint.choices)
    value = models.FloatField(
        null=True, blank=True, help_text="fraction of cells, e.g. 0.001 = 10^-3"
    )
    entered_unit = models.CharField(max_length=8, choices=MrdUnit.choices, default="fraction")
    qualitative = models.CharField(max_length=26, choices=MRD_QUALITATIVE_CHOICES, blank=True)
    method = models.CharField(max_length=30, default="RQ-PCR")
    sensitivity = models.FloatField(
        null=True, blank=True, help_text="fraction, e.g. 0.0001 = 10^-4"
    )
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["sampled_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(value__isnull=False, qualitative="")
                | models.Q(value__isnull=True, qualitative__in=list(MRD_QUALITATIVE_RESULTS)),
                name="mrd_value_or_qualitative",
                violation_error_message="Give a measured value or a qualitative result, not both.",
            ),
        ]

    def __str__(self) -> str:
        return f"MRD {self.result_words} at {self.time_point} ({self.sampled_on})"

    @property
    def result_words(self) -> str:
        if self.value is not None:
            return f"{self.value:g}"
        return dict(MRD_QUALITATIVE_CHOICES).get(self.qualitative, self.qualitative)

    @property
    def value_display(self) -> str:
        """The result as a clinician checks it: the value in both units
        ("2×10⁻³ = 0.2 %"), or the qualitative result with the sensitivity it lies
        below."""
        if self.value is not None:
            return fraction_display(self.value)
        words = self.result_words
        if self.sensitivity is None:
            return words
        return f"{words} (sensitivity {fraction_display(self.sensitivity)})"

    @property
    def sensitivity_display(self) -> str:
        return fraction_display(self.sensitivity)


class DonorSearch(models.TextChoices):
    NOT_STARTED = "not_started"
    ONGOING = "ongoing"
    DONOR_FOUND = "donor_found"
    NO_DONOR = "no_donor"


class HsctReferral(ClinicalRecord):
    """The course's HSCT referral: one valid referral per course (a partial unique
    constraint); a voided one stays beside it."""

    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="hsct_referrals"
    )
    referred_on = models.DateField()
    donor_search_status = models.CharField(
        max_length=12, choices=DonorSearch.choices, default=DonorSearch.NOT_STARTED
    )
    donor_type = models.CharField(max_length=30, blank=True)
    centre = models.CharField(max_length=120, blank=True)
    planned_on = models.DateField(null=True, blank=True)
    performed_on = models.DateField(null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["referred_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["course"],
                condition=Q(voided_at__isnull=True),
                name="referral_one_valid_per_course",
            ),
        ]

    def __str__(self) -> str:
        return f"HSCT referral {self.referred_on}"


class EventKind(models.TextChoices):
    FOLLOW_UP_CONTACT = "follow_up_contact", "Follow-up contact"
    SECOND_RELAPSE = "second_relapse", "Second relapse"
    DEATH = "death", "Death"
    SECONDARY_MALIGNANCY = "secondary_malignancy", "Second malignancy"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up", "Lost to follow-up"


# What a completed or off-protocol course still takes: the patient's follow-up (a
# withdrawal from a protocol the course has already left means nothing).
FOLLOW_UP_EVENT_KINDS: tuple[str, ...] = (
    EventKind.FOLLOW_UP_CONTACT,
    EventKind.SECOND_RELAPSE,
    EventKind.DEATH,
    EventKind.SECONDARY_MALIGNANCY,
    EventKind.LOST_TO_FOLLOW_UP,
)


class ContactStatus(models.TextChoices):
    """How the patient was at a follow-up contact."""

    ALIVE_IN_CR = "alive_in_cr", "Alive in complete remission"
    ALIVE_WITH_DISEASE = "alive_with_disease", "Alive with disease"
    DEAD = "dead", "Dead"


class ClinicalEvent(ClinicalRecord):
    """A clinical event on the course or in the patient's follow-up. A follow-up
    contact carries the patient's status at that date (``contact_status``)."""

    course = models.ForeignKey(TreatmentCourse, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    occurred_on = models.DateField()
    contact_status = models.CharField(max_length=20, choices=ContactStatus.choices, blank=True)
    note = models.TextField(blank=True)
    # This record ended the course (off protocol, in the same transaction): voiding it
    # reinstates the course; its date cannot be amended (void it and record anew).
    ended_course = models.BooleanField(default=False)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["occurred_on", "id"]

    def __str__(self) -> str:
        return f"{self.kind} on {self.occurred_on}"


class AuditEntry(models.Model):
    """Append-only: who changed what on a course, when (records, steps, decisions)."""

    course = models.ForeignKey(TreatmentCourse, on_delete=models.PROTECT, related_name="audit")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    at = models.DateTimeField()
    action = models.CharField(max_length=40)
    target = models.CharField(max_length=40)
    target_id = models.BigIntegerField(null=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} {self.target} by {self.actor_id} at {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Audit entries are append-only.")
        super().save(*args, **kwargs)
