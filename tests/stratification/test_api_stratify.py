"""POST /api/v1/stratify/ — the dry run: facts in, proposal out, nothing stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from stratification.definitions import CONFIDENCES
from stratification.models import StratificationDecision
from stratification.views import EXAMPLES, REQUEST_EXAMPLE, RESPONSE_EXAMPLE
from tests.factories import MembershipFactory, TeamFactory, UserFactory

URL = "/api/v1/stratify/"
# 12:00 in Berlin (the default TIME_ZONE) on 2026-11-24.
NOON = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(clinician: object, api: Callable[[object | None], APIClient]) -> Iterator[APIClient]:
    with time_machine.travel(NOON, tick=False):
        yield api(clinician)


def body(**changes: Any) -> dict[str, Any]:
    data = dict(REQUEST_EXAMPLE)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def post(client: APIClient, data: Any) -> Any:
    return client.post(URL, data, format="json")


# --- 200 --------------------------------------------------------------------------------


def test_bfm90_answers_the_documented_example(client: APIClient) -> None:
    response = post(client, REQUEST_EXAMPLE)
    assert response.status_code == 200, response.content
    assert response.json() == RESPONSE_EXAMPLE
    assert StratificationDecision.objects.count() == 0


def test_bfm90_very_early_isolated_em_needs_review(client: APIClient) -> None:
    response = post(
        client,
        body(
            initial_diagnosis_date="2021-01-10",
            frontline_therapy_end_date=None,
            relapse_date="2022-02-01",
            site="isolated_em",
            em_sites=["testis"],
            bm_blast_percent=1,
        ),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["time_point"], data["risk_group"], data["status"], data["hsct_indicated"]) == (
        "very_early",
        None,
        "needs_review",
        None,
    )
    assert [r["rule"] for r in data["reasons"]] == ["time_point.very_early", "no_group_matched"]


def test_bfm90_t_lineage_late_marrow_is_ppg(client: APIClient) -> None:
    response = post(
        client,
        body(
            initial_diagnosis_date="2015-01-10",
            frontline_therapy_end_date="2017-03-01",
            relapse_date="2018-06-01",
            immunophenotype="T",
            site="isolated_bm",
            em_sites=[],
            bm_blast_percent=80,
        ),
    )
    assert response.status_code == 200, response.content
    assert response.json()["risk_group"] == "PPG"
    assert response.json()["hsct_indicated"] is True


@pytest.mark.parametrize(
    ("mrd", "hsct"),
    [
        pytest.param(0.002, True, id="mrd-high"),
        pytest.param(0.0001, False, id="mrd-low"),
        pytest.param(None, None, id="mrd-unknown"),
    ],
)
def test_bfm2002_s2_hsct_by_mrd(client: APIClient, mrd: float | None, hsct: bool | None) -> None:
    response = post(
        client,
        body(
            protocol="all-rez-bfm-2002",
            initial_diagnosis_date="2015-01-10",
            frontline_therapy_end_date="2017-03-01",
            relapse_date="2018-06-01",
            site="combined",
            em_sites=["cns", "testis"],
            mrd_end_of_induction=mrd,
        ),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["protocol"], data["protocol_version"]) == ("all-rez-bfm-2002", "1.1")
    assert (data["time_point"], data["risk_group"], data["status"]) == ("late", "S2", "assigned")
    assert data["hsct_indicated"] is hsct
    assert [r["rule"] for r in data["reasons"]] == [
        "time_point.late",
        "s2_combined_not_very_early",
        "hsct_s2_mrd",
    ]
    assert all(r["source"] for r in data["reasons"])


def test_bfm2002_early_isolated_marrow_with_only_the_required_facts(client: APIClient) -> None:
    # Issue 12 changed this case: the blast count is now required for a marrow site, and
    # "no end date" no longer means "during front-line therapy" — that must be said.
    data = {
        "protocol": "all-rez-bfm-2002",
        "initial_diagnosis_date": "2017-01-10",
        "relapse_date": "2019-06-01",
        "immunophenotype": "B",
        "site": "isolated_bm",
    }
    refused = post(client, data)
    assert refused.status_code == 400
    # Issue 22: the relapse number and prior HSCT are required too (no default).
    fields = refused.json()["error"]["fields"]
    assert list(fields) == ["relapse_number", "prior_hsct", "bm_blast_percent"]
    assert "first relapses without a prior HSCT" in fields["relapse_number"][0]
    data |= {"relapse_number": 1, "prior_hsct": False}

    unknown = post(client, {**data, "bm_blast_percent": 60})
    assert unknown.status_code == 200, unknown.content
    assert (unknown.json()["status"], unknown.json()["time_point"]) == ("needs_review", None)

    response = post(client, {**data, "bm_blast_percent": 60, "frontline_status": "on_therapy"})
    assert response.status_code == 200, response.content
    assert (response.json()["time_point"], response.json()["risk_group"]) == ("early", "S3")
    assert response.json()["hsct_indicated"] is True
    # Neither BCR::ABL1 nor the age at diagnosis was given: stratified, with warnings.
    assert [w["rule"] for w in response.json()["warnings"]] == [
        "bcr_abl1_unknown",
        "age_at_diagnosis_unknown",
    ]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [pytest.param(request, response, id=name) for name, request, _, response in EXAMPLES],
)
def test_every_documented_example_is_what_the_service_answers(
    client: APIClient, request_body: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = post(client, request_body)
    assert response.status_code == 200, response.content
    assert response.json() == expected


# --- issue 12: who the protocol is for, unknown inputs, confidence --------------------------

EXCLUDED = [
    pytest.param({"relapse_number": 2}, "excluded_second_relapse", id="second-relapse"),
    pytest.param({"prior_hsct": True}, "excluded_prior_hsct", id="prior-hsct"),
    pytest.param({"bcr_abl1": "positive"}, "excluded_bcr_abl1_positive", id="ph-positive"),
    pytest.param({"age_at_diagnosis_months": 7}, "excluded_infant", id="infant"),
    pytest.param({"immunophenotype": "MPAL"}, "excluded_lineage", id="mpal"),
]


@pytest.mark.parametrize("protocol", ["all-rez-bfm-90", "all-rez-bfm-2002"])
@pytest.mark.parametrize(("changes", "rule"), EXCLUDED)
def test_a_case_outside_the_population_needs_review_naming_the_exclusion(
    client: APIClient, protocol: str, changes: dict[str, Any], rule: str
) -> None:
    response = post(client, body(protocol=protocol, **changes))
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["risk_group"], data["hsct_indicated"]) == (
        "needs_review",
        None,
        None,
    )
    exclusion = data["reasons"][-1]
    assert exclusion["rule"] == rule
    assert exclusion["text"].startswith("Outside the protocol")
    assert exclusion["source"]
    assert exclusion["confidence"] in ("inferred", "recalled")
    assert StratificationDecision.objects.count() == 0


def test_bcr_abl1_unknown_stratifies_with_a_warning(client: APIClient) -> None:
    response = post(client, body(bcr_abl1="unknown"))
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["risk_group"]) == ("assigned", "A")
    [warning] = data["warnings"]
    assert warning["rule"] == "bcr_abl1_unknown"
    assert "Ph+" in warning["text"]
    assert (warning["confidence"], warning["source"]) == (
        "inferred",
        "rezcourse clinical notes (project decision)",
    )
    # Absent is the same as unknown.
    assert post(client, body(bcr_abl1=...)).json()["warnings"] == data["warnings"]


@pytest.mark.parametrize("protocol", ["all-rez-bfm-90", "all-rez-bfm-2002"])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"bcr_abl1": ..., "age_at_diagnosis_months": ...},
        {"relapse_number": 3},
        {"frontline_therapy_end_date": None},
        {"immunophenotype": "T", "site": "isolated_em", "bm_blast_percent": 1},
    ],
    ids=["assigned", "warnings", "excluded", "time-point-unknown", "t-isolated-em"],
)
def test_every_reason_and_warning_carries_its_confidence(
    client: APIClient, protocol: str, changes: dict[str, Any]
) -> None:
    data = post(client, body(protocol=protocol, **changes)).json()
    for entry in [*data["reasons"], *data["warnings"]]:
        assert set(entry) == {"rule", "text", "source", "confidence"}
        assert entry["confidence"] in CONFIDENCES
        assert entry["text"] and entry["source"]


def test_unknown_frontline_status_where_it_decides_is_not_guessed(client: APIClient) -> None:
    # Issue 12's probe: 6 years after diagnosis, end date not entered. Used to be early
    # -> A with HSCT indicated.
    response = post(
        client,
        body(
            initial_diagnosis_date="2017-03-01",
            frontline_therapy_end_date=None,
            relapse_date="2023-03-01",
            site="isolated_bm",
            em_sites=[],
            bm_blast_percent=80,
        ),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["time_point"], data["risk_group"], data["hsct_indicated"]) == (
        "needs_review",
        None,
        None,
        None,
    )
    assert data["cut_offs"]["late_if_frontline_ended_on_or_before"] == "2022-09-01"
    [reason] = data["reasons"]
    assert reason["rule"] == "time_point.frontline_status_unknown"
    assert "late → group B (b_late_isolated_marrow), HSCT not indicated" in reason["text"]
    assert "early → group A (a_early_isolated_marrow), HSCT indicated" in reason["text"]


def test_implausible_on_therapy_is_refused_then_accepted_when_confirmed(client: APIClient) -> None:
    facts = body(
        initial_diagnosis_date="2017-03-01",
        frontline_therapy_end_date=None,
        frontline_status="on_therapy",
        relapse_date="2023-03-01",
    )
    refused = post(client, facts)
    assert refused.status_code == 400
    fields = refused.json()["error"]["fields"]
    assert list(fields) == ["frontline_status"]
    assert "on_therapy is implausible" in fields["frontline_status"][0]

    unexplained = post(client, {**facts, "confirm_implausible": True})
    assert unexplained.status_code == 400
    assert list(unexplained.json()["error"]["fields"]) == ["implausible_reason"]

    confirmed = post(
        client,
        {**facts, "confirm_implausible": True, "implausible_reason": "relapse in maintenance"},
    )
    assert confirmed.status_code == 200, confirmed.content
    data = confirmed.json()
    assert (data["status"], data["time_point"], data["risk_group"]) == ("assigned", "early", "A")
    [warning] = data["warnings"]
    assert warning["rule"] == "frontline_status.on_therapy_implausible_confirmed"
    assert "relapse in maintenance" in warning["text"]


def test_any_authenticated_user_may_dry_run(api: Callable[[object | None], APIClient]) -> None:
    outsider = UserFactory()  # no team at all: the dry run reads and writes no team data
    with time_machine.travel(NOON, tick=False):
        assert post(api(outsider), REQUEST_EXAMPLE).status_code == 200


def test_a_viewer_may_dry_run(viewer: object, api: Callable[[object | None], APIClient]) -> None:
    with time_machine.travel(NOON, tick=False):
        assert post(api(viewer), REQUEST_EXAMPLE).status_code == 200


def test_today_is_the_local_date(
    api: Callable[[object | None], APIClient], clinician: object
) -> None:
    # 23:30 UTC on the 24th is already the 25th in Berlin: a relapse on the 25th is
    # today there, not in the future.
    with time_machine.travel(datetime(2026, 11, 24, 23, 30, tzinfo=UTC), tick=False):
        response = post(
            api(clinician), body(relapse_date="2026-11-25", frontline_therapy_end_date=None)
        )
    assert response.status_code == 200, response.content


def test_today_is_the_latest_date_of_the_requesters_teams(
    api: Callable[[object | None], APIClient], team: object
) -> None:
    # 12:30 UTC on the 24th is already 01:30 on the 25th in Auckland: for a member of
    # an Auckland team the 25th has begun; for a member of a Berlin team it has not.
    auckland = TeamFactory(time_zone="Pacific/Auckland")
    kiwi = MembershipFactory(team=auckland, role="clinician").user
    berliner = MembershipFactory(team=team, role="clinician").user
    relapse_today_in_auckland = body(relapse_date="2026-11-25", frontline_therapy_end_date=None)
    with time_machine.travel(datetime(2026, 11, 24, 12, 30, tzinfo=UTC), tick=False):
        accepted = post(api(kiwi), relapse_today_in_auckland)
        refused = post(api(berliner), relapse_today_in_auckland)
    assert accepted.status_code == 200, accepted.content
    assert refused.status_code == 400
    assert "must not be in the future" in str(refused.json()["error"]["fields"]["relapse_date"])


# --- 401 ---------------------------------------------------------------------------------


def test_anonymous_gets_401(api: Callable[[object | None], APIClient]) -> None:
    response = post(api(None), REQUEST_EXAMPLE)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert StratificationDecision.objects.count() == 0


def test_only_post_is_allowed(client: APIClient) -> None:
    assert client.get(URL).status_code == 405


# --- 400: each bad field named -------------------------------------------------------------

BAD = [
    # (request changes, field that must be named, words in its message)
    pytest.param({"protocol": ...}, "protocol", "required", id="protocol-missing"),
    pytest.param(
        {"protocol": "all-rez-bfm-95"}, "protocol", "not a loaded protocol", id="protocol-unknown"
    ),
    pytest.param(
        {"initial_diagnosis_date": ...},
        "initial_diagnosis_date",
        "required",
        id="diagnosis-missing",
    ),
    pytest.param({"relapse_date": ...}, "relapse_date", "required", id="relapse-missing"),
    pytest.param(
        {"immunophenotype": ...}, "immunophenotype", "required", id="immunophenotype-missing"
    ),
    pytest.param({"site": ...}, "site", "required", id="site-missing"),
    pytest.param(
        {"relapse_date": "20.09.2021"}, "relapse_date", "YYYY-MM-DD", id="date-wrong-format"
    ),
    pytest.param(
        {"relapse_date": "2019-02-28"},
        "relapse_date",
        "must not be before initial_diagnosis_date (2019-03-01)",
        id="relapse-before-diagnosis",
    ),
    pytest.param(
        {"frontline_therapy_end_date": "2019-02-01"},
        "frontline_therapy_end_date",
        "must not be before initial_diagnosis_date (2019-03-01)",
        id="frontline-end-before-diagnosis",
    ),
    pytest.param(
        {"frontline_therapy_end_date": "2021-09-21"},
        "frontline_therapy_end_date",
        "must not be after relapse_date (2021-09-20)",
        id="frontline-end-after-relapse",
    ),
    pytest.param(
        {"relapse_date": "2026-11-25", "frontline_therapy_end_date": None},
        "relapse_date",
        "must not be in the future (today is 2026-11-24)",
        id="relapse-in-future",
    ),
    pytest.param(
        {"initial_diagnosis_date": "2027-01-01"},
        "initial_diagnosis_date",
        "must not be in the future",
        id="diagnosis-in-future",
    ),
    pytest.param(
        {"frontline_therapy_end_date": "2026-12-01"},
        "frontline_therapy_end_date",
        "must not be in the future",
        id="frontline-end-in-future",
    ),
    pytest.param(
        {"immunophenotype": "X"},
        "immunophenotype",
        "not a valid choice",
        id="immunophenotype-unknown",
    ),
    pytest.param({"site": "bone_marrow"}, "site", "not a valid choice", id="site-unknown"),
    pytest.param(
        {"em_sites": ["cns", "skin"]}, "em_sites", "not a valid choice", id="em-site-unknown"
    ),
    pytest.param({"em_sites": "cns"}, "em_sites", "list", id="em-sites-not-a-list"),
    pytest.param(
        {"em_sites": ["cns", "cns"]}, "em_sites", "more than once", id="em-sites-repeated"
    ),
    pytest.param(
        {"site": "isolated_bm", "em_sites": ["cns"], "bm_blast_percent": 80},
        "em_sites",
        "must be empty for site isolated_bm",
        id="em-sites-for-isolated-bm",
    ),
    pytest.param(
        {"site": "combined", "em_sites": []},
        "em_sites",
        "must name at least one extramedullary site",
        id="em-sites-empty-combined",
    ),
    pytest.param(
        {"site": "isolated_em", "em_sites": ..., "bm_blast_percent": 0},
        "em_sites",
        "must name at least one extramedullary site",
        id="em-sites-missing-isolated-em",
    ),
    pytest.param(
        {"bm_blast_percent": 100.5}, "bm_blast_percent", "between 0 and 100", id="blasts-above-100"
    ),
    pytest.param(
        {"bm_blast_percent": -1}, "bm_blast_percent", "between 0 and 100", id="blasts-negative"
    ),
    pytest.param(
        {"bm_blast_percent": "many"},
        "bm_blast_percent",
        "must be a number",
        id="blasts-not-a-number",
    ),
    pytest.param(
        {"bm_blast_percent": True}, "bm_blast_percent", "must be a number", id="blasts-boolean"
    ),
    pytest.param(
        # Issue 22: 5 to < 25 % (M2) is accepted for review; below 5 % is refused.
        {"site": "isolated_bm", "em_sites": [], "bm_blast_percent": 3.0},
        "bm_blast_percent",
        "at least 5 for site isolated_bm",
        id="blasts-too-low-for-isolated-bm",
    ),
    pytest.param(
        {"bm_blast_percent": 4},
        "bm_blast_percent",
        "at least 5 for site combined",
        id="blasts-too-low-for-combined",
    ),
    pytest.param(
        {"site": "isolated_em", "bm_blast_percent": 5},
        "bm_blast_percent",
        "below 5 for site isolated_em",
        id="blasts-too-high-for-isolated-em",
    ),
    pytest.param(
        {"mrd_end_of_induction": 1.5}, "mrd_end_of_induction", "between 0 and 1", id="mrd-above-1"
    ),
    pytest.param(
        {"mrd_end_of_induction": -0.001},
        "mrd_end_of_induction",
        "between 0 and 1",
        id="mrd-negative",
    ),
    pytest.param(
        {"mrd_end_induction": 0.01}, "mrd_end_induction", "not a known field", id="misspelt-field"
    ),
    # --- issue 12 ---
    pytest.param(
        {"site": "isolated_bm", "em_sites": [], "bm_blast_percent": ...},
        "bm_blast_percent",
        "is required for site isolated_bm",
        id="blasts-missing-isolated-bm",
    ),
    pytest.param(
        {"bm_blast_percent": None},
        "bm_blast_percent",
        "is required for site combined",
        id="blasts-null-combined",
    ),
    pytest.param(
        {"frontline_status": "finished"},
        "frontline_status",
        "not a valid choice",
        id="frontline-status-unknown-word",
    ),
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
        {"relapse_number": 0},
        "relapse_number",
        "greater than or equal to 1",
        id="relapse-number-0",
    ),
    pytest.param(
        {"relapse_number": "2"}, "relapse_number", "whole number", id="relapse-number-string"
    ),
    pytest.param(
        {"relapse_number": True}, "relapse_number", "whole number", id="relapse-number-boolean"
    ),
    pytest.param({"prior_hsct": "no"}, "prior_hsct", "true or false", id="prior-hsct-word"),
    pytest.param({"prior_hsct": 1}, "prior_hsct", "true or false", id="prior-hsct-number"),
    pytest.param({"bcr_abl1": "Ph+"}, "bcr_abl1", "not a valid choice", id="bcr-abl1-unknown-word"),
    pytest.param(
        {"age_at_diagnosis_months": -3},
        "age_at_diagnosis_months",
        "greater than or equal to 0",
        id="age-negative",
    ),
    pytest.param(
        {"age_at_diagnosis_months": 14.5},
        "age_at_diagnosis_months",
        "whole number",
        id="age-fraction",
    ),
    pytest.param(
        {"confirm_implausible": True},
        "implausible_reason",
        "is required when confirm_implausible is true",
        id="confirm-without-reason",
    ),
    pytest.param(
        {
            "frontline_therapy_end_date": None,
            "frontline_status": "on_therapy",
            "relapse_date": "2022-03-02",
        },
        "frontline_status",
        "on_therapy is implausible for a relapse on 2022-03-02",
        id="on-therapy-implausible",
    ),
]


@pytest.mark.parametrize(("changes", "field", "words"), BAD)
def test_bad_input_names_the_field_and_stores_nothing(
    client: APIClient, changes: dict[str, Any], field: str, words: str
) -> None:
    before = StratificationDecision.objects.count()
    response = post(client, body(**changes))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (400, "invalid")
    assert field in error["fields"], error
    assert any(words in message for message in error["fields"][field]), error["fields"]
    assert StratificationDecision.objects.count() == before


def test_every_bad_field_is_named_at_once(client: APIClient) -> None:
    response = post(
        client,
        body(
            protocol="nope",
            relapse_date="2019-01-01",  # before diagnosis (cross-field)
            frontline_therapy_end_date="not a date",  # parse error
            site="isolated_bm",
            em_sites=["cns"],  # inconsistent with the site (cross-field)
            bm_blast_percent=150,
            mrd_end_of_induction=2,
        ),
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {
        "protocol",
        "relapse_date",
        "frontline_therapy_end_date",
        "em_sites",
        "bm_blast_percent",
        "mrd_end_of_induction",
    }
    assert StratificationDecision.objects.count() == 0


def test_cross_field_errors_sit_under_their_field_not_non_field_errors(client: APIClient) -> None:
    response = post(client, body(relapse_date="2019-01-01"))
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "non_field_errors" not in fields
    assert fields["relapse_date"] == ["must not be before initial_diagnosis_date (2019-03-01)"]


def test_a_body_that_is_not_an_object_is_refused(client: APIClient) -> None:
    response = post(client, [REQUEST_EXAMPLE])
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["error"]["fields"]


def test_the_endpoint_is_in_the_openapi_schema() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/stratify/"]["post"]
    assert operation["operationId"] == "stratify_dry_run"
    assert set(operation["responses"]) >= {"200", "400", "401"}
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) == len(EXAMPLES)
    responses = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert len(responses) == len(EXAMPLES)
    components = schema["components"]["schemas"]
    request = components["StratifyRequestRequest"]["properties"]
    for field in (
        "frontline_status",
        "relapse_number",
        "prior_hsct",
        "bcr_abl1",
        "age_at_diagnosis_months",
        "confirm_implausible",
        "implausible_reason",
    ):
        assert request[field].get("description"), field
    assert "MPAL" in components["ImmunophenotypeEnum"]["enum"]
    response = components["StratifyResponse"]["properties"]
    assert {"cut_offs", "warnings", "reasons", "time_point"} <= set(response)
    assert "confidence" in components["Reason"]["properties"]
