"""Admin for courses. Every write goes through the same service as the API, so the
same rules (with the same words), the audit trail, the schedule and the alert
re-evaluation apply whatever the channel:

* patients: created and edited through patient_create / patient_update;
* relapses: added through relapse_create and changed through relapse_update (a change
  to a fact a decision read marks it stale);
* clinical records and the HSCT referral: added (the referral also updated) through
  their record services; records are append-only afterwards;
* courses, their steps, transitions, decisions and the audit trail: read-only here --
  a course moves through the API (confirm, transitions, records), which writes the
  CourseTransition and the audit entries.
"""

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from courses import services
from courses.models import (
    AuditEntry,
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    HsctReferral,
    MrdResult,
    MrdUnit,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    TreatmentCourse,
)


class ServiceForm(forms.ModelForm):
    """A form checked with the service's own validator before the admin calls the
    service: every problem shows at once, under its field, in the API's words."""

    def service_errors(self, data: Mapping[str, Any]) -> Mapping[str, list[str]]:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            for field, messages in self.service_errors(data).items():
                self.add_error(field if field in self.fields else None, messages)
        return data


# --- patients and relapses ------------------------------------------------------------


class PatientForm(ServiceForm):
    def service_errors(self, data: Mapping[str, Any]) -> Mapping[str, list[str]]:
        # The patient as it would be stored (the form's instance is only updated
        # after clean()).
        stored = {
            f.attname: getattr(self.instance, f.attname) for f in Patient._meta.concrete_fields
        }
        candidate = Patient(**stored)
        for field, value in data.items():
            setattr(candidate, field, value)
        return services.patient_errors(candidate, timezone.now())


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    form = PatientForm
    list_display = [
        "reference",
        "team",
        "birth_year",
        "sex",
        "immunophenotype",
        "initial_diagnosis_date",
    ]
    list_filter = ["team", "immunophenotype", "sex"]
    list_select_related = ["team"]
    search_fields = ["reference"]

    def get_readonly_fields(self, request: HttpRequest, obj: Patient | None = None) -> list[str]:
        return ["team"] if obj is not None else []  # as in the API: a patient keeps its team

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Patient, form: forms.Form, change: bool
    ) -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k != "team"}
        if change:
            saved = services.patient_update(obj, data, timezone.now(), actor=request.user)
        else:
            team = form.cleaned_data["team"]
            saved = services.patient_create(team_id=team.pk, data=data, now=timezone.now())
        obj.pk = saved.pk


class RelapseForm(ServiceForm):
    def service_errors(self, data: Mapping[str, Any]) -> Mapping[str, list[str]]:
        relapse = self.instance if self.instance.pk is not None else None
        patient = relapse.patient if relapse is not None else data["patient"]
        stored = (
            {f: getattr(relapse, f) for f in services.RELAPSE_FIELDS} if relapse is not None else {}
        )
        values = {**stored, **{k: v for k, v in data.items() if k != "patient"}}
        return services.relapse_errors(patient, values, timezone.now(), relapse=relapse)


@admin.register(Relapse)
class RelapseAdmin(admin.ModelAdmin):
    """Added through relapse_create and changed through relapse_update, as through the
    API: the same checks, and a change to a fact its course's decision read marks the
    decision stale."""

    form = RelapseForm
    list_display = ["patient", "relapse_date", "relapse_number", "site", "immunophenotype"]
    list_filter = ["site", "immunophenotype"]
    list_select_related = ["patient"]
    search_fields = ["patient__reference"]
    raw_id_fields = ["patient"]

    def get_readonly_fields(self, request: HttpRequest, obj: Relapse | None = None) -> list[str]:
        return ["patient"] if obj is not None else []  # a relapse keeps its patient

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Relapse, form: forms.Form, change: bool
    ) -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k != "patient"}
        if change:
            saved = services.relapse_update(obj, data, timezone.now(), actor=request.user)
        else:
            saved = services.relapse_create(
                patient=form.cleaned_data["patient"], data=data, now=timezone.now()
            )
        obj.pk = saved.pk


# --- courses ----------------------------------------------------------------------------


class StepInline(ReadOnlyInline):
    model = PlannedStep
    fields = ["sequence", "label", "planned_on", "due_on", "done_on", "status", "grace_days"]
    readonly_fields = fields


class TransitionInline(ReadOnlyInline):
    model = CourseTransition
    fields = ["name", "from_state", "to_state", "actor", "at", "reason"]
    readonly_fields = fields


class BlockInline(ReadOnlyInline):
    model = BlockAdministration


class AssessmentInline(ReadOnlyInline):
    model = ResponseAssessment


class MrdInline(ReadOnlyInline):
    model = MrdResult


class EventInline(ReadOnlyInline):
    model = ClinicalEvent


@admin.register(TreatmentCourse)
class TreatmentCourseAdmin(ReadOnlyAdmin):
    """Read-only: a course is opened, confirmed and moved through the API, whose
    services lay out the schedule and write the transition log and the audit trail.
    (An editable hsct_proposed here once changed a clinical proposal unaudited.)"""

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
    list_select_related = ["patient"]
    search_fields = ["patient__reference"]
    inlines = [StepInline, TransitionInline, BlockInline, AssessmentInline, MrdInline, EventInline]


@admin.register(PlannedStep)
class PlannedStepAdmin(ReadOnlyAdmin):
    """Read-only: steps change through the API (reschedule, skip, done), which keeps
    later due dates and the audit trail right."""

    list_display = ["course", "sequence", "label", "planned_on", "due_on", "done_on", "status"]
    list_filter = ["kind", "status"]
    list_select_related = ["course__patient"]
    search_fields = ["course__patient__reference"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "course", "actor", "action", "target", "target_id"]
    list_filter = ["action", "target"]
    list_select_related = ["course__patient", "actor"]


# --- clinical records -----------------------------------------------------------------


class RecordAdminForm(ServiceForm):
    """Validates a record with the same rules (and words) as the API."""

    def service_errors(self, data: Mapping[str, Any]) -> Mapping[str, list[str]]:
        course = data.get("course") or self.instance.course
        values = {k: v for k, v in data.items() if k != "course"}
        return services.record_errors(self._meta.model, course, values, timezone.now())


class RecordAdmin(admin.ModelAdmin):
    """Records are added through the same services as the API (so the schedule moves,
    the audit trail is written and the alerts are re-evaluated) and are append-only
    afterwards."""

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
        course = form.cleaned_data.get("course") or obj.course
        # An update (the referral) sends what changed, as a PATCH through the API does.
        data = {
            k: v
            for k, v in form.cleaned_data.items()
            if k != "course" and (not change or k in form.changed_data)
        }
        service = services.RECORD_SERVICES[type(obj)]
        record = service(course, data=data, actor=request.user, now=timezone.now())
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


class MrdAdminForm(RecordAdminForm):
    """The API's MRD entry: the unit is named, the value and sensitivity are stored as
    fractions."""

    unit = forms.ChoiceField(choices=MrdUnit.choices, help_text="of value and sensitivity")

    class Meta:
        model = MrdResult
        fields = ["course", "sampled_on", "time_point", "value", "qualitative", "sensitivity"]


@admin.register(MrdResult)
class MrdResultAdmin(RecordAdmin):
    form = MrdAdminForm
    list_display = ["course", "sampled_on", "time_point", "value", "qualitative", "recorded_by"]
    fields = [
        "course",
        "sampled_on",
        "time_point",
        "unit",
        "value",
        "qualitative",
        "sensitivity",
        "method",
        "recorded_by",
        "recorded_at",
    ]


@admin.register(ClinicalEvent)
class ClinicalEventAdmin(RecordAdmin):
    list_display = ["course", "kind", "occurred_on", "recorded_by"]
    fields = ["course", "kind", "occurred_on", "note", "recorded_by", "recorded_at"]


@admin.register(HsctReferral)
class HsctReferralAdmin(RecordAdmin):
    """The course's one referral: recorded and updated through referral_save, as with
    PUT/PATCH .../hsct-referral/ (so the referral and transplant steps complete)."""

    list_display = ["course", "referred_on", "donor_search_status", "planned_on", "performed_on"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["course"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)
