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
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from courses.transitions import (
    BLOCK_RECORDED,
    CONFIRMED_DECISION,
    CR2_RECORDED,
    HSCT_INDICATED,
    HSCT_NOT_INDICATED,
    OFF_PROTOCOL_REASON,
    TRANSPLANT_DATE,
    OffProtocolReason,
    TransitionInput,
)
from stratification.definitions import StepKind
from stratification.facts import Immunophenotype, Site
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


class Patient(models.Model):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="patients")
    reference = models.CharField(max_length=40, validators=[reference_validator])
    birth_year = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1990), MaxValueValidator(2100)]
    )
    sex = models.CharField(max_length=10, choices=Sex.choices)
    immunophenotype = models.CharField(max_length=4, choices=Immunophenotype.choices)
    initial_diagnosis_date = models.DateField()
    frontline_protocol = models.CharField(max_length=80, blank=True)
    frontline_end_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team_id", "reference"]
        constraints = [
            models.UniqueConstraint(fields=["team", "reference"], name="patient_unique_reference"),
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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient_id", "relapse_date"]

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
    proposed_group = models.CharField(max_length=10, blank=True)
    risk_group = models.CharField(max_length=10, null=True, blank=True)
    # The confirmed HSCT indication (None: undecided, e.g. S2 until MRD is known).
    hsct_indicated = models.BooleanField(null=True, blank=True)
    # What the protocol proposes once the deciding value arrives (MRD at the end of
    # induction for ALL-REZ BFM 2002 S2); a clinician confirms it (confirm-hsct).
    hsct_proposed = models.BooleanField(null=True, blank=True)
    hsct_proposal_basis = models.CharField(max_length=300, blank=True)
    decision_confirmed = models.BooleanField(default=False)
    state = FSMField(default=State.REGISTERED, choices=State.choices, protected=True)
    off_protocol_reason = models.CharField(
        max_length=20, choices=OffProtocolReason.choices, blank=True
    )
    version = models.PositiveIntegerField(default=1)
    start_date = models.DateField(null=True, blank=True)
    stratified_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
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
        custom={"guards": (CR2_RECORDED, HSCT_NOT_INDICATED)},
    )
    def continue_chemotherapy(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=[State.RESPONSE_ASSESSMENT, State.POST_REMISSION_CHEMO],
        target=State.HSCT_WORKUP,
        custom={"guards": (CR2_RECORDED, HSCT_INDICATED)},
    )
    def start_hsct_workup(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=State.HSCT_WORKUP,
        target=State.TRANSPLANTED,
        custom={"guards": (TRANSPLANT_DATE,)},
    )
    def transplant(self, given: TransitionInput) -> None:
        pass

    @transition(
        field=state,
        source=State.POST_REMISSION_CHEMO,
        target=State.MAINTENANCE,
        custom={"guards": (HSCT_NOT_INDICATED,)},
    )
    def start_maintenance(self, given: TransitionInput) -> None:
        pass

    @transition(field=state, source=[State.TRANSPLANTED, State.MAINTENANCE], target=State.COMPLETED)
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


class CourseTransition(models.Model):
    """Append-only log of every state change."""

    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="transitions"
    )
    name = models.CharField(max_length=40)
    from_state = models.CharField(max_length=30)
    to_state = models.CharField(max_length=30)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    at = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.name}: {self.from_state} -> {self.to_state}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Course transitions are append-only.")
        super().save(*args, **kwargs)


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
    note = models.TextField(blank=True)
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


class BlockAdministration(models.Model):
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


class ResponseAssessment(models.Model):
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

    def __str__(self) -> str:
        return f"assessment {self.assessed_on} ({self.marrow}, CR2={self.cr2})"


class MrdResult(models.Model):
    course = models.ForeignKey(
        TreatmentCourse, on_delete=models.PROTECT, related_name="mrd_results"
    )
    sampled_on = models.DateField()
    time_point = models.CharField(max_length=30)
    value = models.FloatField(help_text="fraction of cells, e.g. 0.001 = 10^-3")
    method = models.CharField(max_length=30, default="RQ-PCR")
    sensitivity = models.FloatField(default=1e-4)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["sampled_on", "id"]

    def __str__(self) -> str:
        return f"MRD {self.value:g} at {self.time_point} ({self.sampled_on})"


class DonorSearch(models.TextChoices):
    NOT_STARTED = "not_started"
    ONGOING = "ongoing"
    DONOR_FOUND = "donor_found"
    NO_DONOR = "no_donor"


class HsctReferral(models.Model):
    course = models.OneToOneField(
        TreatmentCourse, on_delete=models.PROTECT, related_name="hsct_referral"
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

    def __str__(self) -> str:
        return f"HSCT referral {self.referred_on}"


class EventKind(models.TextChoices):
    SECOND_RELAPSE = "second_relapse"
    DEATH = "death"
    SECONDARY_MALIGNANCY = "secondary_malignancy"
    WITHDRAWAL = "withdrawal"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"


class ClinicalEvent(models.Model):
    course = models.ForeignKey(TreatmentCourse, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    occurred_on = models.DateField()
    note = models.TextField(blank=True)
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
