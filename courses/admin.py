"""Admin for courses. State changes and clinical records go through the same services
as the API (so guards, audit and schedule updates apply); the state field itself is
read-only here."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from courses import services
from courses.models import (
    AuditEntry,
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    HsctReferral,
    MrdResult,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    TreatmentCourse,
)


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = [
        "reference",
        "team",
        "birth_year",
        "sex",
        "immunophenotype",
        "initial_diagnosis_date",
    ]
    list_filter = ["team", "immunophenotype", "sex"]
    search_fields = ["reference"]


@admin.register(Relapse)
class RelapseAdmin(admin.ModelAdmin):
    list_display = ["patient", "relapse_date", "site", "immunophenotype"]
    list_filter = ["site", "immunophenotype"]
    search_fields = ["patient__reference"]
    raw_id_fields = ["patient"]


class StepInline(admin.TabularInline):
    model = PlannedStep
    extra = 0
    fields = ["sequence", "label", "planned_on", "due_on", "done_on", "status", "grace_days"]
    readonly_fields = fields
    can_delete = False


class TransitionInline(admin.TabularInline):
    model = CourseTransition
    extra = 0
    readonly_fields = ["name", "from_state", "to_state", "actor", "at", "reason"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class _RecordInline(admin.TabularInline):
    extra = 0
    readonly_fields = ["recorded_by", "recorded_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        # Added on the record's own admin page, through the service (schedule, audit).
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class BlockInline(_RecordInline):
    model = BlockAdministration


class AssessmentInline(_RecordInline):
    model = ResponseAssessment


class MrdInline(_RecordInline):
    model = MrdResult


class EventInline(_RecordInline):
    model = ClinicalEvent


@admin.register(TreatmentCourse)
class TreatmentCourseAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "patient",
        "protocol_slug",
        "risk_group",
        "state",
        "start_date",
        "last_activity_at",
    ]
    list_filter = ["state", "risk_group", "protocol_slug", "patient__team"]
    search_fields = ["patient__reference"]
    readonly_fields = [
        "state",
        "version",
        "decision",
        "proposed_group",
        "risk_group",
        "hsct_indicated",
        "decision_confirmed",
        "stratified_at",
        "start_date",
        "last_activity_at",
        "off_protocol_reason",
        "protocol_slug",
        "protocol_version",
        "patient",
        "relapse",
    ]
    inlines = [StepInline, TransitionInline, BlockInline, AssessmentInline, MrdInline, EventInline]


@admin.register(HsctReferral)
class HsctReferralAdmin(admin.ModelAdmin):
    list_display = ["course", "referred_on", "donor_search_status", "planned_on", "performed_on"]
    readonly_fields = ["recorded_by", "recorded_at"]
    raw_id_fields = ["course"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "course", "actor", "action", "target", "target_id"]
    list_filter = ["action", "target"]
    readonly_fields = ["course", "actor", "at", "action", "target", "target_id", "data"]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class RecordAdminForm(forms.ModelForm):
    """Validates a new record with the same rules (and words) as the API."""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        course = data.get("course")
        if self.instance.pk is None and course is not None and not self.errors:
            values = {k: v for k, v in data.items() if k != "course"}
            for field, messages in services.record_errors(
                self._meta.model, course, values, timezone.now()
            ).items():
                self.add_error(field if field in self.fields else None, messages)
        return data


class RecordAdmin(admin.ModelAdmin):
    """Records are added through the same services as the API (so the schedule moves
    and the audit trail is written) and are append-only afterwards."""

    form = RecordAdminForm
    raw_id_fields = ["course"]
    readonly_fields = ["recorded_by", "recorded_at"]
    list_select_related = ["course__patient", "recorded_by"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k != "course"}
        service = services.RECORD_SERVICES[type(obj)]
        record = service(
            form.cleaned_data["course"], data=data, actor=request.user, now=timezone.now()
        )
        obj.pk = record.pk
        obj.recorded_by = record.recorded_by
        obj.recorded_at = record.recorded_at


@admin.register(BlockAdministration)
class BlockAdministrationAdmin(RecordAdmin):
    list_display = ["course", "block_type", "start_date", "end_date", "recorded_by"]
    fields = [
        "course",
        "block_type",
        "start_date",
        "end_date",
        "delay_reason",
        "recorded_by",
        "recorded_at",
    ]


@admin.register(ResponseAssessment)
class ResponseAssessmentAdmin(RecordAdmin):
    list_display = ["course", "assessed_on", "marrow", "cr2", "em_status", "recorded_by"]
    fields = ["course", "assessed_on", "marrow", "cr2", "em_status", "recorded_by", "recorded_at"]


@admin.register(MrdResult)
class MrdResultAdmin(RecordAdmin):
    list_display = ["course", "sampled_on", "time_point", "value", "method", "recorded_by"]
    fields = [
        "course",
        "sampled_on",
        "time_point",
        "value",
        "method",
        "sensitivity",
        "recorded_by",
        "recorded_at",
    ]


@admin.register(ClinicalEvent)
class ClinicalEventAdmin(RecordAdmin):
    list_display = ["course", "kind", "occurred_on", "recorded_by"]
    fields = ["course", "kind", "occurred_on", "note", "recorded_by", "recorded_at"]


@admin.register(PlannedStep)
class PlannedStepAdmin(admin.ModelAdmin):
    """Read-only: steps change through the API (reschedule, skip, done), which keeps
    later due dates and the audit trail right."""

    list_display = ["course", "sequence", "label", "planned_on", "due_on", "done_on", "status"]
    list_filter = ["kind", "status"]
    list_select_related = ["course__patient"]
    search_fields = ["course__patient__reference"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
