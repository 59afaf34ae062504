"""Loading and validating protocol definition files (no database)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratification.definitions import (
    ALERT_THRESHOLD_NAMES,
    BUILTIN_DIR,
    ProtocolDefinitionError,
    builtin_registry,
    cached_registry,
    load_definition,
    load_registry,
)
from stratification.engine import stratify
from stratification.facts import RelapseFacts

BFM90_FILE = BUILTIN_DIR / "all-rez-bfm-90.yaml"
BFM2002_FILE = BUILTIN_DIR / "all-rez-bfm-2002.yaml"


def builtin_data(path: Path = BFM90_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict[str, Any], name: str = "all-rez-bfm-90") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# --- the built-ins ------------------------------------------------------------------------


def test_both_builtin_definitions_load() -> None:
    registry = load_registry(BUILTIN_DIR)
    assert sorted(registry.slugs) == ["all-rez-bfm-2002", "all-rez-bfm-90"]
    bfm90 = registry.get("all-rez-bfm-90")
    assert (bfm90.title, bfm90.version) == ("ALL-REZ BFM 90", "1.1")
    assert [g.id for g in bfm90.groups] == ["PPG", "A", "B", "C"]
    assert (bfm90.time_points.very_early_months, bfm90.time_points.late_months) == (18, 6)
    bfm2002 = registry.get("all-rez-bfm-2002")
    assert [g.id for g in bfm2002.groups] == ["S1", "S2", "S3", "S4"]
    s2 = bfm2002.hsct_indication["S2"]
    assert (s2.indicated, s2.mrd_time_point, s2.mrd_threshold) == (
        "mrd_threshold",
        "end_of_induction",
        0.001,
    )


@pytest.mark.parametrize("slug", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_every_group_has_hsct_indication_and_schedule(slug: str) -> None:
    definition = builtin_registry().get(slug)
    for group in definition.groups:
        assert definition.hsct_indication[group.id].group == group.id
        template = definition.schedule_for(group.id)
        kinds = {step.kind for step in template.steps_for(True)}
        if definition.hsct_indication[group.id].possibly_indicated:
            assert {"hsct_referral", "hsct", "mrd"} <= kinds
        assert template.steps[-1].kind == "end_of_therapy"


@pytest.mark.parametrize("slug", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_alert_thresholds_are_the_documented_local_defaults(slug: str) -> None:
    definition = builtin_registry().get(slug)
    assert {name: definition.alert_days(name) for name in ALERT_THRESHOLD_NAMES} == {
        "hsct_referral_missing_days": 14,
        "hsct_delayed_days": 90,
        "mrd_before_hsct_window_days": 30,
        "mrd_transplant_planned_within_days": 21,
        "course_stalled_days": 45,
        "hsct_decision_pending_days": 7,
        "mrd_decision_missing_days": 7,
        "non_response_decision_days": 7,
        "mrd_high_before_hsct_threshold": 0.001,
        "donor_search_stalled_days": 14,
        "cumulative_delay_days": 28,
        "course_stalled_maintenance_days": 90,
        "course_stalled_post_transplant_days": 100,
        "hsct_proposal_unconfirmed_days": 3,
        "stratification_unconfirmed_days": 7,
    }
    assert all(t.local_default and t.note for t in definition.alert_thresholds.values())


@pytest.mark.parametrize("slug", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_unsourced_numbers_are_marked_local_defaults_to_confirm(slug: str) -> None:
    definition = builtin_registry().get(slug)
    for template in definition.schedule_templates:
        for step in template.steps:
            assert step.local_default, step.id
            assert "confirm" in step.note.lower(), step.id


def test_bfm2002_s2_schedule_branches_on_the_hsct_indication() -> None:
    template = builtin_registry().get("all-rez-bfm-2002").schedule_for("S2")
    with_hsct = [s.kind for s in template.steps_for(True)]
    without = [s.kind for s in template.steps_for(False)]
    assert "hsct" in with_hsct and "maintenance_start" not in with_hsct
    assert "hsct" not in without and "maintenance_start" in without
    # Both branches keep the referral: HSCT is possibly indicated until MRD is known.
    assert "hsct_referral" in with_hsct and "hsct_referral" in without
    assert [s.mrd_time_point for s in template.steps_for(None) if s.kind == "mrd"] == [
        "end_of_induction"
    ]


def test_bfm90_block_timing_defaults() -> None:
    template = builtin_registry().get("all-rez-bfm-90").schedule_for("B")
    days = template.planned_days()
    assert [s.block_type for s in template.steps if s.kind == "block"][:2] == ["R2", "R1"]
    assert days["block_2"] == 21  # about day 22 after the start of the previous block
    assert days["response"] == 42  # after the first two blocks
    assert days["end_of_therapy"] == 730  # about 2 years


def test_loaded_definitions_are_frozen_and_cached() -> None:
    definition = builtin_registry().get("all-rez-bfm-90")
    with pytest.raises(dataclasses.FrozenInstanceError):
        definition.version = "2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        definition.rules[0].group = "C"  # type: ignore[misc]
    with pytest.raises(TypeError):
        definition.hsct_indication["A"] = definition.hsct_indication["B"]  # type: ignore[index]
    assert builtin_registry() is builtin_registry()
    assert cached_registry((str(BUILTIN_DIR),)).get("all-rez-bfm-90") is definition


# --- broken files name the file and the field ----------------------------------------------


def _del(*keys: str | int) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


def _set(value: Any, *keys: str | int) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _duplicate_rule_id(data: dict[str, Any]) -> None:
    data["rules"][3]["id"] = data["rules"][0]["id"]


def _shadowed_rule(data: dict[str, Any]) -> None:
    # Early isolated marrow relapses are all decided by a_early_isolated_marrow (or PPG).
    rule = copy.deepcopy(data["rules"][3])
    rule["id"] = "b_again"
    data["rules"].append(rule)


def _group_without_hsct(data: dict[str, Any]) -> None:
    del data["hsct_indication"]["C"]


def _group_without_schedule(data: dict[str, Any]) -> None:
    data["schedule_templates"][2]["groups"] = []


def _new_group_without_anything(data: dict[str, Any]) -> None:
    data["groups"].append({"id": "D", "name": "Group D"})


def _new_group_without_schedule(data: dict[str, Any]) -> None:
    data["groups"].append({"id": "D", "name": "Group D"})
    data["hsct_indication"]["D"] = {
        "id": "hsct_d",
        "indicated": False,
        "text": "D: no HSCT.",
        "sources": ["notes"],
        "confidence": "inferred",
    }


def _forward_anchor(data: dict[str, Any]) -> None:
    data["schedule_templates"][1]["steps"][1]["anchor"] = "maintenance"


def _block_without_type(data: dict[str, Any]) -> None:
    del data["schedule_templates"][0]["steps"][0]["block_type"]


def _local_default_without_note(data: dict[str, Any]) -> None:
    del data["schedule_templates"][0]["steps"][2]["note"]


def _hsct_for_group_b(data: dict[str, Any]) -> None:
    steps = data["schedule_templates"][1]["steps"]
    steps.insert(
        3,
        {
            "id": "hsct",
            "kind": "hsct",
            "offset_days": 0,
            "grace_days": 7,
            "local_default": True,
            "note": "to confirm",
        },
    )


def _mrd_threshold_without_value(data: dict[str, Any]) -> None:
    data["hsct_indication"]["B"]["indicated"] = "mrd_threshold"
    data["hsct_indication"]["B"]["mrd_time_point"] = "end_of_induction"


BROKEN_CASES = [
    pytest.param(_del("title"), "title", "is required", id="missing-top-level-field"),
    pytest.param(
        _del("rules", 1, "group"), "rules[1].group", "is required", id="missing-rule-group"
    ),
    pytest.param(
        _del("alert_thresholds", "course_stalled_days"),
        "alert_thresholds.course_stalled_days",
        "is required",
        id="missing-alert-threshold",
    ),
    pytest.param(
        _set("Z", "rules", 3, "group"),
        "rules[3].group",
        "'Z' is not one of the groups (PPG, A, B, C)",
        id="unknown-group-in-rule",
    ),
    pytest.param(
        _duplicate_rule_id,
        "rules[3].id",
        "'ppg_t_lineage_marrow' is already used by rules[0]",
        id="duplicate-rule-id",
    ),
    pytest.param(
        _set("18", "time_points", "very_early_months"),
        "time_points.very_early_months",
        "must be an integer (got '18')",
        id="bad-type-string-for-integer",
    ),
    pytest.param(
        _set(1.0, "version"), "version", "must be a string (got 1.0)", id="bad-type-float-version"
    ),
    pytest.param(
        _set("yes", "rules", 0, "when", "immunophenotype"),
        "rules[0].when.immunophenotype",
        "must be a list",
        id="bad-type-scalar-for-list",
    ),
    pytest.param(
        _set(["bone_marrow"], "rules", 2, "when", "site"),
        "rules[2].when.site[0]",
        "'bone_marrow' is not one of",
        id="unknown-site-value",
    ),
    pytest.param(
        _set(["B"], "rules", 0, "gruop"),
        "rules[0].gruop",
        "is not a known field",
        id="typo-in-field-name",
    ),
    pytest.param(
        _set(["tallen"], "rules", 2, "sources"),
        "rules[2].sources[0]",
        "'tallen' is not one of the sources",
        id="unknown-source-key",
    ),
    pytest.param(
        _group_without_hsct,
        "hsct_indication",
        "group 'C' has no HSCT indication",
        id="group-without-hsct",
    ),
    pytest.param(
        _group_without_schedule,
        "schedule_templates[2].groups",
        "must have at least 1",
        id="template-without-groups",
    ),
    pytest.param(
        _new_group_without_anything,
        "hsct_indication",
        "group 'D' has no HSCT",
        id="new-group-without-hsct",
    ),
    pytest.param(
        _new_group_without_schedule,
        "schedule_templates",
        "group 'D' has no schedule template",
        id="new-group-without-schedule",
    ),
    pytest.param(_shadowed_rule, "rules[8].when", "never applies", id="shadowed-rule"),
    pytest.param(
        _set({"site": ["isolated_bm"], "em_sites_any": ["cns"]}, "rules", 4, "when"),
        "rules[4].when",
        "matches no valid relapse",
        id="impossible-conditions",
    ),
    pytest.param(
        _forward_anchor,
        "schedule_templates[1].steps[1].anchor",
        "'maintenance' is not an earlier step",
        id="forward-anchor",
    ),
    pytest.param(
        _block_without_type,
        "schedule_templates[0].steps[0].block_type",
        "is required for a step of kind block",
        id="block-without-type",
    ),
    pytest.param(
        _local_default_without_note,
        "schedule_templates[0].steps[2].note",
        "is required",
        id="local-default-without-note",
    ),
    pytest.param(
        _hsct_for_group_b,
        "schedule_templates[1].steps[3].kind",
        "hsct in a template for groups where HSCT is not indicated",
        id="hsct-step-for-no-hsct-group",
    ),
    pytest.param(
        _mrd_threshold_without_value,
        "hsct_indication.B.mrd_threshold",
        "is required",
        id="mrd-threshold-missing",
    ),
    pytest.param(
        _set("time_point.early", "rules", 0, "id"),
        "rules[0].id",
        "reserved",
        id="reserved-rule-id",
    ),
    pytest.param(_set(2, "format_version"), "format_version", "must be 1", id="format-version"),
    pytest.param(
        _set("frontline_status.mine", "population", "criteria", 0, "id"),
        "population.criteria[0].id",
        "ids starting with 'frontline_status.' are reserved",
        id="reserved-frontline-id",
    ),
    # --- the population (issue 12) ---
    pytest.param(_del("population"), "population", "is required", id="population-missing"),
    pytest.param(
        _del("population", "criteria"),
        "population.criteria",
        "is required",
        id="population-criteria-missing",
    ),
    pytest.param(
        _set("certain", "population", "criteria", 0, "confidence"),
        "population.criteria[0].confidence",
        '\'certain\' is not one of "stated", "recalled", "inferred"',
        id="population-bad-confidence",
    ),
    pytest.param(
        _del("population", "criteria", 2, "sources"),
        "population.criteria[2].sources",
        "is required",
        id="population-criterion-without-sources",
    ),
    pytest.param(
        _set("probably", "population", "criteria", 2, "if_unknown", "confidence"),
        "population.criteria[2].if_unknown.confidence",
        "'probably' is not one of",
        id="if-unknown-bad-confidence",
    ),
    pytest.param(
        lambda data: data["population"]["criteria"].pop(2),
        "population.criteria",
        "no criterion for bcr_abl1",
        id="population-without-bcr-abl1",
    ),
    pytest.param(
        _del("population", "criteria", 3, "if_unknown"),
        "population.criteria[3].if_unknown",
        "is required: age_at_diagnosis_months may be unknown",
        id="population-unknown-age-unsaid",
    ),
    pytest.param(
        _set(["negative", "unknown"], "population", "criteria", 2, "allowed"),
        "population.criteria[2].allowed[1]",
        "'unknown' is not a value of bcr_abl1",
        id="population-unknown-is-not-a-value",
    ),
    pytest.param(
        _set(["B", "NK"], "population", "criteria", 4, "allowed"),
        "population.criteria[4].allowed[1]",
        "'NK' is not a value of immunophenotype",
        id="population-unknown-lineage",
    ),
    pytest.param(
        _set(["no"], "population", "criteria", 1, "allowed"),
        "population.criteria[1].allowed[0]",
        "'no' is not a value of prior_hsct",
        id="population-boolean-as-word",
    ),
    pytest.param(
        _set(["B"], "population", "criteria", 4, "allowed"),
        "rules[0].when.immunophenotype[0]",
        "'T' is outside the population (B)",
        id="rule-lineage-outside-population",
    ),
    pytest.param(
        _set("maybe", "population", "criteria", 3, "if_unknown", "action"),
        "population.criteria[3].if_unknown.action",
        '\'maybe\' is not one of "warn", "review"',
        id="if-unknown-bad-action",
    ),
    pytest.param(
        _set("hsct_a", "population", "criteria", 0, "id"),
        "hsct_indication.A.id",
        "'hsct_a' is already used by population.criteria[0]",
        id="population-id-collides",
    ),
    # --- front-line plausibility, review rules, MRD results ---
    pytest.param(
        _del("time_points", "on_therapy_plausible_months"),
        "time_points.on_therapy_plausible_months",
        "is required",
        id="on-therapy-limit-missing",
    ),
    pytest.param(
        _del("time_points", "on_therapy_plausible_months", "note"),
        "time_points.on_therapy_plausible_months.note",
        "is required",
        id="on-therapy-local-default-without-note",
    ),
    pytest.param(
        _set("B", "rules", 2, "group"),
        "rules[2].group",
        "must not be given on a rule with needs_review",
        id="review-rule-with-group",
    ),
    pytest.param(
        _del("rules", 2, "readings"), "rules[2].readings", "is required", id="review-no-readings"
    ),
    pytest.param(
        _set("inferred-ish", "rules", 2, "readings", 1, "confidence"),
        "rules[2].readings[1].confidence",
        "is not one of",
        id="reading-bad-confidence",
    ),
]


@pytest.mark.parametrize(("mutate", "field_path", "message"), BROKEN_CASES)
def test_broken_definition_names_file_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], field_path: str, message: str
) -> None:
    data = builtin_data()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ProtocolDefinitionError) as caught:
        load_definition(path)
    error = caught.value
    assert error.path == path
    assert error.field_path == field_path
    assert message in error.message
    assert str(error).endswith(f"all-rez-bfm-90.yaml: {field_path}: {error.message}")


def _bfm2002_without_mrd_results(data: dict[str, Any]) -> None:
    del data["hsct_indication"]["S2"]["mrd_results"]


def _bfm2002_mrd_results_on_a_fixed_indication(data: dict[str, Any]) -> None:
    results = copy.deepcopy(data["hsct_indication"]["S2"]["mrd_results"])
    for result in results.values():
        result["id"] += "_s3"
    data["hsct_indication"]["S3"]["mrd_results"] = results


def _bfm2002_bad_mrd_treatment(data: dict[str, Any]) -> None:
    data["hsct_indication"]["S2"]["mrd_results"]["negative"]["treatment"] = "not_indicated"


@pytest.mark.parametrize(
    ("mutate", "field_path", "message"),
    [
        pytest.param(
            _bfm2002_without_mrd_results,
            "hsct_indication.S2.mrd_results",
            "is required",
            id="mrd-results-missing",
        ),
        pytest.param(
            _bfm2002_mrd_results_on_a_fixed_indication,
            "hsct_indication.S3.mrd_results",
            "is only allowed with indicated: mrd_threshold",
            id="mrd-results-on-fixed-indication",
        ),
        pytest.param(
            _bfm2002_bad_mrd_treatment,
            "hsct_indication.S2.mrd_results.negative.treatment",
            "'not_indicated' is not one of",
            id="mrd-result-bad-treatment",
        ),
    ],
)
def test_broken_mrd_rule_names_file_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], field_path: str, message: str
) -> None:
    data = builtin_data(BFM2002_FILE)
    mutate(data)
    path = write(tmp_path, data, name="all-rez-bfm-2002")
    with pytest.raises(ProtocolDefinitionError) as caught:
        load_definition(path)
    assert (caught.value.path, caught.value.field_path) == (path, field_path)
    assert message in caught.value.message


@pytest.mark.parametrize("slug", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_each_builtin_declares_who_it_is_for(slug: str) -> None:
    population = builtin_registry().get(slug).population
    inside = {c.fact: (c.allowed, c.minimum, c.maximum) for c in population.criteria}
    assert inside == {
        "relapse_number": (None, None, 1),
        "prior_hsct": (frozenset({False}), None, None),
        "bcr_abl1": (frozenset({"negative"}), None, None),
        "age_at_diagnosis_months": (None, 12, None),
        "immunophenotype": (frozenset({"B", "T"}), None, None),
    }
    assert population.immunophenotypes == ("B", "T")
    unknown = {c.fact: c.if_unknown.action for c in population.criteria if c.if_unknown}
    # Issue 22: an unknown relapse number or prior HSCT is never read as first / none.
    assert unknown == {
        "relapse_number": "review",
        "prior_hsct": "review",
        "bcr_abl1": "warn",
        "age_at_diagnosis_months": "warn",
    }
    # Applying the trials' exclusions to these protocols is inference; infant and MPAL
    # pathways are recalled (clinical notes, "Who the two protocols are for").
    confidence = {c.fact: c.confidence for c in population.criteria}
    assert confidence == {
        "relapse_number": "inferred",
        "prior_hsct": "inferred",
        "bcr_abl1": "inferred",
        "age_at_diagnosis_months": "recalled",
        "immunophenotype": "recalled",
    }
    assert all(c.citation for c in population.criteria)
    # Stratifying anyway (warn) is a local choice to confirm; review is not.
    assert all(
        c.if_unknown.local_default == (c.if_unknown.action == "warn")
        for c in population.criteria
        if c.if_unknown
    )


@pytest.mark.parametrize("slug", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_on_therapy_plausibility_is_a_local_default_of_36_months(slug: str) -> None:
    limit = builtin_registry().get(slug).time_points.on_therapy_plausible
    assert (limit.value, limit.local_default, limit.confidence) == (36, True, "recalled")
    assert "about 2 years" in limit.text and "to confirm" in limit.note.lower()


def test_bfm90_labels_follow_what_the_sources_say() -> None:
    bfm90 = builtin_registry().get("all-rez-bfm-90")
    rules = {r.id: r for r in bfm90.rules}
    # Tallen's abstract names C "isolated extramedullary relapses" only: the >= 18-month
    # bound is the seed's.
    assert rules["c_isolated_em"].confidence == "recalled"
    assert "seed" in rules["c_isolated_em"].sources
    # The abstract states no HSCT indication per group: every indication is the seed's.
    for group in ("PPG", "A", "B", "C"):
        indication = bfm90.hsct_indication[group]
        assert (indication.sources, indication.confidence) == (("seed",), "recalled")
    review = rules["t_lineage_isolated_em_review"]
    assert review.needs_review and review.group is None
    assert [r.id for r in review.readings] == [
        "t_lineage_isolated_em_reading_ppg",
        "t_lineage_isolated_em_reading_timing",
    ]


def test_every_entry_with_confidence_other_than_stated_says_why() -> None:
    for definition in builtin_registry():
        for rule in definition.rules:
            if rule.confidence != "stated":
                assert rule.note, rule.id
        for criterion in definition.population.criteria:
            if criterion.confidence != "stated":
                assert criterion.note, criterion.id


def test_error_str_reads_file_field_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = builtin_data()
    data["rules"][3]["group"] = "Z"
    folder = tmp_path / "stratification" / "protocols"
    folder.mkdir(parents=True)
    path = write(folder, data)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProtocolDefinitionError) as caught:
        load_definition(path)
    assert str(caught.value) == (
        "stratification/protocols/all-rez-bfm-90.yaml: rules[3].group: "
        "'Z' is not one of the groups (PPG, A, B, C)"
    )


def test_slug_must_match_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, builtin_data(), name="my-centre-90")
    with pytest.raises(ProtocolDefinitionError) as caught:
        load_definition(path)
    assert caught.value.field_path == "slug"
    assert "must match the file name stem 'my-centre-90'" in caught.value.message


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path: Path) -> None:
    text = BFM90_FILE.read_text(encoding="utf-8").replace(
        "title: ALL-REZ BFM 90\n", "title: ALL-REZ BFM 90\ntitle: Something else\n"
    )
    path = tmp_path / "all-rez-bfm-90.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        ProtocolDefinitionError, match=r"line \d+, column 1: .*duplicate key 'title'"
    ):
        load_definition(path)


def test_invalid_yaml_and_non_mapping_documents(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("slug: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProtocolDefinitionError, match="broken.yaml: line .*invalid YAML"):
        load_definition(broken)
    listing = tmp_path / "listing.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ProtocolDefinitionError, match="must be a mapping of fields"):
        load_definition(listing)


def test_a_slug_defined_twice_across_directories_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, builtin_data())
    with pytest.raises(ProtocolDefinitionError) as caught:
        load_registry(BUILTIN_DIR, tmp_path)
    assert caught.value.field_path == "slug"
    assert "already defined by" in caught.value.message


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProtocolDefinitionError, match="is not a directory"):
        load_registry(tmp_path / "nope")


def test_a_centre_adds_its_own_definition_without_code_changes(tmp_path: Path) -> None:
    """A centre's file with a different rule set stratifies through the same engine."""
    data = builtin_data()
    data["slug"] = "centre-x-bfm-90"
    data["version"] = "2026.1"
    data["title"] = "Centre X variant of ALL-REZ BFM 90"
    # Centre X classifies very early isolated EM relapses as C instead of leaving
    # them for review.
    data["rules"][7]["when"]["time_point"] = ["very_early", "early", "late"]
    write(tmp_path, data, name="centre-x-bfm-90")
    registry = load_registry(BUILTIN_DIR, tmp_path)
    assert len(registry) == 3
    facts = RelapseFacts(
        initial_diagnosis_date=date(2021, 1, 1),
        frontline_therapy_end_date=None,
        relapse_date=date(2021, 9, 1),
        immunophenotype="B",
        site="isolated_em",
        em_sites=("cns",),
        bm_blast_percent=0.0,
        relapse_number=1,
        prior_hsct=False,
    )
    assert stratify(facts, registry.get("all-rez-bfm-90")).status == "needs_review"
    decision = stratify(facts, registry.get("centre-x-bfm-90"))
    assert (decision.risk_group, decision.protocol_version) == ("C", "2026.1")


def test_both_builtins_round_trip_through_the_schema_unchanged(tmp_path: Path) -> None:
    for source in (BFM90_FILE, BFM2002_FILE):
        path = write(tmp_path, builtin_data(source), name=source.stem)
        assert load_definition(path).rule_ids == load_definition(source).rule_ids
