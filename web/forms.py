"""The web app's forms: the API's input fields, as HTML.

A form only parses what a field can say on its own (a date is a date, a choice is one
of the choices, the API serializer's bounds); every rule that reads the record or
spans fields is the service's, so the page refuses exactly what the API refuses and
in the same words (see web.errors.attempt). Fields the service requires are marked
``required`` in the HTML for the person's sake, but left optional here so that the
service's own message is the one shown when a browser does not check.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator

from config.parsers import refuse_control_characters
from courses.models import (
    BCR_ABL1_CHOICES,
    FOLLOW_UP_EVENT_KINDS,
    FRONTLINE_STATUS_CHOICES,
    MRD_QUALITATIVE_CHOICES,
    BlockAdministration,
    ClinicalEvent,
    ContactStatus,
    DonorSearch,
    EmStatus,
    EventKind,
    HsctReferral,
    Marrow,
    MrdUnit,
    OffProtocolReason,
    Patient,
    ResponseAssessment,
)
from stratification.facts import UNKNOWN, EmSite, Immunophenotype, Site
from teams.models import Team

REASON_MAX = 2000
YES_NO = [("yes", "Yes"), ("no", "No")]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def _yes_no(value: str) -> bool:
    return value == "yes"


def _yes_no_unknown(value: str) -> bool | str:
    return UNKNOWN if value == UNKNOWN else _yes_no(value)


def _number_or_unknown(value: str) -> int | str:
    return UNKNOWN if value == UNKNOWN else int(value)


# The relapse number as a choice (a later relapse than the ninth is not seen in practice),
# with "unknown", which the stratification sends to review; "" leaves it to the records.
RELAPSE_NUMBER_CHOICES = [
    ("", "Not chosen: from an earlier relapse recorded here"),
    ("1", "1 (first relapse)"),
    *((str(n), str(n)) for n in range(2, 10)),
    (UNKNOWN, "Unknown"),
]


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


# One decimal separator, no thousands separator: digits, then "." or "," and digits,
# optionally in e-notation (1e-3).
_CLINICAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?")


class ClinicalNumberField(forms.FloatField):
    """A clinical number as it is typed, with a dot or a decimal comma.

    The team works in English and German, so "0,2" is as likely as "0.2". It is read as
    0.2: no clinical number these forms take reaches 1,000 (a percentage is at most
    100, an MRD fraction at most 1), so a comma can only be a decimal separator. What
    could mean two different numbers ("1,000.5", "1.000,5", "0,2,5") is refused with a
    message that names the field and shows how to type it, never guessed.

    The input is a text box (``inputmode="decimal"``: the phone's number keypad), not
    ``type="number"``: Chromium's number input drops a comma it takes for a thousands
    separator, so a German "0,2" reached the server as "02", and 0.2 % was stored as
    2 % (issue 22)."""

    widget = forms.TextInput

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        attrs = super().widget_attrs(widget)
        attrs.update({"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"})
        return attrs

    def prepare_value(self, value: Any) -> Any:
        # A stored number shown to be corrected reads as it is typed: 2, not 2.0;
        # 0.00001, not 1e-05.
        if isinstance(value, float):
            return format(Decimal(f"{value:.12g}").normalize(), "f")
        return value

    def to_python(self, value: Any) -> float | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if text in self.empty_values:
            return None
        if not _CLINICAL_NUMBER.fullmatch(text):
            raise ValidationError(self._how_to_type(text), code="invalid")
        return super().to_python(text.replace(",", "."))

    @staticmethod
    def _how_to_type(text: str) -> str:
        # Shown beside the field and, after its label, in the page's error summary.
        if "," in text and "." in text or text.count(",") > 1 or text.count(".") > 1:
            why = "uses more than one separator, so it could be read as two different numbers"
        else:
            why = "is not a number"
        return (
            f"“{text}” {why}. Type it with one decimal separator and no thousands "
            "separator, e.g. 0.2 or 0,2 (a comma is read as the decimal point)."
        )


def start_date_field() -> forms.DateField:
    """The clinical start a confirmation gives (the service decides the default)."""
    return forms.DateField(
        label="Therapy began on",
        required=False,
        help_text="The day therapy began (a clinical date). Empty: the first recorded "
        "block's start, or today. The schedule's plan counts from it.",
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

    # Model fields whose cross-field rules (the model's check constraints) the service
    # states in its own words: the model's check is not run on them here.
    service_checked: tuple[str, ...] = ()

    def _get_validation_exclusions(self) -> set[str]:
        exclude = super()._get_validation_exclusions()  # type: ignore[misc]
        return {*exclude, *self.service_checked}


# --- registration ----------------------------------------------------------------------


MONTHS = [
    (n, name)
    for n, name in enumerate(
        (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        start=1,
    )
]


def _drop_empty(data: dict[str, Any], *fields: str) -> dict[str, Any]:
    """Fields left empty are not sent: the service then derives them (as the API does
    for an absent field)."""
    for name in fields:
        if data.get(name) in (None, ""):
            data.pop(name, None)
    return data


class PatientForm(WebFormMixin, forms.ModelForm):
    """A team field appears only for someone who may register in several teams."""

    service_checked = ("frontline_status", "frontline_end_date")

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    birth_month = forms.TypedChoiceField(
        label="Birth month",
        choices=[("", "Not known"), *MONTHS],
        coerce=int,
        empty_value=None,
        required=False,
        help_text="With the birth year it gives the age at diagnosis (the protocols exclude "
        "infants, diagnosed before 12 months). The day of birth is never recorded.",
    )
    bcr_abl1 = forms.ChoiceField(
        label="BCR::ABL1 (Ph) at diagnosis",
        choices=BCR_ABL1_CHOICES,
        initial="unknown",
        required=False,
        help_text="Ph+ ALL is outside both protocols (it needs a TKI); unknown stratifies "
        "with a warning.",
    )
    frontline_status = forms.ChoiceField(
        label="Front-line therapy at the relapse",
        choices=FRONTLINE_STATUS_CHOICES,
        widget=forms.RadioSelect,
        required=False,
        help_text='Completed needs the end date. Unknown is never read as "on therapy": '
        "where it decides the time point, the stratification needs review.",
    )

    class Meta:
        model = Patient
        fields = [
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
        ]
        help_texts = {
            "reference": "The team's pseudonymous code for the patient: letters, digits, "
            "'.', '_' or '-'. Never a name, initials or a hospital number.",
            "frontline_end_date": "Only when front-line therapy is completed.",
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
        return _drop_empty(data, "frontline_status", "bcr_abl1")


class RelapseForm(WebFormMixin, forms.Form):
    relapse_date = forms.DateField(label="Relapse date")
    relapse_number = forms.TypedChoiceField(
        label="Relapse number",
        choices=RELAPSE_NUMBER_CHOICES,
        coerce=_number_or_unknown,
        empty_value=None,
        required=False,
        help_text="1 for a first relapse. Not chosen: one more than this patient's earlier "
        "relapse recorded here; with none recorded, choose it (or unknown). Both protocols "
        "are for first relapses: unknown sends the stratification to review.",
    )
    site = forms.ChoiceField(label="Site", choices=Site.choices, widget=forms.RadioSelect)
    em_sites = forms.MultipleChoiceField(
        label="Extramedullary sites",
        choices=EmSite.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    bm_blast_percent = ClinicalNumberField(
        label="Marrow blasts (%)",
        required=False,
        min_value=0,
        max_value=100,
        help_text="Needed for every site: isolated marrow >= 25 % (5 to under 25 % is "
        "recorded for review), combined >= 5 %, isolated extramedullary < 5 % — without a "
        "count an extramedullary relapse is not known to be isolated (review).",
    )
    immunophenotype = forms.ChoiceField(
        label="Immunophenotype at relapse",
        choices=[("", "Same as at diagnosis"), *Immunophenotype.choices],
        required=False,
    )
    prior_hsct = forms.TypedChoiceField(
        label="HSCT before this relapse?",
        choices=[*YES_NO, (UNKNOWN, "Unknown")],
        coerce=_yes_no_unknown,
        empty_value=None,
        widget=forms.RadioSelect,
        required=False,
        help_text="Left unanswered: yes if a transplant of this patient is recorded here "
        "before the relapse; with none recorded, answer it (or unknown). Both protocols are "
        "for relapses without a prior HSCT: unknown sends the stratification to review.",
    )

    def service_data(self) -> dict[str, Any]:
        return _drop_empty(
            dict(self.cleaned_data), "immunophenotype", "relapse_number", "prior_hsct"
        )


class ImplausibleForm(WebFormMixin, forms.Form):
    """A clinician's confirmation of an implausible fact (front-line therapy still
    running long after diagnosis), which the services otherwise refuse."""

    confirm_implausible = forms.BooleanField(
        label="Confirm: the relapse came during front-line therapy", required=False
    )
    implausible_reason = forms.CharField(
        label="Why (required to confirm)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": 500}),
    )


class CourseOpenForm(ImplausibleForm):
    """Open the course on a protocol; confirm the proposed group (or another with a
    reason) now, or leave it for a clinician's review."""

    protocol = forms.ChoiceField(label="Protocol", widget=forms.HiddenInput)
    risk_group = forms.ChoiceField(label="Risk group to confirm", required=False)
    reason = reason_field(
        help_text="Required when you confirm a group other than the proposed one."
    )
    start_date = start_date_field()
    field_order = [
        "protocol",
        "risk_group",
        "reason",
        "start_date",
        "confirm_implausible",
        "implausible_reason",
    ]

    def __init__(
        self,
        *args: Any,
        protocols: list[tuple[str, str]],
        groups: list[tuple[str, str]],
        implausible: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["protocol"].choices = protocols
        self.fields["risk_group"].choices = [("", "Choose the group")] + groups
        if not implausible:
            # Asked only where the proposal says a fact is implausible.
            del self.fields["confirm_implausible"], self.fields["implausible_reason"]

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data.setdefault("confirm_implausible", False)
        data.setdefault("implausible_reason", "")
        return data


class RestratifyForm(ImplausibleForm):
    def service_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        if not data.get("confirm_implausible"):
            # The current decision's confirmation (if any) carries over.
            return {"confirm_implausible": None, "implausible_reason": None}
        return {"confirm_implausible": True, "implausible_reason": data["implausible_reason"]}


# --- course decisions and moves -----------------------------------------------------------


class ConfirmForm(WebFormMixin, forms.Form):
    risk_group = forms.ChoiceField(label="Risk group")
    reason = reason_field(help_text="Required when you choose a group other than the proposed one.")
    start_date = start_date_field()

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
    on = forms.DateField(
        label="Happened on",
        required=False,
        help_text="The clinical date of the move (empty: today); not before the last move.",
    )
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
            "on": data.get("on"),
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


class MrdForm(WebFormMixin, forms.Form):
    """An MRD result that cannot be misread: a measured value with its unit, or a
    qualitative result (negative / positive, not quantifiable) with the assay's
    sensitivity; the time point from the protocol's list. (A plain form: which of these
    go together is the service's rule, said in its words.)"""

    sampled_on = forms.DateField(label="Sampled on")
    time_point = forms.ChoiceField(label="Time point", required=False)
    unit = forms.ChoiceField(
        label="Unit of the value and the sensitivity",
        choices=MrdUnit.choices,
        widget=forms.RadioSelect(attrs={"required": True}),
        required=False,
    )
    value = ClinicalNumberField(
        label="Measured MRD value",
        required=False,
        help_text="In the unit chosen above: 0.001 as a fraction is 0.1 as a percent (10⁻³). "
        "A decimal comma is read as the point (0,1 is 0.1). Stored as a fraction.",
    )
    qualitative = forms.ChoiceField(
        label="Or a qualitative result",
        choices=[("", "— (a measured value)"), *MRD_QUALITATIVE_CHOICES],
        required=False,
        help_text="Negative, or positive but below the quantitative range: leave the value "
        "empty and give the sensitivity.",
    )
    sensitivity = ClinicalNumberField(
        label="Sensitivity of the assay",
        required=False,
        help_text="Its limit, in the same unit (10⁻⁴ is 0.0001 as a fraction, 0.01 as a "
        "percent). Required with a qualitative result.",
    )
    method = forms.CharField(label="Method", max_length=30, initial="RQ-PCR", required=False)

    def service_data(self) -> dict[str, Any]:
        return _drop_empty(dict(self.cleaned_data), "method")

    def __init__(self, *args: Any, time_points: list[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_point"].choices = [("", "Choose the time point"), *time_points]
        self.fields["time_point"].widget.attrs["required"] = True


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
    """A clinical event, or a follow-up contact with the patient's status. After
    therapy (``follow_up``) only what a closed course takes is offered."""

    kind = forms.ChoiceField(label="Event", choices=EventKind.choices)
    contact_status = forms.ChoiceField(
        label="Status at the contact",
        choices=[("", "—"), *ContactStatus.choices],
        required=False,
        help_text="For a follow-up contact: how the patient was.",
    )

    class Meta:
        model = ClinicalEvent
        fields = ["kind", "occurred_on", "contact_status", "note"]
        labels = {"occurred_on": "Occurred on"}
        widgets = {"note": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, follow_up: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if follow_up:
            labels = dict(EventKind.choices)
            self.fields["kind"].choices = [(k, labels[k]) for k in FOLLOW_UP_EVENT_KINDS]


AMEND_REASON_HELP = (
    "Required: what was wrong (e.g. typed in percent, the report says a fraction). It is "
    "kept with the old and the new values and shown beside the record."
)


@functools.cache
def amendment_form(form_class: type[forms.Form]) -> type[forms.Form]:
    """``form_class`` as a record's amend page shows it: the record's fields and, last,
    why it is amended (the service requires it and says so beside the field)."""

    def service_data(self: forms.Form) -> dict[str, Any]:
        data = form_class.service_data(self)
        data.pop("reason", None)
        return data

    def reason(self: forms.Form) -> str:
        return self.cleaned_data.get("reason", "")

    return type(
        f"{form_class.__name__}Amendment",
        (form_class,),
        {
            "reason": reason_field(
                "Why is this record amended?", required_in_html=True, help_text=AMEND_REASON_HELP
            ),
            "service_data": service_data,
            "reason_given": reason,
            "__module__": __name__,
        },
    )


class VoidForm(WebFormMixin, forms.Form):
    reason = reason_field("Why is this record void?", required_in_html=True)


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
