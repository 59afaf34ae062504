"""Each vocabulary is defined once (stratification/facts.py, and StepKind in
definitions.py); the protocol schema, the models and the API take it from there."""

from __future__ import annotations

import json

import pytest

from courses.models import Patient, PlannedStep, Relapse
from stratification.definitions import SCHEMA_PATH, StepKind
from stratification.facts import EmSite, Immunophenotype, Site, TimePoint, Vocabulary
from stratification.models import StratificationDecision

SCHEMA = json.loads(SCHEMA_PATH.read_text())["$defs"]


@pytest.mark.parametrize(
    ("vocabulary", "enum"),
    [
        (TimePoint, SCHEMA["time_points"]["items"]["enum"]),
        (Site, SCHEMA["sites"]["items"]["enum"]),
        (Immunophenotype, SCHEMA["immunophenotypes"]["items"]["enum"]),
        (EmSite, SCHEMA["em_sites"]["items"]["enum"]),
        (StepKind, SCHEMA["step"]["properties"]["kind"]["enum"]),
    ],
)
def test_the_protocol_schema_names_the_same_words(vocabulary: type[Vocabulary], enum: list[str]):
    # The schema is data (a protocol author reads it); it must not drift from the code.
    assert vocabulary.values == enum


@pytest.mark.parametrize(
    ("field", "vocabulary"),
    [
        (Patient._meta.get_field("immunophenotype"), Immunophenotype),
        (Relapse._meta.get_field("immunophenotype"), Immunophenotype),
        (Relapse._meta.get_field("site"), Site),
        (StratificationDecision._meta.get_field("site"), Site),
        (StratificationDecision._meta.get_field("time_point"), TimePoint),
        (PlannedStep._meta.get_field("kind"), StepKind),
    ],
)
def test_the_models_take_their_choices_from_the_vocabulary(field, vocabulary):
    assert field.choices == vocabulary.choices


def test_a_vocabulary_member_is_a_plain_string_with_a_label():
    assert Site.COMBINED == "combined"
    assert f"{Site.COMBINED}" == "combined"
    assert json.dumps([Site.COMBINED]) == '["combined"]'
    assert "combined" in frozenset(Site)
    assert StepKind("hsct_referral").label == "HSCT referral"
