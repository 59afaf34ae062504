"""Input and output shapes of the courses API. Validation of single fields lives here;
rules that span fields or read the record live in the services (same 400 shape)."""

from __future__ import annotations

from config import serializers
from courses.models import (
    AuditEntry,
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    DonorSearch,
    EmStatus,
    EventKind,
    HsctReferral,
    Marrow,
    MrdResult,
    OffProtocolReason,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    StepStatus,
    TreatmentCourse,
)
from stratification.definitions import StepKind
from stratification.facts import EmSite, Immunophenotype, Site
from teams.serializers import TeamPrimaryKeyField


class PatientSerializer(serializers.ModelSerializer):
    team = TeamPrimaryKeyField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "team",
            "reference",
            "birth_year",
            "sex",
            "immunophenotype",
            "initial_diagnosis_date",
            "frontline_protocol",
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
        required=False, allow_null=True, min_value=0, max_value=100
    )
    immunophenotype = serializers.ChoiceField(choices=Immunophenotype.choices, required=False)
    course = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Relapse
        fields = [
            "id",
            "patient",
            "relapse_date",
            "site",
            "em_sites",
            "bm_blast_percent",
            "immunophenotype",
            "course",
            "created_at",
        ]
        read_only_fields = ["id", "created_at", "course"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            from teams.selectors import team_ids_for

            self.fields["patient"].queryset = Patient.objects.filter(
                team_id__in=team_ids_for(request.user)
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
            "local_default",
        ]
        read_only_fields = fields


class StepCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=StepKind.choices)
    label = serializers.CharField(max_length=80, required=False, allow_blank=True)
    block_type = serializers.CharField(max_length=10, required=False, allow_blank=True)
    mrd_time_point = serializers.CharField(max_length=30, required=False, allow_blank=True)
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


class CourseSerializer(serializers.ModelSerializer):
    patient_reference = serializers.CharField(source="patient.reference", read_only=True)
    team = serializers.IntegerField(source="patient.team_id", read_only=True)
    allowed_transitions = serializers.SerializerMethodField()

    class Meta:
        model = TreatmentCourse
        fields = [
            "id",
            "team",
            "patient",
            "patient_reference",
            "relapse",
            "protocol_slug",
            "protocol_version",
            "decision",
            "proposed_group",
            "risk_group",
            "hsct_indicated",
            "hsct_proposed",
            "hsct_proposal_basis",
            "decision_confirmed",
            "state",
            "off_protocol_reason",
            "version",
            "start_date",
            "stratified_at",
            "last_activity_at",
            "created_at",
            "allowed_transitions",
        ]
        read_only_fields = fields

    def get_allowed_transitions(self, course: TreatmentCourse) -> list[str] | None:
        # Only on the detail view: evaluating guards reads the record (queries per row).
        if not self.context.get("with_transitions"):
            return None
        from courses.selectors import allowed_transitions

        return allowed_transitions(course)


class CourseCreateSerializer(serializers.Serializer):
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


class ConfirmSerializer(serializers.Serializer):
    risk_group = serializers.CharField(max_length=10)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


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


class CourseTransitionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username")

    class Meta:
        model = CourseTransition
        fields = ["id", "name", "from_state", "to_state", "actor", "at", "reason"]


class _RecordSerializer(serializers.ModelSerializer):
    recorded_by = serializers.CharField(source="recorded_by.username", read_only=True)


class BlockSerializer(_RecordSerializer):
    class Meta:
        model = BlockAdministration
        fields = [
            "id",
            "block_type",
            "start_date",
            "end_date",
            "delay_reason",
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = ["id", "recorded_by", "recorded_at"]


class AssessmentSerializer(_RecordSerializer):
    marrow = serializers.ChoiceField(choices=Marrow.choices)
    em_status = serializers.ChoiceField(choices=EmStatus.choices)

    class Meta:
        model = ResponseAssessment
        fields = ["id", "assessed_on", "marrow", "cr2", "em_status", "recorded_by", "recorded_at"]
        read_only_fields = ["id", "recorded_by", "recorded_at"]


class MrdSerializer(_RecordSerializer):
    class Meta:
        model = MrdResult
        fields = [
            "id",
            "sampled_on",
            "time_point",
            "value",
            "method",
            "sensitivity",
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = ["id", "recorded_by", "recorded_at"]


class ReferralSerializer(_RecordSerializer):
    donor_search_status = serializers.ChoiceField(choices=DonorSearch.choices, required=False)

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
            "recorded_by",
            "recorded_at",
        ]
        read_only_fields = ["id", "recorded_by", "recorded_at"]
        extra_kwargs = {"referred_on": {"required": False}}


class EventSerializer(_RecordSerializer):
    kind = serializers.ChoiceField(choices=EventKind.choices)

    class Meta:
        model = ClinicalEvent
        fields = ["id", "kind", "occurred_on", "note", "recorded_by", "recorded_at"]
        read_only_fields = ["id", "recorded_by", "recorded_at"]


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username")

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "target", "target_id", "data"]


class CourseCsvSerializer(CourseSerializer):
    """One CSV row per course: the list's columns without computed ones."""

    allowed_transitions = None  # type: ignore[assignment]

    class Meta(CourseSerializer.Meta):
        fields = [f for f in CourseSerializer.Meta.fields if f != "allowed_transitions"]
        read_only_fields = fields
