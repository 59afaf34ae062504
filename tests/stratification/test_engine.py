"""The pure stratification engine against the built-in definitions.

No database: these are plain functions over frozen data. The tables restate the
clinical notes (../shared/clinical-notes.md) independently of the YAML files, so a
wrong condition in a definition fails here.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from stratification.definitions import CONFIDENCES, ProtocolDefinition, builtin_registry
from stratification.engine import (
    TIME_POINT_RULE_IDS,
    TIME_POINT_UNDETERMINED_RULE,
    add_months,
    hsct_from_mrd,
    latest_start_for,
    on_therapy_errors,
    stratify,
)
from stratification.facts import EM_SITES, RelapseFacts, validate_facts

BFM90 = builtin_registry().get("all-rez-bfm-90")
BFM2002 = builtin_registry().get("all-rez-bfm-2002")

# Inside both populations, so that these tables test the rules alone (the population
# has its own tests below).
ELIGIBLE = {
    "relapse_number": 1,
    "prior_hsct": False,
    "bcr_abl1": "negative",
    "age_at_diagnosis_months": 60,
}
ON = "on_therapy"
# One set of dates per time point, far from every boundary.
DATES = {
    # relapse 10 months after diagnosis
    "very_early": (date(2019, 3, 15), None, date(2020, 1, 10)),
    # 27 months after diagnosis, 3 months after the end of front-line therapy
    "early": (date(2017, 1, 10), date(2019, 3, 1), date(2019, 6, 1)),
    # 41 months after diagnosis, 15 months after the end of front-line therapy
    "late": (date(2015, 1, 10), date(2017, 3, 1), date(2018, 6, 1)),
}
DEFAULT_BLASTS = {"isolated_bm": 80.0, "combined": 40.0, "isolated_em": 1.0}


def make_facts(
    time_point: str,
    site: str,
    immunophenotype: str = "B",
    *,
    em_sites: tuple[str, ...] | None = None,
    mrd: float | None = None,
    **facts: Any,
) -> RelapseFacts:
    diagnosis, end, relapse = DATES[time_point]
    if em_sites is None:
        em_sites = () if site == "isolated_bm" else ("cns",)
    return RelapseFacts(
        initial_diagnosis_date=diagnosis,
        frontline_therapy_end_date=end,
        relapse_date=relapse,
        immunophenotype=immunophenotype,
        site=site,
        em_sites=em_sites,
        bm_blast_percent=DEFAULT_BLASTS[site],
        mrd_end_of_induction=mrd,
        **{**ELIGIBLE, **facts},
    )


def dated(
    diagnosis: date,
    relapse: date,
    end: date | None = None,
    site: str = "isolated_bm",
    status: str | None = None,
    **facts: Any,
) -> RelapseFacts:
    """Facts for a date test; ``status`` None derives the front-line status from ``end``
    (completed with an end date, unknown without)."""
    return RelapseFacts(
        initial_diagnosis_date=diagnosis,
        frontline_therapy_end_date=end,
        relapse_date=relapse,
        immunophenotype="B",
        site=site,
        em_sites=() if site == "isolated_bm" else ("testis",),
        bm_blast_percent=DEFAULT_BLASTS[site],
        frontline_status=status,
        **{**ELIGIBLE, **facts},
    )


def test_facts_tables_are_valid_inputs() -> None:
    for time_point in DATES:
        for site in DEFAULT_BLASTS:
            facts = make_facts(time_point, site)
            assert validate_facts(facts.as_json(), today=date(2026, 11, 24)) == {}


# --- calendar months ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        pytest.param(date(2019, 3, 15), 18, date(2020, 9, 15), id="plain"),
        pytest.param(date(2020, 8, 31), 18, date(2022, 2, 28), id="clamped-to-february"),
        pytest.param(date(2018, 8, 31), 18, date(2020, 2, 29), id="clamped-to-leap-day"),
        pytest.param(date(2020, 2, 29), 18, date(2021, 8, 29), id="from-leap-day"),
        pytest.param(date(2021, 8, 31), 6, date(2022, 2, 28), id="six-clamped"),
        pytest.param(date(2021, 3, 31), 6, date(2021, 9, 30), id="six-clamped-to-30"),
        pytest.param(date(2021, 7, 15), 6, date(2022, 1, 15), id="across-year-end"),
        pytest.param(date(2021, 12, 31), 12, date(2022, 12, 31), id="december"),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(
    start: date, months: int, expected: date
) -> None:
    assert add_months(start, months) == expected


@given(
    st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)),
    st.integers(min_value=0, max_value=240),
)
def test_add_months_agrees_with_dateutil(start: date, months: int) -> None:
    assert add_months(start, months) == start + relativedelta(months=months)


# --- time-point boundaries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # 18 months after diagnosis: 2019-03-15 + 18 months = 2020-09-15.
        pytest.param(
            dated(date(2019, 3, 15), date(2020, 9, 14), status=ON),
            "very_early",
            id="18m-day-before",
        ),
        pytest.param(dated(date(2019, 3, 15), date(2020, 9, 15), status=ON), "early", id="18m-on"),
        pytest.param(
            dated(date(2019, 3, 15), date(2020, 9, 16), status=ON), "early", id="18m-day-after"
        ),
        # Month-end clamping: 2020-08-31 + 18 months = 2022-02-28.
        pytest.param(
            dated(date(2020, 8, 31), date(2022, 2, 27), status=ON),
            "very_early",
            id="18m-clamped-before",
        ),
        pytest.param(
            dated(date(2020, 8, 31), date(2022, 2, 28), status=ON), "early", id="18m-clamped-on"
        ),
        pytest.param(
            dated(date(2020, 8, 31), date(2022, 3, 1), status=ON), "early", id="18m-clamped-after"
        ),
        # Leap year: 2018-08-31 + 18 months = 2020-02-29.
        pytest.param(
            dated(date(2018, 8, 31), date(2020, 2, 28), status=ON),
            "very_early",
            id="18m-leap-before",
        ),
        pytest.param(
            dated(date(2018, 8, 31), date(2020, 2, 29), status=ON), "early", id="18m-leap-on"
        ),
        # 6 months after the end of front-line therapy: 2021-03-15 + 6 = 2021-09-15.
        pytest.param(
            dated(date(2019, 1, 1), date(2021, 9, 14), end=date(2021, 3, 15)),
            "early",
            id="6m-day-before",
        ),
        pytest.param(
            dated(date(2019, 1, 1), date(2021, 9, 15), end=date(2021, 3, 15)),
            "late",
            id="6m-on",
        ),
        pytest.param(
            dated(date(2019, 1, 1), date(2021, 9, 16), end=date(2021, 3, 15)),
            "late",
            id="6m-day-after",
        ),
        # Month-end clamping: 2021-08-31 + 6 months = 2022-02-28.
        pytest.param(
            dated(date(2019, 6, 1), date(2022, 2, 27), end=date(2021, 8, 31)),
            "early",
            id="6m-clamped-before",
        ),
        pytest.param(
            dated(date(2019, 6, 1), date(2022, 2, 28), end=date(2021, 8, 31)),
            "late",
            id="6m-clamped-on",
        ),
        pytest.param(
            dated(date(2019, 6, 1), date(2022, 3, 1), end=date(2021, 8, 31)),
            "late",
            id="6m-clamped-after",
        ),
        # Leap year: 2023-08-31 + 6 months = 2024-02-29.
        pytest.param(
            dated(date(2021, 6, 1), date(2024, 2, 28), end=date(2023, 8, 31)),
            "early",
            id="6m-leap-before",
        ),
        pytest.param(
            dated(date(2021, 6, 1), date(2024, 2, 29), end=date(2023, 8, 31)),
            "late",
            id="6m-leap-on",
        ),
        # During front-line therapy: never late, however long after (10 years on therapy
        # is implausible, so that decision needs review, but its time point is early).
        pytest.param(
            dated(date(2010, 1, 1), date(2020, 1, 1), status=ON), "early", id="during-therapy-10y"
        ),
        pytest.param(dated(date(2019, 3, 15), date(2019, 3, 15)), "very_early", id="same-day"),
        # Front-line status unknown (no end date, none given): decided only where it does
        # not matter — before 18 months.
        pytest.param(
            dated(date(2019, 3, 15), date(2020, 9, 14)), "very_early", id="unknown-18m-day-before"
        ),
        pytest.param(dated(date(2019, 3, 15), date(2020, 9, 15)), None, id="unknown-18m-on"),
        pytest.param(
            dated(date(2019, 3, 15), date(2020, 9, 15), status="unknown"),
            None,
            id="unknown-given-18m-on",
        ),
        # Very early is checked first: an aborted front-line therapy that ended more
        # than 6 months before a relapse < 18 months after diagnosis.
        pytest.param(
            dated(date(2020, 1, 1), date(2021, 1, 1), end=date(2020, 3, 1)),
            "very_early",
            id="very-early-wins-over-late",
        ),
        # Relapse on the end date itself: early (not 6 months after).
        pytest.param(
            dated(date(2018, 1, 1), date(2020, 6, 1), end=date(2020, 6, 1)),
            "early",
            id="relapse-on-end-date",
        ),
    ],
)
@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
def test_time_point_boundaries(
    facts: RelapseFacts, expected: str | None, protocol: ProtocolDefinition
) -> None:
    decision = stratify(facts, protocol)
    assert decision.time_point == expected
    assert decision.reasons[0].rule == TIME_POINT_RULE_IDS.get(
        expected or "", TIME_POINT_UNDETERMINED_RULE
    )
    assert decision.reasons[0].confidence == protocol.time_points.confidence == "stated"


def test_time_point_reason_quotes_the_cut_off_dates() -> None:
    decision = stratify(dated(date(2020, 8, 31), date(2022, 2, 27)), BFM90)
    assert "2022-02-28" in decision.reasons[0].text
    assert "18 calendar months" in decision.reasons[0].text
    assert decision.reasons[0].source == BFM90.time_points.citation


def test_time_point_thresholds_come_from_the_definition() -> None:
    shorter = dataclasses.replace(
        BFM90, time_points=dataclasses.replace(BFM90.time_points, very_early_months=12)
    )
    facts = dated(date(2019, 3, 15), date(2020, 6, 1), status=ON)  # 14.5 months
    assert stratify(facts, BFM90).time_point == "very_early"
    assert stratify(facts, shorter).time_point == "early"


# --- ALL-REZ BFM 90 -------------------------------------------------------------------

# (time point, site, immunophenotype) -> (group, deciding rule, HSCT indicated)
BFM90_TABLE = [
    # PPG: T-lineage marrow relapse (checked first: T late marrow is PPG, not B).
    ("very_early", "isolated_bm", "T", "PPG", "ppg_t_lineage_marrow", True),
    ("very_early", "combined", "T", "PPG", "ppg_t_lineage_marrow", True),
    ("early", "isolated_bm", "T", "PPG", "ppg_t_lineage_marrow", True),
    ("early", "combined", "T", "PPG", "ppg_t_lineage_marrow", True),
    ("late", "isolated_bm", "T", "PPG", "ppg_t_lineage_marrow", True),
    ("late", "combined", "T", "PPG", "ppg_t_lineage_marrow", True),
    # T-lineage isolated EM: the sources disagree (PPG vs by timing) -> review. Before
    # issue 12 these were PPG with HSCT indicated.
    ("very_early", "isolated_em", "T", None, "t_lineage_isolated_em_review", None),
    ("early", "isolated_em", "T", None, "t_lineage_isolated_em_review", None),
    ("late", "isolated_em", "T", None, "t_lineage_isolated_em_review", None),
    # PPG: very early marrow relapse of B-lineage ALL (very early combined is PPG, not A).
    ("very_early", "isolated_bm", "B", "PPG", "ppg_very_early_marrow", True),
    ("very_early", "combined", "B", "PPG", "ppg_very_early_marrow", True),
    # A: early marrow (isolated: stated; combined: inferred).
    ("early", "isolated_bm", "B", "A", "a_early_isolated_marrow", True),
    ("early", "combined", "B", "A", "a_early_combined", True),
    # B: late marrow.
    ("late", "isolated_bm", "B", "B", "b_late_isolated_marrow", False),
    ("late", "combined", "B", "B", "b_late_combined", False),
    # C: isolated EM, early or late.
    ("early", "isolated_em", "B", "C", "c_isolated_em", False),
    ("late", "isolated_em", "B", "C", "c_isolated_em", False),
    # No group: very early isolated EM of B-lineage ALL.
    ("very_early", "isolated_em", "B", None, "no_group_matched", None),
]


@pytest.mark.parametrize(
    ("time_point", "site", "immunophenotype", "group", "rule", "hsct"),
    BFM90_TABLE,
    ids=[f"{tp}-{site}-{ip}->{group}" for tp, site, ip, group, *_ in BFM90_TABLE],
)
def test_bfm90_groups(
    time_point: str,
    site: str,
    immunophenotype: str,
    group: str | None,
    rule: str,
    hsct: bool | None,
) -> None:
    decision = stratify(make_facts(time_point, site, immunophenotype), BFM90)
    assert decision.time_point == time_point
    assert decision.site == site
    assert decision.risk_group == group
    assert decision.status == ("assigned" if group else "needs_review")
    assert decision.hsct_indicated is hsct
    assert decision.reasons[1].rule == rule
    assert (decision.protocol, decision.protocol_version) == ("all-rez-bfm-90", "1.1")
    assert decision.warnings == ()


def test_bfm90_table_covers_every_rule() -> None:
    assert {row[4] for row in BFM90_TABLE} == BFM90.rule_ids | {BFM90.fallback.id}


def test_bfm90_reasons_name_time_point_group_and_hsct_rules_with_sources() -> None:
    decision = stratify(make_facts("early", "combined"), BFM90)
    assert [r.rule for r in decision.reasons] == ["time_point.early", "a_early_combined", "hsct_a"]
    assert decision.reasons[1].source == "Tallen et al., J Clin Oncol 2010;28:2339"
    assert all(r.text and r.source for r in decision.reasons)
    # Honest labels: the time points are stated; "combined counts as a BM relapse" is
    # the project's reading; the HSCT indication of A is only the seed's.
    assert [r.confidence for r in decision.reasons] == ["stated", "inferred", "recalled"]


@pytest.mark.parametrize(
    ("time_point", "site", "rule", "confidence"),
    [
        ("early", "isolated_bm", "a_early_isolated_marrow", "stated"),
        ("late", "isolated_bm", "b_late_isolated_marrow", "stated"),
        # Tallen's abstract says only "isolated extramedullary relapses"; the >= 18-month
        # bound is the seed's.
        ("late", "isolated_em", "c_isolated_em", "recalled"),
    ],
)
def test_bfm90_rule_confidence_is_what_the_source_says(
    time_point: str, site: str, rule: str, confidence: str
) -> None:
    reason = stratify(make_facts(time_point, site), BFM90).reasons[1]
    assert (reason.rule, reason.confidence) == (rule, confidence)


@pytest.mark.parametrize("group", ["B", "C"])
def test_bfm90_no_hsct_for_b_and_c_is_recalled_from_the_seed_only(group: str) -> None:
    # The seed says only that these patients "may continue with chemotherapy alone".
    indication = BFM90.hsct_indication[group]
    assert (indication.indicated, indication.confidence, indication.sources) == (
        False,
        "recalled",
        ("seed",),
    )


# --- BFM 90 T-lineage: marrow relapses are PPG, isolated EM relapses need review --------


@pytest.mark.parametrize("time_point", ["very_early", "early", "late"])
def test_bfm90_t_lineage_isolated_em_needs_review_with_both_readings(time_point: str) -> None:
    decision = stratify(make_facts(time_point, "isolated_em", "T"), BFM90)
    assert (decision.status, decision.risk_group, decision.hsct_indicated) == (
        "needs_review",
        None,
        None,
    )
    review, ppg, timing = decision.reasons[1:]
    assert review.rule == "t_lineage_isolated_em_review"
    assert ppg.rule == "t_lineage_isolated_em_reading_ppg"
    assert "PPG with allogeneic HSCT" in ppg.text and '"any relapse of T-ALL"' in ppg.text
    assert "Einsiedel" in ppg.source and "Seed article" in ppg.source
    assert timing.rule == "t_lineage_isolated_em_reading_timing"
    assert "group C" in timing.text
    assert '"chemotherapy alone may be sufficient"' in timing.text
    assert "ASH table" in timing.source and "Seed article" in timing.source
    assert all(r.confidence == "inferred" for r in (review, ppg, timing))


@pytest.mark.parametrize(
    ("time_point", "group"),
    [("very_early", "S2"), ("early", "S2"), ("late", "S1")],
)
def test_bfm2002_t_lineage_isolated_em_goes_by_timing(time_point: str, group: str) -> None:
    decision = stratify(make_facts(time_point, "isolated_em", "T"), BFM2002)
    assert (decision.status, decision.risk_group) == ("assigned", group)
    assert "ASH table" in decision.reasons[1].source


@pytest.mark.parametrize("site", ["isolated_bm", "combined"])
@pytest.mark.parametrize("time_point", ["very_early", "early", "late"])
def test_t_lineage_marrow_relapses_stay_high_risk(time_point: str, site: str) -> None:
    bfm90 = stratify(make_facts(time_point, site, "T"), BFM90)
    assert (bfm90.risk_group, bfm90.hsct_indicated) == ("PPG", True)
    bfm2002 = stratify(make_facts(time_point, site, "T"), BFM2002)
    assert (bfm2002.risk_group, bfm2002.hsct_indicated) == ("S4", True)


def test_bfm90_needs_review_has_no_hsct_reason() -> None:
    decision = stratify(make_facts("very_early", "isolated_em"), BFM90)
    assert [r.rule for r in decision.reasons] == ["time_point.very_early", "no_group_matched"]
    assert "clinician assigns" in decision.reasons[1].text


def test_bfm90_ignores_mrd() -> None:
    # MRD was not part of BFM 90 stratification (it entered with ALL-REZ BFM 96).
    low = stratify(make_facts("late", "isolated_bm", mrd=0.0), BFM90)
    high = stratify(make_facts("late", "isolated_bm", mrd=0.5), BFM90)
    assert (low.risk_group, low.hsct_indicated) == (high.risk_group, high.hsct_indicated)


# --- ALL-REZ BFM 2002 -------------------------------------------------------------------

BFM2002_TABLE = [
    # S4: very early marrow relapse of BCP ALL; any marrow relapse of T-lineage ALL.
    ("very_early", "isolated_bm", "B", "S4", "s4_very_early_marrow", True),
    ("very_early", "combined", "B", "S4", "s4_very_early_marrow", True),
    ("very_early", "isolated_bm", "T", "S4", "s4_t_lineage_marrow", True),
    ("very_early", "combined", "T", "S4", "s4_t_lineage_marrow", True),
    ("early", "isolated_bm", "T", "S4", "s4_t_lineage_marrow", True),
    ("early", "combined", "T", "S4", "s4_t_lineage_marrow", True),
    ("late", "isolated_bm", "T", "S4", "s4_t_lineage_marrow", True),
    ("late", "combined", "T", "S4", "s4_t_lineage_marrow", True),
    # S3: early isolated marrow relapse of BCP ALL.
    ("early", "isolated_bm", "B", "S3", "s3_early_isolated_marrow", True),
    # S2 (HSCT by MRD; no MRD given here -> undecided).
    ("very_early", "isolated_em", "B", "S2", "s2_isolated_em_not_late", None),
    ("early", "isolated_em", "B", "S2", "s2_isolated_em_not_late", None),
    ("late", "isolated_bm", "B", "S2", "s2_late_isolated_marrow", None),
    ("early", "combined", "B", "S2", "s2_combined_not_very_early", None),
    ("late", "combined", "B", "S2", "s2_combined_not_very_early", None),
    # T-lineage isolated EM follows timing like BCP.
    ("very_early", "isolated_em", "T", "S2", "s2_t_lineage_isolated_em_not_late", None),
    ("early", "isolated_em", "T", "S2", "s2_t_lineage_isolated_em_not_late", None),
    # S1: late isolated EM.
    ("late", "isolated_em", "B", "S1", "s1_late_isolated_em", False),
    ("late", "isolated_em", "T", "S1", "s1_t_lineage_late_isolated_em", False),
]


@pytest.mark.parametrize(
    ("time_point", "site", "immunophenotype", "group", "rule", "hsct"),
    BFM2002_TABLE,
    ids=[f"{tp}-{site}-{ip}->{group}" for tp, site, ip, group, *_ in BFM2002_TABLE],
)
def test_bfm2002_strata(
    time_point: str,
    site: str,
    immunophenotype: str,
    group: str,
    rule: str,
    hsct: bool | None,
) -> None:
    decision = stratify(make_facts(time_point, site, immunophenotype), BFM2002)
    assert decision.time_point == time_point
    assert decision.risk_group == group
    assert decision.status == "assigned"
    assert decision.hsct_indicated is hsct
    assert decision.reasons[1].rule == rule


def test_bfm2002_table_covers_every_rule_and_every_cell() -> None:
    assert {row[4] for row in BFM2002_TABLE} == BFM2002.rule_ids
    assert len({row[:3] for row in BFM2002_TABLE}) == 18


@pytest.mark.parametrize(
    ("mrd", "hsct", "words"),
    [
        pytest.param(None, None, "undecided", id="mrd-unknown"),
        pytest.param(0.0, False, "below", id="mrd-negative"),
        pytest.param(0.000999, False, "below", id="mrd-just-below-1e-3"),
        pytest.param(0.001, True, "at or above", id="mrd-exactly-1e-3"),
        pytest.param(0.05, True, "at or above", id="mrd-high"),
    ],
)
def test_bfm2002_s2_hsct_depends_on_mrd_at_end_of_induction(
    mrd: float | None, hsct: bool | None, words: str
) -> None:
    decision = stratify(make_facts("late", "combined", mrd=mrd), BFM2002)
    assert decision.risk_group == "S2"
    assert decision.hsct_indicated is hsct
    assert decision.reasons[2].rule == "hsct_s2_mrd"
    assert words in decision.reasons[2].text
    assert "Eckert" in decision.reasons[2].source


@pytest.mark.parametrize("mrd", [None, 0.0, 0.5])
@pytest.mark.parametrize(
    ("time_point", "site", "immunophenotype", "hsct"),
    [
        ("early", "isolated_bm", "B", True),  # S3
        ("very_early", "combined", "B", True),  # S4
        ("late", "isolated_em", "B", False),  # S1
    ],
)
def test_bfm2002_mrd_does_not_change_fixed_indications(
    time_point: str, site: str, immunophenotype: str, hsct: bool, mrd: float | None
) -> None:
    decision = stratify(make_facts(time_point, site, immunophenotype, mrd=mrd), BFM2002)
    assert decision.hsct_indicated is hsct


def test_unknown_site_is_refused_not_guessed() -> None:
    facts = make_facts("early", "isolated_bm")
    with pytest.raises(ValueError, match="unknown site"):
        stratify(dataclasses.replace(facts, site="bone"), BFM90)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown immunophenotype"):
        stratify(dataclasses.replace(facts, immunophenotype="X"), BFM90)  # type: ignore[arg-type]


def test_decision_as_dict_is_the_api_shape() -> None:
    # Issue 12 extended the shape (cut_offs, warnings, confidence); the old keys stay.
    data = stratify(make_facts("late", "combined", mrd=0.01), BFM2002).as_dict()
    assert set(data) == {
        "protocol",
        "protocol_version",
        "time_point",
        "cut_offs",
        "site",
        "risk_group",
        "status",
        "hsct_indicated",
        "warnings",
        "reasons",
    }
    assert set(data["reasons"][0]) == {"rule", "text", "source", "confidence"}
    assert data["cut_offs"] == {
        "very_early_before": "2016-07-10",
        "late_from": "2017-09-01",
        "late_if_frontline_ended_on_or_before": None,
        "on_therapy_implausible_after": "2018-01-10",
    }


# --- properties -------------------------------------------------------------------------


def oracle_time_point(facts: RelapseFacts) -> str | None:
    """The notes' definition, with dateutil's month arithmetic; None where the unknown
    front-line status decides."""
    if facts.relapse_date < facts.initial_diagnosis_date + relativedelta(months=18):
        return "very_early"
    if facts.frontline_status == "on_therapy":
        return "early"
    end = facts.frontline_therapy_end_date
    if end is None:
        return None
    return "late" if facts.relapse_date >= end + relativedelta(months=6) else "early"


def oracle_exclusions(facts: RelapseFacts) -> set[str]:
    """The clinical notes' "who the two protocols are for", restated."""
    excluded = set()
    if (
        facts.frontline_status == "on_therapy"
        and facts.relapse_date > facts.initial_diagnosis_date + relativedelta(months=36)
        and not facts.confirm_implausible
    ):
        excluded.add("frontline_status.on_therapy_implausible")
    # Not known is not "first" or "none": both protocols are for first relapses
    # without a prior HSCT, so an unknown one needs review.
    if facts.relapse_number is None:
        excluded.add("relapse_number_unknown")
    elif facts.relapse_number > 1:
        excluded.add("excluded_second_relapse")
    if facts.prior_hsct is None:
        excluded.add("prior_hsct_unknown")
    elif facts.prior_hsct:
        excluded.add("excluded_prior_hsct")
    if facts.bcr_abl1 == "positive":
        excluded.add("excluded_bcr_abl1_positive")
    if facts.age_at_diagnosis_months is not None and facts.age_at_diagnosis_months < 12:
        excluded.add("excluded_infant")
    if facts.immunophenotype == "MPAL":
        excluded.add("excluded_lineage")
    # The site categories (World J Hematol 2014; Buchmann, Blood 2022; Eckert, Blood
    # 2007): isolated marrow is M3 (>= 25 %), M2 without EM disease needs confirmation;
    # an EM relapse is isolated only when the marrow was looked at.
    if facts.site == "isolated_bm" and facts.bm_blast_percent < 25:
        excluded.add("site.isolated_bm_m2_marrow")
    if facts.site == "isolated_em" and facts.bm_blast_percent is None:
        excluded.add("site.isolated_em_marrow_not_assessed")
    return excluded


def oracle_bfm90(tp: str, site: str, phenotype: str) -> str | None:
    marrow = site in ("isolated_bm", "combined")
    if phenotype == "T":
        return "PPG" if marrow else None  # isolated EM: review, both readings
    if tp == "very_early" and marrow:
        return "PPG"
    if marrow:
        return "A" if tp == "early" else "B"
    return "C" if tp in ("early", "late") else None


def oracle_bfm2002(tp: str, site: str, phenotype: str) -> str:
    if site == "isolated_em":
        return "S1" if tp == "late" else "S2"
    if phenotype == "T" or tp == "very_early":
        return "S4"
    if site == "isolated_bm" and tp == "early":
        return "S3"
    return "S2"


ORACLES = {BFM90.slug: oracle_bfm90, BFM2002.slug: oracle_bfm2002}


@st.composite
def valid_facts(draw: st.DrawFn) -> RelapseFacts:
    diagnosis = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2025, 12, 31)))
    relapse = diagnosis + timedelta(days=draw(st.integers(min_value=0, max_value=4000)))
    end = draw(
        st.none()
        | st.integers(min_value=0, max_value=(relapse - diagnosis).days).map(
            lambda d: diagnosis + timedelta(days=d)
        )
    )
    statuses = [None, "completed"] if end is not None else [None, "on_therapy", "unknown"]
    status = draw(st.sampled_from(statuses))
    confirm = draw(st.booleans()) if status == "on_therapy" else False
    site = draw(st.sampled_from(["isolated_bm", "combined", "isolated_em"]))
    if site == "isolated_bm":
        em: tuple[str, ...] = ()
        # M2 (5 to < 25 %) is valid input too: it is reviewed, not refused.
        blasts = draw(st.floats(min_value=25, max_value=100) | st.floats(min_value=5, max_value=25))
    else:
        em = tuple(sorted(draw(st.sets(st.sampled_from(EM_SITES), min_size=1))))
        blasts = draw(
            st.floats(min_value=5, max_value=100)
            if site == "combined"
            else st.none() | st.floats(min_value=0, max_value=5, exclude_max=True)
        )
    return RelapseFacts(
        initial_diagnosis_date=diagnosis,
        frontline_therapy_end_date=end,
        relapse_date=relapse,
        immunophenotype=draw(st.sampled_from(["B", "B", "T", "MPAL"])),
        site=site,
        em_sites=em,
        bm_blast_percent=blasts,
        mrd_end_of_induction=draw(st.none() | st.floats(min_value=0, max_value=1)),
        frontline_status=status,
        relapse_number=draw(st.sampled_from([1, 1, 1, 2, 3, None])),
        prior_hsct=draw(st.sampled_from([False, False, False, True, None])),
        bcr_abl1=draw(st.sampled_from(["negative", "negative", "unknown", "positive"])),
        age_at_diagnosis_months=draw(st.none() | st.integers(min_value=0, max_value=216)),
        confirm_implausible=confirm,
        implausible_reason="confirmed with the referring centre" if confirm else "",
    )


@settings(max_examples=600)
@given(valid_facts())
def test_every_valid_input_gets_exactly_one_explained_outcome(facts: RelapseFacts) -> None:
    assert validate_facts(facts.as_json(), today=date(2040, 1, 1)) == {}
    tp = oracle_time_point(facts)
    excluded = oracle_exclusions(facts)
    for protocol in (BFM90, BFM2002):
        decision = stratify(facts, protocol)
        refused = on_therapy_errors(facts, protocol)
        assert bool(refused) == ("frontline_status.on_therapy_implausible" in excluded)

        # Exactly one outcome: a group (assigned) or none (needs review).
        assert decision.status in ("assigned", "needs_review")
        assert (decision.risk_group is None) == (decision.status == "needs_review")
        assert decision.risk_group is None or decision.risk_group in protocol.group_ids
        assert decision.time_point == tp

        # Every reason and warning is explained: rule, text, source, confidence.
        for reason in (*decision.reasons, *decision.warnings):
            assert reason.rule and reason.text and reason.source
            assert reason.confidence in CONFIDENCES
        rules = [r.rule for r in decision.reasons]
        assert rules[0] == TIME_POINT_RULE_IDS.get(tp or "", TIME_POINT_UNDETERMINED_RULE)
        warned = {w.rule for w in decision.warnings}
        assert ("bcr_abl1_unknown" in warned) == (facts.bcr_abl1 == "unknown")
        assert ("age_at_diagnosis_unknown" in warned) == (facts.age_at_diagnosis_months is None)

        if excluded:
            # Outside the population (or implausible): no group, each exclusion named.
            assert decision.status == "needs_review"
            assert decision.hsct_indicated is None
            assert set(rules[1:]) == excluded
            continue
        if tp is None:
            # The front-line status decides: not guessed, both answers given.
            assert decision.status == "needs_review"
            assert rules == [TIME_POINT_UNDETERMINED_RULE]
            cut_off = latest_start_for(facts.relapse_date, 6)
            assert f"on or before {cut_off}" in decision.reasons[0].text
            assert decision.cut_offs.late_if_frontline_ended_on_or_before == cut_off
            continue

        expected = ORACLES[protocol.slug](tp, facts.site, facts.immunophenotype)
        assert decision.risk_group == expected
        if decision.risk_group is None:
            assert decision.hsct_indicated is None
            continue
        deciding = next(
            r
            for r in protocol.rules
            if r.when.matches(tp, facts.site, facts.immunophenotype, facts.em_sites)
        )
        assert rules[1] == deciding.id
        assert deciding.group == decision.risk_group
        # ...and the HSCT rule of the group.
        indication = protocol.hsct_indication[decision.risk_group]
        assert rules[2:] == [indication.id]
        if indication.indicated == "mrd_threshold":
            mrd = facts.mrd_end_of_induction
            expected_hsct = None if mrd is None else mrd >= indication.mrd_threshold
            assert decision.hsct_indicated is expected_hsct
        else:
            assert decision.hsct_indicated is indication.indicated


@given(valid_facts())
def test_stratify_is_deterministic(facts: RelapseFacts) -> None:
    assert stratify(facts, BFM2002) == stratify(facts, BFM2002)


# --- front-line status: unknown is not guessed ------------------------------------------

# Diagnosis 2019-03-15: 18 months = 2020-09-15. Relapse 2023-01-10: late if front-line
# therapy ended on or before 2022-07-10.
UNKNOWN = {"status": None, "end": None}


@pytest.mark.parametrize(
    ("protocol", "site", "phenotype", "late", "early"),
    [
        # (group, HSCT words) if late / if early: each branch from the engine's own rules.
        (
            BFM90,
            "isolated_bm",
            "B",
            "group B (b_late_isolated_marrow), HSCT not indicated",
            "group A (a_early_isolated_marrow), HSCT indicated",
        ),
        (
            BFM90,
            "combined",
            "B",
            "group B (b_late_combined), HSCT not indicated",
            "group A (a_early_combined), HSCT indicated",
        ),
        # Same group either way, but the time point is not the same: still review.
        (
            BFM90,
            "isolated_em",
            "B",
            "group C (c_isolated_em), HSCT not indicated",
            "group C (c_isolated_em), HSCT not indicated",
        ),
        (
            BFM90,
            "isolated_em",
            "T",
            "no group, needs review (t_lineage_isolated_em_review)",
            "no group, needs review (t_lineage_isolated_em_review)",
        ),
        (
            BFM2002,
            "isolated_bm",
            "B",
            "group S2 (s2_late_isolated_marrow), HSCT undecided until MRD is known",
            "group S3 (s3_early_isolated_marrow), HSCT indicated",
        ),
        (
            BFM2002,
            "isolated_em",
            "B",
            "group S1 (s1_late_isolated_em), HSCT not indicated",
            "group S2 (s2_isolated_em_not_late), HSCT undecided until MRD is known",
        ),
    ],
    ids=lambda v: getattr(v, "slug", v),
)
@pytest.mark.parametrize("status", [None, "unknown"], ids=["status-absent", "status-unknown"])
def test_unknown_frontline_status_needs_review_with_both_answers(
    protocol: ProtocolDefinition,
    site: str,
    phenotype: str,
    late: str,
    early: str,
    status: str | None,
) -> None:
    facts = dated(date(2019, 3, 15), date(2023, 1, 10), site=site, status=status)
    facts = dataclasses.replace(facts, immunophenotype=phenotype)
    decision = stratify(facts, protocol)
    assert (decision.status, decision.risk_group, decision.hsct_indicated) == (
        "needs_review",
        None,
        None,
    )
    assert decision.time_point is None
    [reason] = decision.reasons
    assert reason.rule == "time_point.frontline_status_unknown"
    assert "front-line status is unknown" in reason.text
    assert f"late → {late}, if front-line therapy ended on or before 2022-07-10" in reason.text
    assert f"early → {early}, if it ended later or the relapse happened during" in reason.text
    assert (reason.source, reason.confidence) == (protocol.time_points.citation, "stated")
    assert decision.cut_offs.late_if_frontline_ended_on_or_before == date(2022, 7, 10)
    assert decision.cut_offs.late_from is None


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
@pytest.mark.parametrize(
    ("relapse", "status", "end", "time_point"),
    [
        # Just before 18 months: very early whatever the front-line status.
        pytest.param(date(2020, 9, 14), None, None, "very_early", id="unknown-day-before-18m"),
        pytest.param(date(2020, 9, 14), ON, None, "very_early", id="on-therapy-day-before-18m"),
        # On / just after 18 months: the status decides.
        pytest.param(date(2020, 9, 15), None, None, None, id="unknown-on-18m"),
        pytest.param(date(2020, 9, 16), None, None, None, id="unknown-day-after-18m"),
        pytest.param(date(2020, 9, 15), ON, None, "early", id="on-therapy-on-18m"),
        pytest.param(
            date(2020, 9, 15), "completed", date(2020, 3, 14), "late", id="completed-6m-before"
        ),
        pytest.param(
            date(2020, 9, 15), "completed", date(2020, 3, 16), "early", id="completed-6m-not-yet"
        ),
    ],
)
def test_frontline_status_either_side_of_18_months(
    protocol: ProtocolDefinition,
    relapse: date,
    status: str | None,
    end: date | None,
    time_point: str | None,
) -> None:
    decision = stratify(dated(date(2019, 3, 15), relapse, end=end, status=status), protocol)
    assert decision.time_point == time_point
    assert (decision.status == "needs_review") == (time_point is None)


def test_very_early_relapse_without_end_date_is_decided_without_review() -> None:
    # Issue 12: the end date does not matter here, so it is not asked for.
    decision = stratify(dated(date(2021, 1, 10), date(2022, 2, 1)), BFM90)
    assert (decision.time_point, decision.risk_group, decision.status) == (
        "very_early",
        "PPG",
        "assigned",
    )
    assert decision.cut_offs.late_if_frontline_ended_on_or_before is None


def test_six_years_after_diagnosis_without_end_date_is_not_group_a() -> None:
    """The probe of issue 12: a relapse 6 years after diagnosis with the end date simply
    not entered came out early -> A with allogeneic HSCT."""
    facts = dated(date(2017, 3, 1), date(2023, 3, 1))
    for protocol in (BFM90, BFM2002):
        decision = stratify(facts, protocol)
        assert (decision.risk_group, decision.hsct_indicated) == (None, None)
        assert decision.status == "needs_review"


@pytest.mark.parametrize(
    ("relapse", "cut_off"),
    [
        (date(2023, 1, 10), date(2022, 7, 10)),
        # 2021-08-29, -30 and -31 all give 2022-02-28 + ... : the latest is the 31st.
        (date(2022, 2, 28), date(2021, 8, 31)),
        (date(2024, 2, 29), date(2023, 8, 31)),
        (date(2022, 3, 31), date(2021, 9, 30)),
    ],
)
def test_the_cut_off_is_the_latest_end_date_that_makes_the_relapse_late(
    relapse: date, cut_off: date
) -> None:
    assert latest_start_for(relapse, 6) == cut_off


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)))
def test_latest_start_for_is_the_last_day_that_fits(end: date) -> None:
    day = latest_start_for(end, 6)
    assert add_months(day, 6) <= end < add_months(day + timedelta(days=1), 6)


# --- front-line status: on therapy long after diagnosis is implausible -------------------

# Diagnosis 2018-01-15: 36 months = 2021-01-15; relapses after it are implausible.


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
@pytest.mark.parametrize(
    ("relapse", "implausible"),
    [(date(2021, 1, 15), False), (date(2021, 1, 16), True), (date(2024, 5, 1), True)],
    ids=["on-36m", "day-after-36m", "6-years"],
)
def test_on_therapy_more_than_36_months_after_diagnosis_is_refused(
    protocol: ProtocolDefinition, relapse: date, implausible: bool
) -> None:
    facts = dated(date(2018, 1, 15), relapse, status=ON)
    errors = on_therapy_errors(facts, protocol)
    assert bool(errors) is implausible
    if implausible:
        [message] = errors["frontline_status"]
        assert "on_therapy is implausible" in message
        assert "more than 36 months after initial diagnosis (after 2021-01-15" in message
        assert "confirm_implausible" in message
        # The engine, called without validation, does not stratify it either.
        decision = stratify(facts, protocol)
        assert decision.status == "needs_review"
        assert decision.reasons[1].rule == "frontline_status.on_therapy_implausible"
    assert stratify(facts, protocol).cut_offs.on_therapy_implausible_after == date(2021, 1, 15)


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
def test_a_confirmed_implausible_on_therapy_stratifies_with_a_warning(
    protocol: ProtocolDefinition,
) -> None:
    facts = dated(
        date(2018, 1, 15),
        date(2021, 6, 1),
        status=ON,
        confirm_implausible=True,
        implausible_reason="maintenance prolonged after a toxicity interruption",
    )
    assert on_therapy_errors(facts, protocol) == {}
    decision = stratify(facts, protocol)
    assert (decision.time_point, decision.status) == ("early", "assigned")
    assert decision.risk_group == {"all-rez-bfm-90": "A", "all-rez-bfm-2002": "S3"}[protocol.slug]
    [warning] = decision.warnings
    assert warning.rule == "frontline_status.on_therapy_implausible_confirmed"
    assert "maintenance prolonged after a toxicity interruption" in warning.text
    assert "lasts about 2 years" in warning.text
    limit = protocol.time_points.on_therapy_plausible
    assert (limit.value, limit.local_default) == (36, True)
    assert (warning.source, warning.confidence) == (limit.citation, limit.confidence)


# --- population: who the protocol is for ---------------------------------------------------

EXCLUSIONS = [
    # (facts changed, exclusion rule id, words in its text)
    pytest.param({"relapse_number": 2}, "excluded_second_relapse", "relapse_number = 2", id="2nd"),
    pytest.param({"relapse_number": 4}, "excluded_second_relapse", "second or later", id="4th"),
    pytest.param({"prior_hsct": True}, "excluded_prior_hsct", "prior_hsct = true", id="hsct"),
    pytest.param({"bcr_abl1": "positive"}, "excluded_bcr_abl1_positive", "tyrosine", id="ph"),
    pytest.param({"age_at_diagnosis_months": 11}, "excluded_infant", "= 11", id="infant-11m"),
    pytest.param({"age_at_diagnosis_months": 0}, "excluded_infant", "infant ALL", id="infant-0m"),
    pytest.param({"immunophenotype": "MPAL"}, "excluded_lineage", "MPAL", id="mpal"),
]


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
@pytest.mark.parametrize(("changes", "rule", "words"), EXCLUSIONS)
def test_a_case_outside_the_population_needs_review_with_the_exclusion_named(
    protocol: ProtocolDefinition, changes: dict[str, Any], rule: str, words: str
) -> None:
    # An early marrow relapse that would otherwise be A / S3 with HSCT indicated.
    decision = stratify(
        dataclasses.replace(make_facts("early", "isolated_bm"), **changes), protocol
    )
    assert (decision.status, decision.risk_group, decision.hsct_indicated) == (
        "needs_review",
        None,
        None,
    )
    assert decision.time_point == "early"
    time_reason, exclusion = decision.reasons
    assert time_reason.rule == "time_point.early"
    criterion = next(c for c in protocol.population.criteria if c.id == rule)
    assert exclusion.rule == rule
    assert words in exclusion.text
    assert (exclusion.source, exclusion.confidence) == (criterion.citation, criterion.confidence)


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
@pytest.mark.parametrize(
    ("fact", "rule", "words"),
    [
        ("relapse_number", "relapse_number_unknown", "Relapse number unknown"),
        ("prior_hsct", "prior_hsct_unknown", "Prior HSCT unknown"),
    ],
)
def test_an_unknown_relapse_number_or_prior_hsct_needs_review_naming_it(
    protocol: ProtocolDefinition, fact: str, rule: str, words: str
) -> None:
    # Issue 22: neither is read as "first relapse" / "no prior HSCT" any more; both
    # protocols are for exactly those, so unknown is not stratified.
    facts = RelapseFacts.from_mapping(
        {**make_facts("early", "isolated_bm").as_json(), fact: "unknown"}
    )
    assert getattr(facts, fact) is None
    decision = stratify(facts, protocol)
    assert (decision.status, decision.risk_group, decision.hsct_indicated) == (
        "needs_review",
        None,
        None,
    )
    [time_reason, reason] = decision.reasons
    assert time_reason.rule == "time_point.early"
    assert reason.rule == rule
    assert words in reason.text and protocol.title in reason.text
    policy = next(c.if_unknown for c in protocol.population.criteria if c.fact == fact)
    assert (policy.action, reason.source, reason.confidence) == (
        "review",
        policy.citation,
        policy.confidence,
    )


def test_absent_relapse_number_and_prior_hsct_are_unknown_not_first_and_none() -> None:
    values = make_facts("early", "isolated_bm").as_json()
    del values["relapse_number"], values["prior_hsct"]
    facts = RelapseFacts.from_mapping(values)
    assert (facts.relapse_number, facts.prior_hsct) == (None, None)
    rules = [r.rule for r in stratify(facts, BFM90).reasons[1:]]
    assert rules == ["relapse_number_unknown", "prior_hsct_unknown"]


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
def test_every_exclusion_that_applies_is_named(protocol: ProtocolDefinition) -> None:
    facts = make_facts("late", "combined", relapse_number=2, prior_hsct=True, bcr_abl1="positive")
    rules = [r.rule for r in stratify(facts, protocol).reasons[1:]]
    assert rules == ["excluded_second_relapse", "excluded_prior_hsct", "excluded_bcr_abl1_positive"]


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
@pytest.mark.parametrize(
    "changes",
    [
        {"relapse_number": 1},
        {"prior_hsct": False},
        {"bcr_abl1": "negative"},
        {"age_at_diagnosis_months": 12},
        {"immunophenotype": "T"},
    ],
    ids=["first-relapse", "no-prior-hsct", "ph-negative", "12-months", "t-lineage"],
)
def test_the_population_boundaries_are_inside(
    protocol: ProtocolDefinition, changes: dict[str, Any]
) -> None:
    decision = stratify(
        dataclasses.replace(make_facts("early", "isolated_bm"), **changes), protocol
    )
    assert decision.status == "assigned"
    assert decision.warnings == ()


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
@pytest.mark.parametrize(
    ("changes", "warnings"),
    [
        pytest.param({"bcr_abl1": "unknown"}, ["bcr_abl1_unknown"], id="bcr-abl1-unknown"),
        pytest.param(
            {"age_at_diagnosis_months": None}, ["age_at_diagnosis_unknown"], id="age-unknown"
        ),
        pytest.param(
            {"bcr_abl1": "unknown", "age_at_diagnosis_months": None},
            ["bcr_abl1_unknown", "age_at_diagnosis_unknown"],
            id="both-unknown",
        ),
    ],
)
def test_unknown_eligibility_facts_stratify_with_a_warning(
    protocol: ProtocolDefinition, changes: dict[str, Any], warnings: list[str]
) -> None:
    decision = stratify(dataclasses.replace(make_facts("late", "combined"), **changes), protocol)
    assert decision.status == "assigned"
    assert [w.rule for w in decision.warnings] == warnings
    policies = {c.if_unknown.id: c.if_unknown for c in protocol.population.criteria if c.if_unknown}
    for warning in decision.warnings:
        policy = policies[warning.rule]
        assert policy.action == "warn" and policy.local_default
        assert (warning.text, warning.source, warning.confidence) == (
            policy.text,
            policy.citation,
            policy.confidence,
        )
    assert "Ph+" in policies["bcr_abl1_unknown"].text


def test_warnings_also_travel_with_a_needs_review_decision() -> None:
    decision = stratify(
        make_facts("early", "isolated_bm", relapse_number=2, bcr_abl1="unknown"), BFM90
    )
    assert decision.status == "needs_review"
    assert [w.rule for w in decision.warnings] == ["bcr_abl1_unknown"]


def test_an_unknown_value_may_send_a_case_to_review_if_the_file_says_so() -> None:
    criteria = tuple(
        dataclasses.replace(c, if_unknown=dataclasses.replace(c.if_unknown, action="review"))
        if c.fact == "bcr_abl1"
        else c
        for c in BFM2002.population.criteria
    )
    strict = dataclasses.replace(
        BFM2002, population=dataclasses.replace(BFM2002.population, criteria=criteria)
    )
    decision = stratify(make_facts("late", "combined", bcr_abl1="unknown"), strict)
    assert decision.status == "needs_review"
    assert decision.reasons[1].rule == "bcr_abl1_unknown"
    assert decision.warnings == ()


# --- blast count -----------------------------------------------------------------------------


@pytest.mark.parametrize("site", ["isolated_bm", "combined"])
def test_a_marrow_site_without_blast_count_is_never_stratified(site: str) -> None:
    # validate_facts refuses it; a stored relapse from before that check reaches the
    # engine without one and must not get a group either.
    facts = dataclasses.replace(make_facts("early", site), bm_blast_percent=None)
    assert "bm_blast_percent" in validate_facts(facts.as_json(), date(2040, 1, 1))
    for protocol in (BFM90, BFM2002):
        decision = stratify(facts, protocol)
        assert (decision.status, decision.risk_group) == ("needs_review", None)
        assert decision.reasons[1].rule == "site.bm_blast_percent_missing"
        assert decision.reasons[1].confidence == "stated"


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
def test_an_isolated_em_relapse_without_blast_count_needs_review(
    protocol: ProtocolDefinition,
) -> None:
    # Was stratified (C / S1) before issue 22: without a marrow assessment the relapse is
    # not known to be isolated (Eckert, Blood 2007: submicroscopic marrow involvement in
    # 46 of 64 apparently isolated EM relapses).
    facts = dataclasses.replace(make_facts("late", "isolated_em"), bm_blast_percent=None)
    assert validate_facts(facts.as_json(), date(2040, 1, 1)) == {}  # accepted, for review
    decision = stratify(facts, protocol)
    assert (decision.status, decision.risk_group, decision.hsct_indicated) == (
        "needs_review",
        None,
        None,
    )
    [time_reason, reason] = decision.reasons
    assert time_reason.rule == "time_point.late"
    assert reason.rule == "site.isolated_em_marrow_not_assessed"
    assert "46 of 64" in reason.text and "10^-4" in reason.text
    assert (reason.source, reason.confidence) == (
        "Eckert et al., Blood 2007 (MRD by RQ-PCR in relapsed ALL)",
        "stated",
    )


@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
def test_an_isolated_em_relapse_with_its_marrow_count_is_stratified(
    protocol: ProtocolDefinition,
) -> None:
    facts = dataclasses.replace(make_facts("late", "isolated_em"), bm_blast_percent=0.0)
    assert stratify(facts, protocol).risk_group == {"all-rez-bfm-90": "C"}.get(protocol.slug, "S1")


@pytest.mark.parametrize("blasts", [5.0, 12.0, 24.9])
@pytest.mark.parametrize("protocol", [BFM90, BFM2002], ids=lambda p: p.slug)
def test_an_isolated_marrow_relapse_with_m2_marrow_needs_review(
    protocol: ProtocolDefinition, blasts: float
) -> None:
    # 5 to < 25 % blasts without EM disease: a relapse once confirmed (Buchmann, Blood
    # 2022), but not a BFM category of its own: no group, a clinician assigns it.
    facts = dataclasses.replace(make_facts("early", "isolated_bm"), bm_blast_percent=blasts)
    assert validate_facts(facts.as_json(), date(2040, 1, 1)) == {}
    decision = stratify(facts, protocol)
    assert (decision.status, decision.risk_group, decision.hsct_indicated) == (
        "needs_review",
        None,
        None,
    )
    [time_reason, reason] = decision.reasons
    assert (time_reason.rule, reason.rule) == ("time_point.early", "site.isolated_bm_m2_marrow")
    assert f"{blasts:g} % marrow blasts" in reason.text
    assert "not a BFM relapse category on its own" in reason.text
    assert "confirmation" in reason.text and "clinician assigns the group" in reason.text
    assert reason.source.startswith("Buchmann et al., Blood 2022")


def test_25_percent_blasts_is_an_isolated_marrow_relapse() -> None:
    facts = dataclasses.replace(make_facts("early", "isolated_bm"), bm_blast_percent=25.0)
    assert stratify(facts, BFM90).risk_group == "A"


def test_below_5_percent_blasts_is_no_isolated_marrow_relapse() -> None:
    facts = dataclasses.replace(make_facts("early", "isolated_bm"), bm_blast_percent=3.0)
    [message] = validate_facts(facts.as_json(), date(2040, 1, 1))["bm_blast_percent"]
    assert "at least 5 for site isolated_bm; got 3" in message
    assert "not a marrow relapse" in message


# --- MRD: quantified, negative, positive not quantifiable -------------------------------------

S2 = BFM2002.hsct_indication["S2"]


@pytest.mark.parametrize(
    ("value", "qualitative", "sensitivity", "indicated", "rule", "words"),
    [
        pytest.param(None, None, None, None, "hsct_s2_mrd", "not given", id="no-result"),
        pytest.param(0.001, None, 1e-4, True, "hsct_s2_mrd", "at or above 0.001", id="at-1e-3"),
        pytest.param(0.000999, None, 1e-4, False, "hsct_s2_mrd", "below 0.001", id="below"),
        pytest.param(
            None, "negative", 1e-4, False, "hsct_s2_mrd_negative", "not indicated", id="neg-1e-4"
        ),
        pytest.param(
            None, "negative", 1e-3, False, "hsct_s2_mrd_negative", "not indicated", id="neg-1e-3"
        ),
        pytest.param(
            None, "negative", 1e-2, None, "hsct_s2_mrd_negative", "undecided", id="neg-coarse"
        ),
        pytest.param(
            None, "negative", None, None, "hsct_s2_mrd_negative", "not recorded", id="neg-no-sens"
        ),
        pytest.param(
            None,
            "positive_not_quantifiable",
            1e-4,
            None,
            "hsct_s2_mrd_positive_not_quantifiable",
            "positive, not quantifiable at sensitivity 0.0001",
            id="pnq",
        ),
    ],
)
def test_hsct_from_mrd_states_how_each_result_is_read(
    value: float | None,
    qualitative: str | None,
    sensitivity: float | None,
    indicated: bool | None,
    rule: str,
    words: str,
) -> None:
    result = hsct_from_mrd(S2, value, qualitative, sensitivity)
    assert result.indicated is indicated
    assert result.rule == rule
    assert words in result.basis
    entry = S2.mrd_results.get(qualitative) if qualitative else S2
    assert (result.source, result.confidence) == (entry.citation, entry.confidence)
    if qualitative:
        assert entry.local_default and result.confidence == "inferred"


def test_the_s2_mrd_rule_declares_its_assay_and_qualitative_results() -> None:
    assert (S2.mrd_assay.sensitivity, S2.mrd_assay.confidence) == (1e-4, "stated")
    assert {r: e.treatment for r, e in S2.mrd_results.items()} == {
        "negative": "below_threshold_if_sensitive",
        "positive_not_quantifiable": "undecided",
    }


def test_hsct_from_mrd_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="not an MRD-threshold rule"):
        hsct_from_mrd(BFM2002.hsct_indication["S3"], 0.01)
    with pytest.raises(ValueError, match="has no value"):
        hsct_from_mrd(S2, 0.01, "negative", 1e-4)
    with pytest.raises(ValueError, match="unknown qualitative"):
        hsct_from_mrd(S2, None, "weak", 1e-4)
