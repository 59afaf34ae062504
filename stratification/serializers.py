"""Input and output of the dry-run stratification endpoint, and the stored decision as
other endpoints embed it.

Field parsing (types, dates, choices) is DRF's; every clinical cross-field rule is
:func:`stratification.facts.validate_facts`, shared with the courses app, and the
protocol-dependent checks are :func:`stratification.engine.on_therapy_errors`. A bad
request is answered with *every* bad field at once: field errors and cross-field errors
are collected together rather than DRF's usual "fields first, then validate()".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework.fields import SkipField, get_error_detail

from config import serializers
from stratification.definitions import CONFIDENCES
from stratification.engine import on_therapy_errors
from stratification.facts import (
    BCR_ABL1_VALUES,
    FIELDS,
    FRONTLINE_STATUSES,
    UNKNOWN,
    EmSite,
    Immunophenotype,
    RelapseFacts,
    Site,
    TimePoint,
    validate_facts,
)
from stratification.models import StratificationDecision
from stratification.selectors import protocol_get, protocol_list


# config.serializers' number and boolean fields already take only JSON numbers and
# booleans (no "5", no true for 1 %, no NaN); these give the facts' own messages.
class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "must be a number"}


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "must be a whole number"}


class StrictBooleanField(serializers.BooleanField):
    """A clinical flag must be explicit: "yes", 1 or "false" are not booleans."""

    default_error_messages = {"invalid": "must be true or false"}


# The relapse number and prior HSCT: a value, or the word "unknown" (stored as null; the
# stratification then needs review). Neither has a default: both built-in protocols are
# for first relapses without a prior HSCT, so a default would decide the population.
WHY_RELAPSE_FACTS_MATTER = (
    "Both built-in protocols are for first relapses without a prior HSCT: unknown "
    "(answered null) makes the stratification needs_review, naming what is unknown."
)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": 32767},
            {"type": "string", "enum": [UNKNOWN]},
        ],
        "nullable": True,
    }
)
class RelapseNumberField(StrictIntegerField):
    """1 for a first relapse, the number of a later one, or ``"unknown"``; null in
    answers when unknown."""

    default_error_messages = {
        "invalid": "must be a whole number of at least 1, or unknown",
        "required": "is required: give 1 for a first relapse, the number of a later one, or "
        f"unknown. {WHY_RELAPSE_FACTS_MATTER}",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 32767)  # the column (PositiveSmallIntegerField)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        return UNKNOWN if data == UNKNOWN else super().to_internal_value(data)

    def run_validators(self, value: Any) -> None:
        if value != UNKNOWN:  # the bounds are a number's
            super().run_validators(value)

    def to_representation(self, value: Any) -> Any:
        return None if value is None else super().to_representation(value)


@extend_schema_field(
    {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": [UNKNOWN]}], "nullable": True}
)
class PriorHsctField(StrictBooleanField):
    """true, false or ``"unknown"``; null in answers when unknown."""

    default_error_messages = {
        "invalid": "must be true or false, or unknown",
        "required": "is required: say whether there was an HSCT before this relapse (true "
        f"or false), or unknown. {WHY_RELAPSE_FACTS_MATTER}",
    }

    def to_internal_value(self, data: Any) -> Any:
        return UNKNOWN if data == UNKNOWN else super().to_internal_value(data)

    def to_representation(self, value: Any) -> Any:
        return None if value is None else super().to_representation(value)


def _flat(detail: Any) -> list[str]:
    """A list field's per-item errors ({1: ["..."]}) as a flat list of messages, so every
    field's errors have the documented shape: a list of strings."""
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _flat(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _flat(value)]
    return [detail]


class StratifyRequestSerializer(serializers.Serializer):
    protocol = serializers.CharField(
        help_text="Slug of a loaded protocol definition, e.g. all-rez-bfm-90 or all-rez-bfm-2002."
    )
    initial_diagnosis_date = serializers.DateField(help_text="Initial diagnosis of ALL.")
    frontline_therapy_end_date = serializers.DateField(
        required=False,
        allow_null=True,
        default=None,
        help_text="End of front-line therapy; required when frontline_status is completed, "
        "empty otherwise.",
    )
    frontline_status = serializers.ChoiceField(
        choices=FRONTLINE_STATUSES,
        required=False,
        allow_null=True,
        default=None,
        help_text="completed (with frontline_therapy_end_date), on_therapy (the relapse "
        "happened during front-line therapy) or unknown. Absent: completed if an end date "
        "is given, else unknown — never on_therapy. Unknown where it decides between early "
        "and late: needs_review, the reason giving the cut-off date and both outcomes. "
        "on_therapy more than 36 months (the protocol's local default) after diagnosis is "
        "refused as implausible unless confirm_implausible is true.",
    )
    relapse_date = serializers.DateField()
    immunophenotype = serializers.ChoiceField(
        choices=Immunophenotype.choices,
        help_text="B, T or MPAL (mixed phenotype; outside the built-in protocols' population).",
    )
    site = serializers.ChoiceField(
        choices=Site.choices,
        help_text="isolated_bm: >= 25 % blasts, no EM disease (5 to < 25 %, M2 marrow, is "
        "accepted and needs_review: it needs confirmation, e.g. by MRD); combined: >= 5 % "
        "blasts plus EM disease; isolated_em: < 5 % blasts, EM disease proven.",
    )
    em_sites = serializers.ListField(
        child=serializers.ChoiceField(choices=EmSite.choices),
        required=False,
        default=list,
        help_text="Non-empty for combined and isolated_em, empty for isolated_bm.",
    )
    bm_blast_percent = StrictFloatField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Marrow blasts, 0-100 %. Required for isolated_bm and combined; an "
        "isolated_em relapse without it is needs_review (the marrow not assessed: most "
        "apparently isolated EM relapses have submicroscopic marrow involvement).",
    )
    mrd_end_of_induction = StrictFloatField(
        required=False,
        allow_null=True,
        default=None,
        help_text="MRD at the end of induction as a fraction (10^-3 = 0.001), 0-1.",
    )
    relapse_number = RelapseNumberField(
        help_text="Required: 1 for a first relapse, the number of a later one, or unknown. "
        "2 or more is needs_review (excluded_second_relapse); unknown is needs_review "
        f"(relapse_number_unknown). {WHY_RELAPSE_FACTS_MATTER}",
    )
    prior_hsct = PriorHsctField(
        help_text="Required: an HSCT before this relapse, true or false, or unknown. true is "
        "needs_review (excluded_prior_hsct); unknown is needs_review (prior_hsct_unknown). "
        f"{WHY_RELAPSE_FACTS_MATTER}",
    )
    bcr_abl1 = serializers.ChoiceField(
        choices=BCR_ABL1_VALUES,
        required=False,
        default="unknown",
        help_text="BCR::ABL1 (Ph) status at diagnosis. positive is needs_review "
        "(excluded_bcr_abl1_positive); unknown (default) stratifies with a warning.",
    )
    age_at_diagnosis_months = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text="Completed months of age at the initial diagnosis. Under 12 (infant) is "
        "needs_review (excluded_infant); null (default) stratifies with a warning.",
    )
    confirm_implausible = StrictBooleanField(
        required=False,
        default=False,
        help_text="Confirms an implausible value (frontline_status on_therapy long after "
        "diagnosis); needs implausible_reason. The decision then carries a warning.",
    )
    implausible_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=500,
        trim_whitespace=True,
        help_text="Why the implausible value is right (required with confirm_implausible).",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": ["expected a JSON object with the relapse facts"]}
            )
        errors: dict[str, Any] = {}
        values: dict[str, Any] = {}
        # A misspelt optional field ("mrd_end_induction") would otherwise be ignored and
        # silently change the HSCT indication: unknown fields are errors.
        for key in data:
            if key not in self.fields:
                errors[str(key)] = [serializers.UNKNOWN_FIELD]
        for field in self._writable_fields:
            try:
                values[field.field_name] = field.run_validation(field.get_value(data))
            except serializers.ValidationError as exc:
                errors[field.field_name] = _flat(exc.detail)
            except DjangoValidationError as exc:
                errors[field.field_name] = get_error_detail(exc)
            except SkipField:
                pass

        slug = values.get("protocol")
        if slug is not None:
            definition = protocol_get(slug)
            if definition is None:
                known = ", ".join(d.slug for d in protocol_list())
                errors["protocol"] = [f"{slug!r} is not a loaded protocol definition ({known})"]
            # The loaded definition travels with the data: the view needs no second lookup.
            values["protocol_definition"] = definition

        facts = {k: v for k, v in values.items() if k in FIELDS}
        for field, messages in validate_facts(facts, self.context["today"]).items():
            # A field that failed to parse was reported already; its cross-field
            # checks were skipped because the value is missing.
            errors.setdefault(field, messages)
        definition = values.get("protocol_definition")
        if definition is not None and not errors.keys() & set(FIELDS):
            # Protocol-dependent checks need consistent facts (and the protocol).
            errors.update(on_therapy_errors(RelapseFacts.from_mapping(facts), definition))
        if errors:
            raise serializers.ValidationError(errors)
        return values


class ReasonSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="Id of the rule that decided (see docs/protocols.md).")
    text = serializers.CharField()
    source = serializers.CharField(help_text="Where the rule comes from.")
    confidence = serializers.ChoiceField(
        choices=CONFIDENCES,
        allow_null=True,
        help_text="stated: in the named source; recalled: not checked against the primary "
        "paper; inferred: the project's reading (recalled and inferred are local defaults "
        "to confirm). null only on decisions stored before confidence was recorded.",
    )


class CutOffsSerializer(serializers.Serializer):
    very_early_before = serializers.DateField(help_text="A relapse before it is very early.")
    late_from = serializers.DateField(
        allow_null=True,
        help_text="A relapse on or after it is late; null unless front-line therapy is "
        "completed with an end date.",
    )
    late_if_frontline_ended_on_or_before = serializers.DateField(
        allow_null=True,
        help_text="With the front-line status unknown: late if front-line therapy ended on "
        "or before this date, early otherwise; null when the status is known or the "
        "relapse is very early.",
    )
    on_therapy_implausible_after = serializers.DateField(
        help_text="frontline_status on_therapy at a relapse after this date is implausible."
    )


_WARNINGS_HELP = (
    "Things to check that did not stop the stratification (e.g. BCR::ABL1 or age at "
    "diagnosis unknown, an implausible value confirmed), each as a reason."
)


class StratifyResponseSerializer(serializers.Serializer):
    protocol = serializers.CharField()
    protocol_version = serializers.CharField()
    time_point = serializers.ChoiceField(
        choices=TimePoint.choices,
        allow_null=True,
        help_text="null: not determined (front-line status unknown where it decides).",
    )
    cut_offs = CutOffsSerializer()
    site = serializers.ChoiceField(choices=Site.choices)
    risk_group = serializers.CharField(
        allow_null=True,
        help_text="A, B, C, PPG, S1-S4...; null when the status is needs_review.",
    )
    status = serializers.ChoiceField(
        choices=["assigned", "needs_review"],
        help_text="needs_review: no group proposed (outside the protocol's population, a "
        "fact that decides is unknown, the sources disagree, or no rule matched); the "
        "reasons say which, and a clinician assigns the group with a reason.",
    )
    hsct_indicated = serializers.BooleanField(
        allow_null=True, help_text="null: not decidable yet (e.g. S2 without MRD) or no group."
    )
    warnings = ReasonSerializer(many=True, help_text=_WARNINGS_HELP)
    reasons = ReasonSerializer(many=True)


class StratificationDecisionSerializer(serializers.ModelSerializer):
    """A stored decision as an endpoint embeds it (e.g. in a course). Rows stored before
    reasons carried a confidence show ``confidence: null`` and ``warnings`` /
    ``cut_offs`` null: not recorded at the time."""

    reasons = ReasonSerializer(source="reason_list", many=True, read_only=True)
    warnings = ReasonSerializer(
        source="warning_list", many=True, read_only=True, allow_null=True, help_text=_WARNINGS_HELP
    )
    cut_offs = CutOffsSerializer(read_only=True, allow_null=True)

    class Meta:
        model = StratificationDecision
        fields = [
            "id",
            "protocol_slug",
            "protocol_version",
            "status",
            "proposed_group",
            "time_point",
            "cut_offs",
            "site",
            "hsct_indicated",
            "warnings",
            "reasons",
            "created_at",
            "confirmed_at",
            "chosen_group",
            "override_reason",
        ]
        read_only_fields = fields


class StratificationDecisionDetailSerializer(StratificationDecisionSerializer):
    """One decision on its own, with the facts it was given."""

    class Meta(StratificationDecisionSerializer.Meta):
        fields = [*StratificationDecisionSerializer.Meta.fields, "input_snapshot"]
        read_only_fields = fields
