"""The pure stratification engine against the built-in definitions.

No database: these are plain functions over frozen data. The tables restate the
clinical notes (../shared/clinical-notes.md) independently of the YAML files, so a
wrong condition in a definition fails here.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from stratification.definitions import ProtocolDefinition, builtin_registry
from stratification.engine import TIME_POINT_RULE_IDS, add_months, stratify
from stratification.facts import EM_SITES, RelapseFacts, validate_facts

BFM90 = builtin_registry().get("all-rez-bfm-90")
BFM2002 = builtin_registry().get("all-rez-bfm-2002")

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
    )


def dated(
    diagnosis: date, relapse: date, end: date | None = None, site: str = "isolated_bm"
) -> RelapseFacts:
    return RelapseFacts(
        initial_diagnosis_date=diagnosis,
        frontline_therapy_end_date=end,
        relapse_date=relapse,
        immunophenotype="B",
        site=site,
        em_sites=() if site == "isolated_bm" else ("testis",),
        bm_blast_percent=DEFAULT_BLASTS[site],
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
            dated(date(2019, 3, 15), date(2020, 9, 14)), "very_early", id="18m-day-before"
        ),
        pytest.param(dated(date(2019, 3, 15), date(2020, 9, 15)), "early", id="18m-on"),
        pytest.param(dated(date(2019, 3, 15), date(2020, 9, 16)), "early", id="18m-day-after"),
        # Month-end clamping: 2020-08-31 + 18 months = 2022-02-28.
        pytest.param(
            dated(date(2020, 8, 31), date(2022, 2, 27)), "very_early", id="18m-clamped-before"
        ),
        pytest.param(dated(date(2020, 8, 31), date(2022, 2, 28)), "early", id="18m-clamped-on"),
        pytest.param(dated(date(2020, 8, 31), date(2022, 3, 1)), "early", id="18m-clamped-after"),
        # Leap year: 2018-08-31 + 18 months = 2020-02-29.
        pytest.param(
            dated(date(2018, 8, 31), date(2020, 2, 28)), "very_early", id="18m-leap-before"
        ),
        pytest.param(dated(date(2018, 8, 31), date(2020, 2, 29)), "early", id="18m-leap-on"),
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
        # During front-line therapy (no end date): never late, however long after.
        pytest.param(dated(date(2010, 1, 1), date(2020, 1, 1)), "early", id="during-therapy-10y"),
        pytest.param(dated(date(2019, 3, 15), date(2019, 3, 15)), "very_early", id="same-day"),
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
    facts: RelapseFacts, expected: str, protocol: ProtocolDefinition
) -> None:
    decision = stratify(facts, protocol)
    assert decision.time_point == expected
    assert decision.reasons[0].rule == TIME_POINT_RULE_IDS[expected]


def test_time_point_reason_quotes_the_cut_off_dates() -> None:
    decision = stratify(dated(date(2020, 8, 31), date(2022, 2, 27)), BFM90)
    assert "2022-02-28" in decision.reasons[0].text
    assert "18 calendar months" in decision.reasons[0].text
    assert decision.reasons[0].source == BFM90.time_points.citation


def test_time_point_thresholds_come_from_the_definition() -> None:
    import dataclasses

    shorter = dataclasses.replace(
        BFM90, time_points=dataclasses.replace(BFM90.time_points, very_early_months=12)
    )
    facts = dated(date(2019, 3, 15), date(2020, 6, 1))  # 14.5 months
    assert stratify(facts, BFM90).time_point == "very_early"
    assert stratify(facts, shorter).time_point == "early"


# --- ALL-REZ BFM 90 -------------------------------------------------------------------

# (time point, site, immunophenotype) -> (group, deciding rule, HSCT indicated)
BFM90_TABLE = [
    # PPG: any T-lineage relapse (checked first: T late marrow is PPG, not B).
    ("very_early", "isolated_bm", "T", "PPG", "ppg_t_lineage", True),
    ("very_early", "combined", "T", "PPG", "ppg_t_lineage", True),
    ("very_early", "isolated_em", "T", "PPG", "ppg_t_lineage", True),
    ("early", "isolated_bm", "T", "PPG", "ppg_t_lineage", True),
    ("early", "combined", "T", "PPG", "ppg_t_lineage", True),
    ("early", "isolated_em", "T", "PPG", "ppg_t_lineage", True),
    ("late", "isolated_bm", "T", "PPG", "ppg_t_lineage", True),
    ("late", "combined", "T", "PPG", "ppg_t_lineage", True),
    ("late", "isolated_em", "T", "PPG", "ppg_t_lineage", True),
    # PPG: very early marrow relapse of B-lineage ALL (very early combined is PPG, not A).
    ("very_early", "isolated_bm", "B", "PPG", "ppg_very_early_marrow", True),
    ("very_early", "combined", "B", "PPG", "ppg_very_early_marrow", True),
    # A: early marrow.
    ("early", "isolated_bm", "B", "A", "a_early_marrow", True),
    ("early", "combined", "B", "A", "a_early_marrow", True),
    # B: late marrow.
    ("late", "isolated_bm", "B", "B", "b_late_marrow", False),
    ("late", "combined", "B", "B", "b_late_marrow", False),
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
    assert (decision.protocol, decision.protocol_version) == ("all-rez-bfm-90", "1.0")


def test_bfm90_table_covers_every_rule() -> None:
    assert {row[4] for row in BFM90_TABLE} == BFM90.rule_ids | {BFM90.fallback.id}


def test_bfm90_reasons_name_time_point_group_and_hsct_rules_with_sources() -> None:
    decision = stratify(make_facts("early", "combined"), BFM90)
    assert [r.rule for r in decision.reasons] == ["time_point.early", "a_early_marrow", "hsct_a"]
    assert decision.reasons[1].source == "Tallen et al., J Clin Oncol 2010;28:2339"
    assert all(r.text and r.source for r in decision.reasons)


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
    import dataclasses

    with pytest.raises(ValueError, match="unknown site"):
        stratify(dataclasses.replace(facts, site="bone"), BFM90)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown immunophenotype"):
        stratify(dataclasses.replace(facts, immunophenotype="X"), BFM90)  # type: ignore[arg-type]


def test_decision_as_dict_is_the_api_shape() -> None:
    data = stratify(make_facts("late", "combined", mrd=0.01), BFM2002).as_dict()
    assert set(data) == {
        "protocol",
        "protocol_version",
        "time_point",
        "site",
        "risk_group",
        "status",
        "hsct_indicated",
        "reasons",
    }
    assert set(data["reasons"][0]) == {"rule", "text", "source"}


# --- properties -------------------------------------------------------------------------


def oracle_time_point(facts: RelapseFacts) -> str:
    """The notes' definition, with dateutil's month arithmetic."""
    if facts.relapse_date < facts.initial_diagnosis_date + relativedelta(months=18):
        return "very_early"
    end = facts.frontline_therapy_end_date
    if end is not None and facts.relapse_date >= end + relativedelta(months=6):
        return "late"
    return "early"


def oracle_bfm90(tp: str, site: str, phenotype: str) -> str | None:
    marrow = site in ("isolated_bm", "combined")
    if phenotype == "T" or (tp == "very_early" and marrow):
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
    site = draw(st.sampled_from(["isolated_bm", "combined", "isolated_em"]))
    # The blast count is required where the site involves the marrow.
    if site == "isolated_bm":
        em: tuple[str, ...] = ()
        blasts = draw(st.floats(min_value=25, max_value=100))
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
        immunophenotype=draw(st.sampled_from(["B", "T"])),
        site=site,
        em_sites=em,
        bm_blast_percent=blasts,
        mrd_end_of_induction=draw(st.none() | st.floats(min_value=0, max_value=1)),
    )


@settings(max_examples=400)
@given(valid_facts())
def test_every_valid_input_gets_exactly_one_explained_outcome(facts: RelapseFacts) -> None:
    assert validate_facts(facts.as_json(), today=date(2040, 1, 1)) == {}
    for protocol in (BFM90, BFM2002):
        decision = stratify(facts, protocol)

        # Exactly one outcome: a group (assigned) or none (needs review).
        assert decision.status in ("assigned", "needs_review")
        assert (decision.risk_group is None) == (decision.status == "needs_review")
        assert decision.risk_group is None or decision.risk_group in protocol.group_ids
        assert decision.time_point == oracle_time_point(facts)

        # The reasons name the time-point rule, then the deciding group rule.
        rules = [r.rule for r in decision.reasons]
        assert rules[0] == TIME_POINT_RULE_IDS[decision.time_point]
        assert all(r.text and r.source for r in decision.reasons)
        if decision.risk_group is None:
            assert rules[1:] == [protocol.fallback.id]
            assert decision.hsct_indicated is None
            continue
        deciding = next(
            r
            for r in protocol.rules
            if r.when.matches(
                decision.time_point, facts.site, facts.immunophenotype, facts.em_sites
            )
        )
        assert rules[1] == deciding.id
        assert deciding.group == decision.risk_group
        # ...and the HSCT rule of the group.
        indication = protocol.hsct_indication[decision.risk_group]
        assert rules[2:] == [indication.id]
        if indication.indicated == "mrd_threshold":
            mrd = facts.mrd_end_of_induction
            expected = None if mrd is None else mrd >= indication.mrd_threshold
            assert decision.hsct_indicated is expected
        else:
            assert decision.hsct_indicated is indication.indicated

    tp = oracle_time_point(facts)
    assert stratify(facts, BFM90).risk_group == oracle_bfm90(tp, facts.site, facts.immunophenotype)
    assert stratify(facts, BFM2002).risk_group == oracle_bfm2002(
        tp, facts.site, facts.immunophenotype
    )


@given(valid_facts())
def test_stratify_is_deterministic(facts: RelapseFacts) -> None:
    assert stratify(facts, BFM2002) == stratify(facts, BFM2002)
