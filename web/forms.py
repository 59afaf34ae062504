"""The web app's forms: the API's input fields, as HTML.

A form only parses what a field can say on its own (a date is a date, a choice is one
of the choices, the API serializer's bounds); every rule that reads the record or
spans fields is the service's, so the page refuses exactly what the API refuses and
in the same words (see web.errors.attempt). Fields the service requires are marked
``required`` in the HTML for the person's sake, but left optional here so that the
service's own message is the one shown when a browser does not check.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator

from config.parsers import refuse_control_characters
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    DonorSearch,
    EmStatus,
    EventKind,
    HsctReferral,
    Marrow,
    MrdResult,
    OffProtocolReason,
    Patient,
    ResponseAssessment,
)
from stratification.facts import EmSite, Immunophenotype, Site
from teams.models import Team

REASON_MAX = 2000
YES_NO = [("yes", "Yes"), ("no", "No")]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def _yes_no(value: str) -> bool:
    return value == "yes"


def reason_field(label: str = "Reason", *, required_in_html: bool = False, **kwargs: Any):
    attrs = {"rows": 2, "maxlength": REASON_MAX}
    if required_in_html:
        attrs["required"] = True
    return forms.CharField(
        label=label,
        required=False,
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs=attrs),
        **kwargs,
    )


class WebFormMixin:
    """Dates as date pickers, and no browser-side checks beyond ``required``. The API's
    input bounds hold here too (config/serializers.py): no control characters in text,
    free text of at most REZCOURSE_TEXT_MAX_LENGTH characters where the field names no
    limit, dates from REZCOURSE_DATE_MIN to REZCOURSE_DATE_MAX."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for field in self.fields.values():  # type: ignore[attr-defined]
            if isinstance(field, forms.DateField):
                if not isinstance(field.widget, DateInput):
                    field.widget = DateInput(attrs=field.widget.attrs)
                field.validators += [
                    MinValueValidator(settings.REZCOURSE_DATE_MIN),
                    MaxValueValidator(settings.REZCOURSE_DATE_MAX),
                ]
            elif isinstance(field, forms.CharField):
                field.validators.append(refuse_control_characters)
                if field.max_length is None:
                    field.max_length = settings.REZCOURSE_TEXT_MAX_LENGTH
                    field.validators.append(MaxLengthValidator(field.max_length))

    def service_data(self) -> dict[str, Any]:
        """What the service takes: the cleaned fields, minus presentation-only ones."""
        return dict(self.cleaned_data)  # type: ignore[attr-defined]


# --- registration ----------------------------------------------------------------------


class PatientForm(WebFormMixin, forms.ModelForm):
    """A team field appears only for someone who may register in several teams."""

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)

    class Meta:
        model = Patient
        fields = [
            "reference",
            "birth_year",
            "sex",
            "immunophenotype",
            "initial_diagnosis_date",
            "frontline_protocol",
            "frontline_end_date",
        ]
        help_texts = {
            "reference": "The team's pseudonymous code for the patient: letters, digits, "
            "'.', '_' or '-'. Never a name, initials or a hospital number.",
            "frontline_end_date": "Leave empty if front-line therapy had not ended "
            "when the relapse was found.",
        }
        labels = {
            "initial_diagnosis_date": "Initial diagnosis date",
            "frontline_protocol": "Front-line protocol",
            "frontline_end_date": "Front-line therapy end date",
        }

    def __init__(self, *args: Any, teams: list[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teams = teams
        if len(teams) > 1:
            self.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in teams])
            self.order_fields(["team"])
        else:
            del self.fields["team"]

    def team_id(self) -> int:
        if "team" in self.fields:
            return self.cleaned_data["team"].pk
        return self.teams[0].pk

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data.pop("team", None)
        return data


class RelapseForm(WebFormMixin, forms.Form):
    relapse_date = forms.DateField(label="Relapse date")
    site = forms.ChoiceField(label="Site", choices=Site.choices, widget=forms.RadioSelect)
    em_sites = forms.MultipleChoiceField(
        label="Extramedullary sites",
        choices=EmSite.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    bm_blast_percent = forms.FloatField(
        label="Marrow blasts (%)", required=False, min_value=0, max_value=100
    )
    immunophenotype = forms.ChoiceField(
        label="Immunophenotype at relapse",
        choices=[("", "Same as at diagnosis"), *Immunophenotype.choices],
        required=False,
    )

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        if not data.get("immunophenotype"):
            data.pop("immunophenotype", None)
        return data


class CourseOpenForm(WebFormMixin, forms.Form):
    """Open the course on a protocol; confirm the proposed group (or another with a
    reason) now, or leave it for a clinician's review."""

    protocol = forms.ChoiceField(label="Protocol", widget=forms.HiddenInput)
    risk_group = forms.ChoiceField(label="Risk group to confirm", required=False)
    reason = reason_field(
        help_text="Required when you confirm a group other than the proposed one."
    )

    def __init__(
        self,
        *args: Any,
        protocols: list[tuple[str, str]],
        groups: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["protocol"].choices = protocols
        self.fields["risk_group"].choices = [("", "Choose the group")] + groups


# --- course decisions and moves -----------------------------------------------------------


class ConfirmForm(WebFormMixin, forms.Form):
    risk_group = forms.ChoiceField(label="Risk group")
    reason = reason_field(help_text="Required when you choose a group other than the proposed one.")

    def __init__(self, *args: Any, groups: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["risk_group"].choices = groups


class ConfirmHsctForm(WebFormMixin, forms.Form):
    hsct_indicated = forms.TypedChoiceField(
        label="Allogeneic HSCT indicated?",
        choices=YES_NO,
        coerce=_yes_no,
        widget=forms.RadioSelect,
    )
    reason = reason_field(help_text="Required when you decide against the proposal.")


class TransitionForm(WebFormMixin, forms.Form):
    transition = forms.ChoiceField(label="Move")
    reason = reason_field()
    off_protocol_reason = forms.ChoiceField(
        label="Off-protocol reason",
        choices=[("", "—"), *OffProtocolReason.choices],
        required=False,
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    def __init__(
        self,
        *args: Any,
        transitions: list[tuple[str, str]],
        requires: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["transition"].choices = transitions
        if "reason" in requires:
            self.fields["reason"].widget.attrs["required"] = True
        if "off_protocol_reason" not in requires:
            del self.fields["off_protocol_reason"]
        else:
            self.fields["off_protocol_reason"].widget.attrs["required"] = True

    def service_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["transition"],
            "reason": data.get("reason", ""),
            "off_protocol_reason": data.get("off_protocol_reason", ""),
            "expected_version": data.get("version"),
        }


# --- clinical records --------------------------------------------------------------------


class BlockForm(WebFormMixin, forms.ModelForm):
    class Meta:
        model = BlockAdministration
        fields = ["block_type", "start_date", "end_date", "delay_reason"]
        labels = {"block_type": "Block", "delay_reason": "Reason for any delay"}
        widgets = {"delay_reason": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, block_types: list[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if block_types:
            self.fields["block_type"].widget.attrs["list"] = "block-types"
            self.fields["block_type"].help_text = "This course's schedule names: " + ", ".join(
                block_types
            )


class AssessmentForm(WebFormMixin, forms.ModelForm):
    marrow = forms.ChoiceField(label="Marrow", choices=Marrow.choices, widget=forms.RadioSelect)
    cr2 = forms.TypedChoiceField(
        label="Second complete remission (CR2)?",
        choices=YES_NO,
        coerce=_yes_no,
        widget=forms.RadioSelect,
    )
    em_status = forms.ChoiceField(label="Extramedullary status", choices=EmStatus.choices)

    class Meta:
        model = ResponseAssessment
        fields = ["assessed_on", "marrow", "cr2", "em_status"]
        labels = {"assessed_on": "Assessed on"}


class MrdForm(WebFormMixin, forms.ModelForm):
    class Meta:
        model = MrdResult
        fields = ["sampled_on", "time_point", "value", "method", "sensitivity"]
        labels = {"sampled_on": "Sampled on", "time_point": "Time point", "value": "MRD value"}
        help_texts = {
            "value": "As a fraction of cells: 0.001 is 10⁻³ (0.1 %); 0 for negative.",
            "sensitivity": "The assay's sensitivity as a fraction, e.g. 0.0001 (10⁻⁴).",
        }

    def __init__(self, *args: Any, time_points: list[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if time_points:
            self.fields["time_point"].widget.attrs["list"] = "mrd-time-points"
            self.fields["time_point"].help_text = "This course's schedule names: " + ", ".join(
                time_points
            )


class ReferralForm(WebFormMixin, forms.ModelForm):
    donor_search_status = forms.ChoiceField(
        label="Donor search", choices=DonorSearch.choices, required=False
    )

    class Meta:
        model = HsctReferral
        fields = [
            "referred_on",
            "donor_search_status",
            "donor_type",
            "centre",
            "planned_on",
            "performed_on",
        ]
        labels = {
            "referred_on": "Referred on",
            "planned_on": "Transplant planned on",
            "performed_on": "Transplant performed on",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The service says when it is missing (the API's PATCH may leave it out).
        self.fields["referred_on"].required = False
        self.fields["referred_on"].widget.attrs["required"] = True

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        if not data.get("donor_search_status"):
            data.pop("donor_search_status", None)
        return data


class EventForm(WebFormMixin, forms.ModelForm):
    kind = forms.ChoiceField(label="Event", choices=EventKind.choices)

    class Meta:
        model = ClinicalEvent
        fields = ["kind", "occurred_on", "note"]
        labels = {"occurred_on": "Occurred on"}
        widgets = {"note": forms.Textarea(attrs={"rows": 2})}


class StepRescheduleForm(WebFormMixin, forms.Form):
    due_on = forms.DateField(label="New due date")
    reason = reason_field("Reason for rescheduling", required_in_html=True)

    def service_data(self) -> dict[str, Any]:
        return {"due_on": self.cleaned_data["due_on"], "reason": self.cleaned_data["reason"]}


class StepSkipForm(WebFormMixin, forms.Form):
    reason = reason_field("Why is this step skipped?", required_in_html=True)

    def service_data(self) -> dict[str, Any]:
        return {"status": "skipped", "reason": self.cleaned_data["reason"]}


# --- alerts -----------------------------------------------------------------------------


class AcknowledgeForm(WebFormMixin, forms.Form):
    note = reason_field("Note (optional)")


class SnoozeForm(WebFormMixin, forms.Form):
    until = forms.DateField(label="Snooze until")
    reason = reason_field("Reason for snoozing", required_in_html=True)


class ResolveForm(WebFormMixin, forms.Form):
    reason = reason_field("Reason for resolving", required_in_html=True)


ALERT_FORMS: dict[str, type[forms.Form]] = {
    "acknowledge": AcknowledgeForm,
    "snooze": SnoozeForm,
    "resolve": ResolveForm,
}
