"""Input and output shapes of the courses API. Validation of single fields lives here;
rules that span fields or read the record live in the services (same 400 shape)."""

from __future__ import annotations

import functools

from drf_spectacular.utils import extend_schema_field

from config import serializers
from courses.models import (
    MRD_QUALITATIVE_CHOICES,
    AuditEntry,
    BlockAdministration,
    ClinicalEvent,
    ContactStatus,
    CourseTransition,
    DonorSearch,
    EmStatus,
    EventKind,
    HsctReferral,
    Marrow,
    MrdResult,
    MrdUnit,
    OffProtocolReason,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    StepStatus,
    TreatmentCourse,
)
from stratification.definitions import MrdTimePoint, StepKind
from stratification.facts import (
    BCR_ABL1_VALUES,
    FRONTLINE_STATUSES,
    EmSite,
    Immunophenotype,
    Site,
)
from stratification.serializers import (
    WHY_RELAPSE_FACTS_MATTER,
    PriorHsctField,
    RelapseNumberField,
    StratificationDecisionSerializer,
)
from teams.serializers import TeamPrimaryKeyField


class PatientSerializer(serializers.ModelSerializer):
    team = TeamPrimaryKeyField()
    birth_month = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=12,
        help_text="1-12; optional. With it the age at diagnosis is known (the protocols "
        "exclude infants, diagnosed before 12 months); without it the decision carries a "
        "warning.",
    )
    bcr_abl1 = serializers.ChoiceField(
        choices=BCR_ABL1_VALUES,
        required=False,
        help_text="BCR::ABL1 (Ph) status at diagnosis; default unknown (stratified with a "
        "warning). positive is outside both protocols' population (needs review).",
    )
    frontline_status = serializers.ChoiceField(
        choices=FRONTLINE_STATUSES,
        required=False,
        help_text="completed (requires frontline_end_date), on_therapy (the relapse came "
        "during front-line therapy) or unknown (no end date: never read as on therapy). "
        "Absent: completed if frontline_end_date is given, else unknown.",
    )

    class Meta:
        model = Patient
        fields = [
            "id",
            "team",
            "reference",
            "birth_year",
            "birth_month",
            "sex",
            "immunophenotype",
            "bcr_abl1",
            "initial_diagnosis_date",
            "frontline_protocol",
            "frontline_status",
            "frontline_end_date",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        validators: list = []  # uniqueness per team is checked by the service


class PatientUpdateSerializer(PatientSerializer):
    # Declared, not only listed read-only: a declared field ignores read_only_fields, and
    # PATCH {"team": ...} moved a patient into another team without a role check there.
    team = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(PatientSerializer.Meta):
        read_only_fields = ["id", "team", "created_at"]


class RelapseSerializer(serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(queryset=Patient.objects.none())
    em_sites = serializers.ListField(
        child=serializers.ChoiceField(choices=EmSite.choices), allow_empty=True, default=list
    )
    site = serializers.ChoiceField(choices=Site.choices)
    bm_blast_percent = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=100,
        help_text="Marrow blasts, 0-100 %. Required for isolated_bm (>= 25 %; 5 to < 25 %, "
        "M2 marrow, is accepted and needs_review) and combined (>= 5 %). An isolated_em "
        "relapse (< 5 %) without it is needs_review: the marrow was not assessed.",
    )
    immunophenotype = serializers.ChoiceField(
        choices=Immunophenotype.choices,
        required=False,
        help_text="At relapse; absent: the immunophenotype at diagnosis.",
    )
    relapse_number = RelapseNumberField(
        required=False,
        help_text="1 for a first relapse, the number of a later one, or unknown (null in "
        "answers). Absent: one more than the patient's earlier relapse recorded here; with "
        "none recorded it must be given (a 400 names it). A number that contradicts the "
        f"relapses recorded here is refused. {WHY_RELAPSE_FACTS_MATTER}",
    )
    prior_hsct = PriorHsctField(
        required=False,
        help_text="An HSCT before this relapse: true, false or unknown (null in answers). "
        "Absent: true when a transplant of this patient is recorded here before the relapse "
        "date (a referral's transplant date, or a course that reached transplanted); "
        "otherwise it must be given (a 400 names it). false against such a record is "
        f"refused. {WHY_RELAPSE_FACTS_MATTER}",
    )
    course = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Relapse
        fields = [
            "id",
            "patient",
            "relapse_date",
            "relapse_number",
            "site",
            "em_sites",
            "bm_blast_percent",
            "immunophenotype",
            "prior_hsct",
            "course",
            "created_at",
        ]
        read_only_fields = ["id", "created_at", "course"]
        validators: list = []  # one relapse per patient and date: checked by the service

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            from teams.selectors import team_ids_for

            self.fields["patient"].queryset = Patient.objects.filter(
                team_id__in=team_ids_for(request.user)
            )


class RelapseUpdateSerializer(RelapseSerializer):
    """PATCH: the relapse's facts, checked as on creation; the patient stays."""

    patient = serializers.PrimaryKeyRelatedField(read_only=True)
    em_sites = serializers.ListField(
        child=serializers.ChoiceField(choices=EmSite.choices), allow_empty=True, required=False
    )


class PlannedStepSerializer(serializers.ModelSerializer):
    delay_days = serializers.IntegerField(read_only=True)

    class Meta:
        model = PlannedStep
        fields = [
            "id",
            "sequence",
            "key",
            "anchor_key",
            "kind",
            "label",
            "block_type",
            "mrd_time_point",
            "offset_days",
            "grace_days",
            "planned_on",
            "due_on",
            "rescheduled_on",
            "done_on",
            "status",
            "delay_days",
            "note",
            "team_reason",
            "done_by",
            "local_default",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "note": {"help_text": "the protocol's basis for the step (from its template)"},
            "team_reason": {"help_text": "the team's reason for rescheduling or skipping it"},
            "done_by": {
                "help_text": "what closed the step: '<record>:<id>' (a clinical record), "
                "'transition:<name>', or empty (set by hand)"
            },
        }


class StepCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=StepKind.choices)
    label = serializers.CharField(max_length=80, required=False, allow_blank=True)
    block_type = serializers.CharField(max_length=10, required=False, allow_blank=True)
    mrd_time_point = serializers.ChoiceField(
        choices=MrdTimePoint.choices,
        required=False,
        allow_blank=True,
        help_text="For kind mrd (required there): one of the protocol's MRD time points.",
    )
    after = serializers.CharField(
        max_length=40, required=False, help_text="key of the step this one follows"
    )
    offset_days = serializers.IntegerField(min_value=0, max_value=3650)
    grace_days = serializers.IntegerField(min_value=0, max_value=365, default=0)
    note = serializers.CharField(required=False, allow_blank=True)


class StepUpdateSerializer(serializers.Serializer):
    due_on = serializers.DateField(required=False)
    done_on = serializers.DateField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=StepStatus.choices, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs: dict) -> dict:
        if not {"due_on", "done_on", "status"} & attrs.keys():
            raise serializers.ValidationError(
                {"non_field_errors": ["give due_on (reschedule), done_on, or status."]}
            )
        return attrs


class HsctSampleSerializer(serializers.Serializer):
    mrd_result = serializers.IntegerField(allow_null=True, help_text="the MRD result's id")
    sampled_on = serializers.DateField()
    time_point = serializers.CharField()
    value = serializers.FloatField(allow_null=True, help_text="a fraction (0.001 = 10^-3)")
    qualitative = serializers.CharField(allow_blank=True)
    sensitivity = serializers.FloatField(allow_null=True)


class HsctEvidenceSerializer(serializers.Serializer):
    group = serializers.CharField()
    rule = serializers.CharField(help_text="the protocol's rule id, e.g. hsct_s2_mrd")
    mrd_decided = serializers.BooleanField(help_text="the group's indication hangs on MRD")
    indicated = serializers.BooleanField(
        allow_null=True, help_text="what the evidence proposes; null: undecided"
    )
    text = serializers.CharField(help_text="the basis in words")
    source = serializers.CharField()
    confidence = serializers.CharField()
    sample = HsctSampleSerializer(
        allow_null=True, help_text="the deciding sample: the latest by sample date in the window"
    )
    window_from = serializers.DateField(
        allow_null=True, help_text="the day the deciding window opens (null: not placeable yet)"
    )
    window = serializers.CharField(allow_blank=True)
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="samples kept that do not decide, and why"
    )


class HsctConfirmationSerializer(serializers.Serializer):
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()
    reason = serializers.CharField(allow_blank=True)
    basis = HsctEvidenceSerializer(
        allow_null=True, help_text="the evidence as it stood when the decision was confirmed"
    )


class HsctReviewSerializer(serializers.Serializer):
    since = serializers.DateField()
    reason = serializers.CharField()


class HsctDecisionSerializer(serializers.Serializer):
    indicated = serializers.BooleanField(
        allow_null=True, help_text="the HSCT indication the course follows; null: undecided"
    )
    status = serializers.ChoiceField(
        choices=["undecided", "proposed", "by_group", "confirmed", "review"],
        help_text="review: a confirmed decision whose basis changed, until a clinician "
        "decides again with a reason (hsct_decision_review alert)",
    )
    proposed = serializers.BooleanField(allow_null=True)
    evidence = HsctEvidenceSerializer(allow_null=True, help_text="what the evidence says now")
    confirmed = HsctConfirmationSerializer(allow_null=True)
    review = HsctReviewSerializer(allow_null=True)


class CourseSerializer(serializers.ModelSerializer):
    patient_reference = serializers.CharField(source="patient.reference", read_only=True)
    team = serializers.IntegerField(source="patient.team_id", read_only=True)
    proposed_group = serializers.CharField(
        allow_null=True,
        read_only=True,
        help_text="The current decision's proposed group; null when it needs review.",
    )
    decision = StratificationDecisionSerializer(
        read_only=True,
        help_text="The current stratification decision, with its reasons and warnings "
        "(each with rule id, text, source and confidence) and the time point's cut-off "
        "dates. GET /api/v1/stratification-decisions/{id}/ adds its input snapshot.",
    )
    decision_stale = serializers.SerializerMethodField(
        help_text="A fact the current decision read has changed since (see "
        "decision_stale_fields): re-stratify (POST .../restratify/), then confirm."
    )
    decision_stale_fields = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The facts (stratification input names) whose recorded values differ "
        "from the decision's input snapshot.",
    )
    decision_stale_since = serializers.DateField(
        read_only=True,
        allow_null=True,
        help_text="The team's date since which the decision is stale or a re-stratification "
        "awaits confirmation.",
    )
    decision_awaiting_confirmation = serializers.SerializerMethodField(
        help_text="The course was re-stratified and still follows its confirmed group "
        "(risk_group) until a clinician confirms the new proposal (confirm-stratification)."
    )
    decision_outdated = serializers.SerializerMethodField(
        help_text="The decision was made with a protocol version that is no longer the "
        "loaded one: re-stratify to decide with the loaded version."
    )
    relapse_number = serializers.IntegerField(
        source="relapse.relapse_number",
        read_only=True,
        allow_null=True,
        help_text="which relapse of the patient this course treats (1 = first; null: unknown)",
    )
    allowed_transitions = serializers.SerializerMethodField()
    hsct_decision = serializers.SerializerMethodField(
        help_text="The HSCT decision, before and after confirmation: what the protocol "
        "proposes on which sample, who confirmed it, when and why, and a pending review."
    )

    class Meta:
        model = TreatmentCourse
        fields = [
            "id",
            "team",
            "patient",
            "patient_reference",
            "relapse",
            "relapse_number",
            "previous_course",
            "protocol_slug",
            "protocol_version",
            "decision",
            "proposed_group",
            "risk_group",
            "hsct_indicated",
            "hsct_proposed",
            "hsct_proposal_basis",
            "hsct_decision",
            "decision_confirmed",
            "decision_awaiting_confirmation",
            "decision_stale",
            "decision_stale_fields",
            "decision_stale_since",
            "decision_outdated",
            "state",
            "off_protocol_reason",
            "version",
            "start_date",
            "stratified_at",
            "last_activity_at",
            "last_clinical_on",
            "created_at",
            "allowed_transitions",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "start_date": {"help_text": "the day therapy began (the clinical start)"},
            "previous_course": {
                "help_text": "the course of the patient's earlier relapse, if this one "
                "treats a later relapse"
            },
            "last_clinical_on": {
                "help_text": "the latest clinical date on the course's record (records, "
                "steps done, transitions)"
            },
        }

    @extend_schema_field(HsctDecisionSerializer)
    def get_hsct_decision(self, course: TreatmentCourse) -> dict:
        from courses.services import hsct_decision_summary

        return HsctDecisionSerializer(hsct_decision_summary(course)).data

    def get_decision_stale(self, course: TreatmentCourse) -> bool:
        return bool(course.decision_stale_fields)

    def get_decision_awaiting_confirmation(self, course: TreatmentCourse) -> bool:
        from courses.selectors import awaiting_confirmation

        return awaiting_confirmation(course)

    def get_decision_outdated(self, course: TreatmentCourse) -> bool:
        from courses.selectors import decision_outdated

        return decision_outdated(course)

    def get_allowed_transitions(self, course: TreatmentCourse) -> list[str] | None:
        # Only on the detail view: evaluating guards reads the record (queries per row).
        if not self.context.get("with_transitions"):
            return None
        from courses.selectors import allowed_transitions

        return allowed_transitions(course)


class ImplausibleConfirmationMixin(serializers.Serializer):
    confirm_implausible = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Confirms an implausible fact (front-line status on_therapy long after "
        "diagnosis, refused otherwise); needs implausible_reason. The decision then "
        "carries a warning quoting it.",
    )
    implausible_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        help_text="Why the implausible fact is right (required with confirm_implausible).",
    )


class CourseCreateSerializer(ImplausibleConfirmationMixin):
    relapse = serializers.PrimaryKeyRelatedField(queryset=Relapse.objects.none())
    protocol = serializers.CharField(max_length=60)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            from teams.selectors import team_ids_for

            self.fields["relapse"].queryset = Relapse.objects.filter(
                patient__team_id__in=team_ids_for(request.user)
            ).select_related("patient")

    def validate_protocol(self, value: str) -> str:
        from courses.selectors import protocol_for

        try:
            protocol_for(value)
        except KeyError as exc:
            raise serializers.ValidationError("unknown protocol.") from exc
        return value


class RestratifySerializer(serializers.Serializer):
    confirm_implausible = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="As on course creation; absent: the current decision's confirmation of "
        "an implausible front-line status carries over.",
    )
    implausible_reason = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, default=None, max_length=500
    )


class ConfirmSerializer(serializers.Serializer):
    risk_group = serializers.CharField(max_length=10)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    start_date = serializers.DateField(
        required=False,
        help_text="the day therapy began (default: the first recorded block's start, else "
        "the team's today); never in the future, never before the relapse",
    )


class ConfirmHsctSerializer(serializers.Serializer):
    hsct_indicated = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class TransitionRequestSerializer(serializers.Serializer):
    transition = serializers.CharField(max_length=40)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    off_protocol_reason = serializers.ChoiceField(
        choices=OffProtocolReason.choices, required=False, default=""
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="the course version you saw; 409 if stale"
    )
    on = serializers.DateField(
        required=False,
        help_text="the clinical date of the move (default: the team's today); not in the "
        "future, not before the previous move's date",
    )


class CourseTransitionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username")
    overridden = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="the guards the reason overrode (e.g. latest_assessment_cr2)",
    )
    recorded_as = serializers.CharField(
        read_only=True,
        help_text="what the move is shown as when its reason overrode a guard, e.g. "
        "'transplant in non-CR'; empty otherwise",
    )
    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="what the guards said of the records that let the move through, e.g. a "
        "pre-HSCT MRD labelled otherwise",
    )

    class Meta:
        model = CourseTransition
        fields = [
            "id",
            "name",
            "from_state",
            "to_state",
            "actor",
            "on",
            "at",
            "reason",
            "overridden",
            "recorded_as",
            "warnings",
        ]
        extra_kwargs = {
            "on": {"help_text": "the clinical date of the move"},
            "at": {"help_text": "when it was recorded"},
        }


# What every record answers about its own history, besides its facts.
RECORD_HISTORY_FIELDS = [
    "recorded_by",
    "recorded_at",
    "amended_at",
    "voided",
    "voided_at",
    "voided_by",
    "void_reason",
]


class _RecordSerializer(serializers.ModelSerializer):
    recorded_by = serializers.CharField(source="recorded_by.username", read_only=True)
    voided = serializers.BooleanField(read_only=True)
    voided_by = serializers.CharField(source="voided_by.username", read_only=True, allow_null=True)


def amend_reason_field(**kwargs) -> serializers.CharField:
    # Blank or absent: the service's 400 says it is required (one message, every channel).
    return serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text=kwargs.pop(
            "help_text",
            "Why the record is amended (required): kept with the old and new values in the "
            "course's audit trail and shown beside the record.",
        ),
        **kwargs,
    )


@functools.cache
def amending(serializer: type[serializers.ModelSerializer]) -> type[serializers.ModelSerializer]:
    """``serializer`` as a PATCH takes it: the record's fields, plus the reason."""

    class Meta(serializer.Meta):
        fields = [*serializer.Meta.fields, "reason"]

    return type(
        serializer.__name__.replace("Serializer", "AmendSerializer"),
        (serializer,),
        {"reason": amend_reason_field(), "Meta": Meta, "__module__": __name__},
    )


class VoidSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, allow_blank=True, help_text="why the record is void (required)"
    )


class BlockSerializer(_RecordSerializer):
    class Meta:
        model = BlockAdministration
        fields = [
            "id",
            "block_type",
            "start_date",
            "end_date",
            "delay_reason",
            *RECORD_HISTORY_FIELDS,
        ]
        read_only_fields = ["id", *RECORD_HISTORY_FIELDS]


class AssessmentSerializer(_RecordSerializer):
    marrow = serializers.ChoiceField(choices=Marrow.choices)
    em_status = serializers.ChoiceField(choices=EmStatus.choices)

    class Meta:
        model = ResponseAssessment
        fields = ["id", "assessed_on", "marrow", "cr2", "em_status", *RECORD_HISTORY_FIELDS]
        read_only_fields = ["id", *RECORD_HISTORY_FIELDS]


class MrdSerializer(_RecordSerializer):
    time_point = serializers.ChoiceField(
        choices=MrdTimePoint.choices,
        help_text="One of the course's protocol's MRD time points (mrd_time_points in "
        "docs/protocols.md); another is a 400.",
    )
    unit = serializers.ChoiceField(
        choices=MrdUnit.choices,
        write_only=True,
        help_text="The unit of value and sensitivity as entered: fraction (0.001 = 10^-3) "
        "or percent (0.1 = 10^-3). Required. Both are answered (and stored) as fractions; "
        "entered_unit says which unit was used.",
    )
    value = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="The quantified result in unit; answered as a fraction. Omit it for a "
        "qualitative result; 0 is refused (record negative with its sensitivity).",
    )
    qualitative = serializers.ChoiceField(
        choices=MRD_QUALITATIVE_CHOICES,
        required=False,
        allow_blank=True,
        help_text="negative, or positive_not_quantifiable, instead of a value; needs the "
        "sensitivity (the limit the result lies below).",
    )
    sensitivity = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="The assay's limit, in unit (answered as a fraction); required with a "
        "qualitative result.",
    )
    value_display = serializers.CharField(
        read_only=True,
        help_text='The stored result as a clinician checks it, in both units: "2×10⁻³ = '
        '0.2 %", or the qualitative result with its sensitivity.',
    )
    sensitivity_display = serializers.CharField(
        read_only=True, help_text='The sensitivity in both units ("1×10⁻⁴ = 0.01 %"), or "".'
    )

    class Meta:
        model = MrdResult
        fields = [
            "id",
            "sampled_on",
            "time_point",
            "unit",
            "value",
            "qualitative",
            "sensitivity",
            "entered_unit",
            "method",
            "value_display",
            "sensitivity_display",
            *RECORD_HISTORY_FIELDS,
        ]
        read_only_fields = ["id", "entered_unit", *RECORD_HISTORY_FIELDS]


class ReferralSerializer(_RecordSerializer):
    donor_search_status = serializers.ChoiceField(choices=DonorSearch.choices, required=False)
    reason = amend_reason_field(
        help_text="Why an update changes what the referral recorded (required then: a date "
        "or centre changed, the donor search going back). Filling in an empty field or the "
        "donor search moving forward needs none. Kept in the course's audit trail."
    )

    class Meta:
        model = HsctReferral
        fields = [
            "id",
            "referred_on",
            "donor_search_status",
            "donor_type",
            "centre",
            "planned_on",
            "performed_on",
            "reason",
            *RECORD_HISTORY_FIELDS,
        ]
        read_only_fields = ["id", *RECORD_HISTORY_FIELDS]
        extra_kwargs = {"referred_on": {"required": False}}


class EventSerializer(_RecordSerializer):
    kind = serializers.ChoiceField(choices=EventKind.choices)
    contact_status = serializers.ChoiceField(
        choices=ContactStatus.choices,
        required=False,
        allow_blank=True,
        help_text="a follow-up contact's finding (required for kind follow_up_contact)",
    )

    class Meta:
        model = ClinicalEvent
        fields = [
            "id",
            "kind",
            "occurred_on",
            "contact_status",
            "note",
            "ended_course",
            *RECORD_HISTORY_FIELDS,
        ]
        read_only_fields = ["id", "ended_course", *RECORD_HISTORY_FIELDS]
        extra_kwargs = {
            "ended_course": {
                "help_text": "this record ended the course (a death or second relapse "
                "recorded while it was active)"
            }
        }


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username")

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "target", "target_id", "data"]


class CourseCsvSerializer(CourseSerializer):
    """One CSV row per course: the list's columns without computed ones; the decision
    as its id and the stale facts as one cell."""

    allowed_transitions = None  # type: ignore[assignment]
    decision = serializers.PrimaryKeyRelatedField(read_only=True)  # type: ignore[assignment]
    decision_stale_fields = serializers.SerializerMethodField()  # type: ignore[assignment]

    def get_decision_stale_fields(self, course: TreatmentCourse) -> str:
        return " ".join(course.decision_stale_fields)

    @extend_schema_field(serializers.CharField())
    def get_hsct_decision(self, course: TreatmentCourse) -> str:  # type: ignore[override]
        """One cell: the decision's status (undecided, proposed, by_group, confirmed,
        review); the API's course detail has the rest."""
        from courses.services import hsct_decision_summary

        return hsct_decision_summary(course)["status"]

    class Meta(CourseSerializer.Meta):
        fields = [f for f in CourseSerializer.Meta.fields if f != "allowed_transitions"]
        read_only_fields = fields
