"""validate_facts: the cross-field checks shared by the API and the courses app (no DB)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from typing import Any

import pytest

from stratification.definitions import BUILTIN_DIR
from stratification.facts import RelapseFacts, derive_age_at_diagnosis_months, validate_facts

TODAY = date(2026, 11, 24)
GOOD: dict[str, Any] = {
    "initial_diagnosis_date": date(2019, 3, 1),
    "frontline_therapy_end_date": date(2021, 5, 15),
    "relapse_date": date(2021, 9, 20),
    "immunophenotype": "B",
    "site": "combined",
    "em_sites": ["cns"],
    "bm_blast_percent": 42.0,
    "mrd_end_of_induction": None,
}


def check(**changes: Any) -> dict[str, list[str]]:
    return validate_facts({**GOOD, **changes}, TODAY)


def test_consistent_facts_pass() -> None:
    assert check() == {}
    assert check(frontline_therapy_end_date=None) == {}
    # Without marrow involvement the blast count stays optional (issue 12 made it
    # required for isolated_bm and combined: see the blast tests below).
    assert check(site="isolated_em", bm_blast_percent=None) == {}
    # ISO strings are accepted as well as dates (e.g. a CSV import).
    assert check(relapse_date="2021-09-20", initial_diagnosis_date="2019-03-01") == {}


def test_messages_name_the_other_field_and_its_value() -> None:
    assert check(relapse_date=date(2019, 2, 1)) == {
        "relapse_date": ["must not be before initial_diagnosis_date (2019-03-01)"],
        "frontline_therapy_end_date": [
            "must not be after relapse_date (2019-02-01); leave it empty for a relapse "
            "during front-line therapy (frontline_status on_therapy)"
        ],
    }


def test_today_is_passed_in_not_read() -> None:
    tomorrow = {"relapse_date": date(2026, 11, 25), "frontline_therapy_end_date": None}
    assert check(**tomorrow) == {
        "relapse_date": ["must not be in the future (today is 2026-11-24)"]
    }
    assert validate_facts({**GOOD, **tomorrow}, date(2026, 11, 25)) == {}


def test_missing_required_fields_are_each_named() -> None:
    errors = validate_facts({}, TODAY)
    assert set(errors) == {"initial_diagnosis_date", "relapse_date", "immunophenotype", "site"}
    assert errors["site"] == ["is required"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"relapse_date": "2021-13-01"}, "relapse_date", "must be a date in the form YYYY-MM-DD"),
        ({"immunophenotype": "NK"}, "immunophenotype", "'NK' is not one of B, T, MPAL"),
        ({"site": "cns"}, "site", "'cns' is not one of isolated_bm, combined, isolated_em"),
        ({"em_sites": ["skin"]}, "em_sites", "'skin' is not one of cns, testis, other"),
        ({"em_sites": "cns"}, "em_sites", "must be a list"),
        ({"bm_blast_percent": float("nan")}, "bm_blast_percent", "must be a number"),
        ({"bm_blast_percent": True}, "bm_blast_percent", "must be a number"),
        ({"mrd_end_of_induction": 1.01}, "mrd_end_of_induction", "between 0 and 1 (got 1.01"),
        (
            {"site": "isolated_em", "bm_blast_percent": 5},
            "bm_blast_percent",
            "must be below 5 for site isolated_em; got 5",
        ),
    ],
)
def test_each_problem_is_reported_under_its_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    errors = check(**changes)
    assert list(errors) == [field]
    assert message in errors[field][0]


def test_an_unknown_site_skips_the_consistency_checks_that_need_it() -> None:
    assert list(check(site="marrow", em_sites=[], bm_blast_percent=1)) == ["site"]


def test_blast_boundaries_are_inclusive_where_the_definitions_say_so() -> None:
    bm = {"site": "isolated_bm", "em_sites": []}
    assert check(**bm, bm_blast_percent=25) == {}
    # Issue 22: 5 to < 25 % (M2) is accepted (the engine sends it to review); below 5 %
    # without EM disease is no marrow relapse.
    assert check(**bm, bm_blast_percent=24.99) == {}
    assert check(**bm, bm_blast_percent=5) == {}
    assert "bm_blast_percent" in check(**bm, bm_blast_percent=4.99)
    assert check(bm_blast_percent=5) == {}  # combined: >= 5
    assert "bm_blast_percent" in check(bm_blast_percent=4.99)
    em = {"site": "isolated_em"}
    assert check(**em, bm_blast_percent=4.99) == {}
    assert check(**em, bm_blast_percent=0) == {}


# --- marrow blasts are required where the site involves the marrow ------------------------


@pytest.mark.parametrize(
    ("site", "em_sites", "required"),
    [
        pytest.param("isolated_bm", [], "at least 25 % blasts", id="isolated-bm"),
        pytest.param("combined", ["cns"], "at least 5 % blasts", id="combined"),
        pytest.param("isolated_em", ["cns"], None, id="isolated-em-optional"),
    ],
)
def test_the_blast_count_is_required_for_sites_involving_the_marrow(
    site: str, em_sites: list[str], required: str | None
) -> None:
    errors = check(site=site, em_sites=em_sites, bm_blast_percent=None)
    if required is None:
        assert errors == {}
    else:
        assert list(errors) == ["bm_blast_percent"]
        assert errors["bm_blast_percent"][0].startswith(f"is required for site {site}")
        assert required in errors["bm_blast_percent"][0]


def test_the_site_checks_run_with_a_blast_count_alongside_other_errors() -> None:
    errors = check(site="isolated_bm", em_sites=["cns"], bm_blast_percent=None)
    assert set(errors) == {"em_sites", "bm_blast_percent"}


# --- front-line status -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param(
            {"frontline_status": "completed", "frontline_therapy_end_date": None},
            "frontline_therapy_end_date",
            "is required when frontline_status is completed",
            id="completed-without-end-date",
        ),
        pytest.param(
            {"frontline_status": "on_therapy"},
            "frontline_status",
            "is on_therapy but frontline_therapy_end_date is given",
            id="on-therapy-with-end-date",
        ),
        pytest.param(
            {"frontline_status": "unknown"},
            "frontline_status",
            "is unknown but frontline_therapy_end_date is given",
            id="unknown-with-end-date",
        ),
        pytest.param(
            {"frontline_status": "ended"},
            "frontline_status",
            "'ended' is not one of completed, on_therapy, unknown",
            id="unknown-word",
        ),
    ],
)
def test_frontline_status_must_agree_with_the_end_date(
    changes: dict[str, Any], field: str, message: str
) -> None:
    errors = check(**changes)
    assert list(errors) == [field]
    assert message in errors[field][0]


@pytest.mark.parametrize(
    ("status", "end"),
    [
        ("completed", date(2021, 5, 15)),
        ("on_therapy", None),
        ("unknown", None),
        (None, date(2021, 5, 15)),
        (None, None),
    ],
)
def test_consistent_frontline_status_passes(status: str | None, end: date | None) -> None:
    assert check(frontline_status=status, frontline_therapy_end_date=end) == {}


@pytest.mark.parametrize(
    ("end", "given", "expected"),
    [
        pytest.param(date(2021, 5, 15), None, "completed", id="end-date-means-completed"),
        # The bug of issue 12: "no end date" used to mean "relapse during therapy".
        pytest.param(None, None, "unknown", id="no-end-date-means-unknown-not-on-therapy"),
        pytest.param(None, "on_therapy", "on_therapy", id="given-on-therapy"),
        pytest.param(None, "unknown", "unknown", id="given-unknown"),
    ],
)
def test_an_absent_frontline_status_is_derived_never_on_therapy(
    end: date | None, given: str | None, expected: str
) -> None:
    values = {**GOOD, "frontline_therapy_end_date": end}
    if given is not None:
        values["frontline_status"] = given
    assert RelapseFacts.from_mapping(values).frontline_status == expected


# --- eligibility facts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"relapse_number": 0}, "relapse_number", "integer of at least 1 (got 0)"),
        ({"relapse_number": 1.5}, "relapse_number", "integer of at least 1"),
        ({"relapse_number": True}, "relapse_number", "integer of at least 1"),
        ({"relapse_number": "2"}, "relapse_number", "integer of at least 1"),
        ({"prior_hsct": "no"}, "prior_hsct", "must be true or false"),
        ({"prior_hsct": 0}, "prior_hsct", "must be true or false"),
        ({"bcr_abl1": "Ph+"}, "bcr_abl1", "'Ph+' is not one of positive, negative, unknown"),
        ({"age_at_diagnosis_months": -1}, "age_at_diagnosis_months", "0 or more (got -1)"),
        ({"age_at_diagnosis_months": 30.5}, "age_at_diagnosis_months", "whole number"),
        ({"confirm_implausible": "yes"}, "confirm_implausible", "must be true or false"),
        (
            {"confirm_implausible": True, "implausible_reason": "  "},
            "implausible_reason",
            "is required when confirm_implausible is true",
        ),
        ({"implausible_reason": 3}, "implausible_reason", "must be text"),
    ],
)
def test_each_eligibility_fact_is_checked(
    changes: dict[str, Any], field: str, message: str
) -> None:
    errors = check(**changes)
    assert list(errors) == [field]
    assert message in errors[field][0]


def test_eligibility_facts_with_valid_values_pass() -> None:
    assert (
        check(
            relapse_number=2,
            prior_hsct=True,
            bcr_abl1="positive",
            age_at_diagnosis_months=0,
            immunophenotype="MPAL",
            confirm_implausible=True,
            implausible_reason="checked with the referring centre",
        )
        == {}
    )


def test_absent_eligibility_facts_take_their_defaults() -> None:
    # Issue 22: no default for the relapse number or prior HSCT: absent is unknown.
    facts = RelapseFacts.from_mapping(GOOD)
    assert (facts.relapse_number, facts.prior_hsct, facts.bcr_abl1) == (None, None, "unknown")
    assert facts.age_at_diagnosis_months is None
    assert (facts.confirm_implausible, facts.implausible_reason) == (False, "")


@pytest.mark.parametrize(
    ("birth", "diagnosis", "months"),
    [
        pytest.param((2020, 3), date(2020, 3, 20), 0, id="birth-month"),
        pytest.param((2020, 3), date(2020, 4, 1), 0, id="next-month-not-certain"),
        pytest.param((2020, 3), date(2020, 4, 30), 1, id="last-day-of-next-month"),
        # 11 or 12 months old (the birth day is not recorded): the lower bound, so a
        # doubtful infant goes to review rather than being stratified.
        pytest.param((2020, 3), date(2021, 3, 10), 11, id="infant-boundary-lower-bound"),
        pytest.param((2020, 3), date(2021, 3, 31), 12, id="infant-boundary-month-end"),
        pytest.param((2020, 3), date(2021, 4, 1), 12, id="infant-boundary-next-month"),
        pytest.param((2019, 12), date(2021, 2, 28), 14, id="february-month-end"),
        pytest.param((2010, 6), date(2016, 6, 15), 71, id="older-child"),
    ],
)
def test_age_at_diagnosis_is_the_age_certainly_reached(
    birth: tuple[int, int], diagnosis: date, months: int
) -> None:
    assert derive_age_at_diagnosis_months(*birth, diagnosis) == months


def test_age_at_diagnosis_refuses_impossible_input() -> None:
    with pytest.raises(ValueError, match="before the birth month"):
        derive_age_at_diagnosis_months(2021, 5, date(2021, 4, 30))
    with pytest.raises(ValueError, match="birth_month must be 1-12"):
        derive_age_at_diagnosis_months(2021, 13, date(2022, 4, 30))


def test_facts_from_mapping_and_snapshot_round_trip() -> None:
    facts = RelapseFacts.from_mapping(
        {**GOOD, "em_sites": ["testis", "cns", "testis"], "relapse_date": "2021-09-20"}
    )
    assert facts.em_sites == ("cns", "testis")
    assert facts.relapse_date == date(2021, 9, 20)
    assert RelapseFacts.from_mapping(facts.as_json()) == facts
    full = RelapseFacts.from_mapping(
        {
            **GOOD,
            "frontline_status": "completed",
            "relapse_number": 2,
            "prior_hsct": True,
            "bcr_abl1": "negative",
            "age_at_diagnosis_months": 40,
            "confirm_implausible": True,
            "implausible_reason": "checked",
        }
    )
    assert RelapseFacts.from_mapping(full.as_json()) == full
    assert full.as_json()["frontline_status"] == "completed"
    assert RelapseFacts.from_mapping({**GOOD, "relapse_date": datetime(2021, 9, 20, 8)}) == (
        RelapseFacts.from_mapping(GOOD)
    )


def test_the_pure_modules_import_nothing_from_django() -> None:
    code = (
        "import sys; import stratification.engine, stratification.facts, "
        "stratification.definitions, stratification.docs; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BUILTIN_DIR.parent.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "[]"
