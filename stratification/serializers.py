"""Input and output of the dry-run stratification endpoint.

Field parsing (types, dates, choices) is DRF's; every clinical cross-field rule is
:func:`stratification.facts.validate_facts`, shared with the courses app. A bad request
is answered with *every* bad field at once: field errors and cross-field errors are
collected together rather than DRF's usual "fields first, then validate()".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import SkipField, get_error_detail

from stratification.facts import FIELDS, EmSite, Immunophenotype, Site, TimePoint, validate_facts
from stratification.selectors import protocol_get, protocol_list


class StrictFloatField(serializers.FloatField):
    """A JSON number: no booleans (``true`` is not 1 %), no NaN or infinity."""

    default_error_messages = {"invalid": "must be a number"}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


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
        help_text="End of front-line therapy; null or absent: relapse during front-line therapy.",
    )
    relapse_date = serializers.DateField()
    immunophenotype = serializers.ChoiceField(choices=Immunophenotype.choices)
    site = serializers.ChoiceField(
        choices=Site.choices,
        help_text="isolated_bm: >= 25 % blasts, no EM disease; combined: >= 5 % blasts plus "
        "EM disease; isolated_em: < 5 % blasts, EM disease proven.",
    )
    em_sites = serializers.ListField(
        child=serializers.ChoiceField(choices=EmSite.choices),
        required=False,
        default=list,
        help_text="Non-empty for combined and isolated_em, empty for isolated_bm.",
    )
    bm_blast_percent = StrictFloatField(
        required=False, allow_null=True, default=None, help_text="Marrow blasts, 0-100 %."
    )
    mrd_end_of_induction = StrictFloatField(
        required=False,
        allow_null=True,
        default=None,
        help_text="MRD at the end of induction as a fraction (10^-3 = 0.001), 0-1.",
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
                errors[str(key)] = ["is not a known field"]
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
        if errors:
            raise serializers.ValidationError(errors)
        return values


class ReasonSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="Id of the rule that decided (see docs/protocols.md).")
    text = serializers.CharField()
    source = serializers.CharField(help_text="Where the rule comes from.")


class StratifyResponseSerializer(serializers.Serializer):
    protocol = serializers.CharField()
    protocol_version = serializers.CharField()
    time_point = serializers.ChoiceField(choices=TimePoint.choices)
    site = serializers.ChoiceField(choices=Site.choices)
    risk_group = serializers.CharField(
        allow_null=True, help_text="A, B, C, PPG, S1-S4...; null when no rule matched."
    )
    status = serializers.ChoiceField(choices=["assigned", "needs_review"])
    hsct_indicated = serializers.BooleanField(
        allow_null=True, help_text="null: not decidable yet (e.g. S2 without MRD) or no group."
    )
    reasons = ReasonSerializer(many=True)
