"""validate_facts: the cross-field checks shared by the API and the courses app (no DB)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from typing import Any

import pytest

from stratification.definitions import BUILTIN_DIR
from stratification.facts import RelapseFacts, validate_facts

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
    assert check(frontline_therapy_end_date=None, bm_blast_percent=None) == {}
    # ISO strings are accepted as well as dates (e.g. a CSV import).
    assert check(relapse_date="2021-09-20", initial_diagnosis_date="2019-03-01") == {}


def test_messages_name_the_other_field_and_its_value() -> None:
    assert check(relapse_date=date(2019, 2, 1)) == {
        "relapse_date": ["must not be before initial_diagnosis_date (2019-03-01)"],
        "frontline_therapy_end_date": [
            "must not be after relapse_date (2019-02-01); leave it empty for a relapse "
            "during front-line therapy"
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
        ({"immunophenotype": "NK"}, "immunophenotype", "'NK' is not one of B, T"),
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
    assert "bm_blast_percent" in check(**bm, bm_blast_percent=24.99)
    assert check(bm_blast_percent=5) == {}  # combined: >= 5
    assert "bm_blast_percent" in check(bm_blast_percent=4.99)
    em = {"site": "isolated_em"}
    assert check(**em, bm_blast_percent=4.99) == {}
    assert check(**em, bm_blast_percent=0) == {}


def test_facts_from_mapping_and_snapshot_round_trip() -> None:
    facts = RelapseFacts.from_mapping(
        {**GOOD, "em_sites": ["testis", "cns", "testis"], "relapse_date": "2021-09-20"}
    )
    assert facts.em_sites == ("cns", "testis")
    assert facts.relapse_date == date(2021, 9, 20)
    assert RelapseFacts.from_mapping(facts.as_json()) == facts
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
