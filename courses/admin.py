"""Admin for courses. Every write goes through the same service as the API, so the
same rules (with the same words), the audit trail, the schedule and the alert
re-evaluation apply whatever the channel:

* patients: created and edited through patient_create / patient_update;
* relapses: added through relapse_create and changed through relapse_update (a change
  to a fact a decision read marks it stale);
* clinical records and the HSCT referral: added through their record services;
  afterwards amended with a reason (record_amend: the old values and the reason go to
  the audit trail; the referral through referral_save) or voided with a reason
  (record_void), never deleted — the same services as ``PATCH .../{id}/`` and
  ``POST .../{id}/void/``;
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
from stratification.facts import UNKNOWN


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


def _relapse_number(value: str) -> int | str:
    if value == UNKNOWN:
        return value
    if not value.isdigit() or int(value) < 1:
        raise forms.ValidationError("must be a whole number of at least 1, or unknown")
    return int(value)


class RelapseForm(ServiceForm):
    """The relapse number and prior HSCT take ``unknown`` as the API does (stored as
    null, the stratification then needs review); left empty on a new relapse they come
    from the records here, or the service asks for them. On a stored relapse, unknown
    shows as unknown."""

    relapse_number = forms.CharField(
        required=False,
        help_text="1 for a first relapse, the number of a later one, or unknown. Empty on "
        "a new relapse: one more than the patient's earlier relapse recorded here (with "
        "none recorded, the number must be given).",
    )
    prior_hsct = forms.ChoiceField(
        required=False,
        choices=[
            ("", "From the records here"),
            ("true", "Yes"),
            ("false", "No"),
            (UNKNOWN, "Unknown"),
        ],
        help_text="An HSCT before this relapse. From the records here: yes when a "
        "transplant of the patient is recorded before it; with none recorded, answer it.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            number, prior = self.instance.relapse_number, self.instance.prior_hsct
            self.initial["relapse_number"] = UNKNOWN if number is None else str(number)
            self.initial["prior_hsct"] = UNKNOWN if prior is None else str(prior).lower()

    def clean_relapse_number(self) -> int | str | None:
        value = self.cleaned_data["relapse_number"].strip().lower()
        return _relapse_number(value) if value else None

    def clean_prior_hsct(self) -> bool | str | None:
        value = self.cleaned_data["prior_hsct"]
        return {"": None, "true": True, "false": False}.get(value, value)

    def _get_validation_exclusions(self) -> set[str]:
        # The service judges both (unknown is not a model value until it is stored).
        return {*super()._get_validation_exclusions(), "relapse_number", "prior_hsct"}

    def service_errors(self, data: Mapping[str, Any]) -> Mapping[str, list[str]]:
        relapse = self.instance if self.instance.pk is not None else None
        patient = relapse.patient if relapse is not None else data["patient"]
        stored = (
            {f: getattr(relapse, f) for f in services.RELAPSE_FIELDS} if relapse is not None else {}
        )
        values = {**stored, **self.service_data()}
        return services.relapse_errors(patient, values, timezone.now(), relapse=relapse)

    def service_data(self) -> dict[str, Any]:
        """The values for the service. On a new relapse an empty number or prior HSCT is
        not sent (the records say, or the service names it); on a stored one, empty is
        unknown."""
        data = {k: v for k, v in self.cleaned_data.items() if k != "patient"}
        for field in ("relapse_number", "prior_hsct"):
            if data.get(field) is None:
                if self.instance.pk is None:
                    data.pop(field, None)
                else:
                    data[field] = UNKNOWN
        return data


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
        data = form.service_data()
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


class RecordInline(ReadOnlyInline):
    """A course's records, voided ones included (their void columns say so)."""

    def get_queryset(self, request: HttpRequest) -> Any:
        return self.model.with_voided.all()


class BlockInline(RecordInline):
    model = BlockAdministration


class AssessmentInline(RecordInline):
    model = ResponseAssessment


class MrdInline(RecordInline):
    model = MrdResult


class EventInline(RecordInline):
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


# The admin's own inputs beside a record's fields: why it is amended, why it is void.
NOT_RECORD_FIELDS = ("course", "void_reason", "amend_reason")


class RecordAdminForm(ServiceForm):
    """Validates a record with the same rules (and words) as the API: a new record as
    the record service does, a change as an amendment does (with its reason, required
    as on every channel). A change that gives a reason to void voids the record instead
    (and may change nothing else)."""

    amend_reason = forms.CharField(
        label="Reason for the amendment",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to change a recorded value: kept with the old and new values "
        "in the course's audit trail.",
    )

    def service_errors(self, data: Mapping[str, Any]) -> Mapping[str, list[str]]:
        values = {k: v for k, v in data.items() if k not in NOT_RECORD_FIELDS}
        if self.instance.pk is None:
            course = data.get("course")
            return services.record_errors(self._meta.model, course, values, timezone.now())
        if data.get("void_reason", "").strip():
            changed = [f for f in self.changed_data if f not in ("void_reason", "amend_reason")]
            return {f: ["void or amend the record, not both at once."] for f in changed}
        changes = {k: v for k, v in values.items() if k in self.changed_data}
        errors = services.amend_errors(
            self.instance, changes, timezone.now(), reason=data.get("amend_reason", "")
        )
        # The service names its input "reason"; here it is the amendment's box.
        return {"amend_reason" if k == "reason" else k: v for k, v in errors.items()}


class RecordAdmin(admin.ModelAdmin):
    """Records are added, amended and voided through the same services as the API (so
    the schedule moves, the audit trail is written and the alerts are re-evaluated);
    never deleted. Voided records are listed, marked, and read-only."""

    form = RecordAdminForm
    raw_id_fields = ["course"]
    readonly_fields = ["recorded_by", "recorded_at", "amended_at", "voided_at", "voided_by"]
    list_select_related = ["course__patient", "recorded_by"]
    list_filter = [("voided_at", admin.EmptyFieldListFilter)]

    def get_queryset(self, request: HttpRequest) -> Any:
        # Voided records stay visible (marked): they are part of the course's record.
        return self.model.with_voided.select_related(*self.list_select_related)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        if obj is None:  # nothing to amend or void yet, and no history to show
            hidden = (*RecordAdmin.readonly_fields, "void_reason", "amend_reason")
            return [f for f in fields if f not in hidden]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["course"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (obj is None or obj.voided_at is None) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(boolean=True, description="valid")
    def valid(self, obj: Any) -> bool:
        return obj.voided_at is None

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        now = timezone.now()
        if change:
            # The form changed obj in memory; the service reads the stored row.
            stored = type(obj).with_voided.get(pk=obj.pk)
            reason = form.cleaned_data.get("void_reason", "").strip()
            if reason:
                services.record_void(stored, reason=reason, actor=request.user, now=now)
                return
            data = {
                k: v
                for k, v in form.cleaned_data.items()
                if k in form.changed_data and k not in NOT_RECORD_FIELDS
            }
            why = form.cleaned_data.get("amend_reason", "")
            if type(obj) is HsctReferral:  # progress updates, as PUT/PATCH .../hsct-referral/
                services.referral_save(
                    stored.course, data=data, reason=why, actor=request.user, now=now
                )
            else:
                services.record_amend(stored, data=data, reason=why, actor=request.user, now=now)
            return
        course = form.cleaned_data["course"]
        data = {k: v for k, v in form.cleaned_data.items() if k not in NOT_RECORD_FIELDS}
        service = services.RECORD_SERVICES[type(obj)]
        record = service(course, data=data, actor=request.user, now=now)
        obj.pk = record.pk
        obj.recorded_by = record.recorded_by
        obj.recorded_at = record.recorded_at


# What a record's change page shows besides its own facts: its history, and the box
# that voids it.
HISTORY = [
    "recorded_by",
    "recorded_at",
    "amended_at",
    "amend_reason",
    "voided_at",
    "voided_by",
    "void_reason",
]


@admin.register(BlockAdministration)
class BlockAdministrationAdmin(RecordAdmin):
    list_display = ["course", "block_type", "start_date", "end_date", "recorded_by", "valid"]
    fields = ["course", "block_type", "start_date", "end_date", "delay_reason", *HISTORY]


@admin.register(ResponseAssessment)
class ResponseAssessmentAdmin(RecordAdmin):
    list_display = ["course", "assessed_on", "marrow", "cr2", "em_status", "recorded_by", "valid"]
    fields = ["course", "assessed_on", "marrow", "cr2", "em_status", *HISTORY]


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
    list_display = [
        "course",
        "sampled_on",
        "time_point",
        "value",
        "qualitative",
        "method",
        "recorded_by",
        "valid",
    ]
    fields = [
        "course",
        "sampled_on",
        "time_point",
        "unit",
        "value",
        "qualitative",
        "sensitivity",
        "method",
        *HISTORY,
    ]


@admin.register(ClinicalEvent)
class ClinicalEventAdmin(RecordAdmin):
    list_display = ["course", "kind", "occurred_on", "contact_status", "recorded_by", "valid"]
    fields = ["course", "kind", "occurred_on", "contact_status", "note", *HISTORY]


@admin.register(HsctReferral)
class HsctReferralAdmin(RecordAdmin):
    """The course's one valid referral: recorded and updated through referral_save, as
    with PUT/PATCH .../hsct-referral/ (so the referral and transplant steps complete),
    or voided (then a new one can be recorded)."""

    list_display = [
        "course",
        "referred_on",
        "donor_search_status",
        "planned_on",
        "performed_on",
        "valid",
    ]
    fields = [
        "course",
        "referred_on",
        "donor_search_status",
        "donor_type",
        "centre",
        "planned_on",
        "performed_on",
        *HISTORY,
    ]
