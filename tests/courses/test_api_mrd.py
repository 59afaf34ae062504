"""MRD entry that cannot be misread: a value with its unit (stored as a fraction), a
qualitative result with the assay's sensitivity, a time point from the protocol's list;
and the HSCT proposal of ALL-REZ BFM 2002 S2 from each kind of result (issue 12)."""

from __future__ import annotations

import pytest

from courses.models import MrdResult

pytestmark = pytest.mark.django_db


def url(course, suffix="mrd"):
    return f"/api/v1/courses/{course.pk}/{suffix}/"


def mrd(client, course, **fields):
    body = {"sampled_on": "2026-11-24", "time_point": "end_of_induction", **fields}
    return client.post(url(course), body, format="json")


def test_a_percent_and_a_fraction_of_the_same_result_are_stored_alike(api, clinician, s2_course):
    client = api(clinician)
    as_percent = mrd(client, s2_course, unit="percent", value=0.1, sensitivity=0.01)
    as_fraction = mrd(client, s2_course, unit="fraction", value=0.001, sensitivity=0.0001)
    assert as_percent.status_code == as_fraction.status_code == 201, as_percent.content
    for response, unit in ((as_percent, "percent"), (as_fraction, "fraction")):
        body = response.json()
        assert (body["value"], body["sensitivity"], body["entered_unit"]) == (0.001, 0.0001, unit)
        assert "unit" not in body
    values = set(MrdResult.objects.values_list("value", "sensitivity"))
    assert values == {(0.001, 0.0001)}


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"value": 0.001}, "unit", "is required"),
        ({"unit": "fraction", "value": 5}, "value", "at most 1 in fraction"),
        ({"unit": "percent", "value": 150}, "value", "at most 100 in percent"),
        ({"unit": "fraction", "value": 0}, "value", "record an undetectable result as"),
        ({"unit": "fraction"}, "value", "is required, unless the result is qualitative"),
        (
            {"unit": "fraction", "value": 0.001, "qualitative": "negative", "sensitivity": 1e-4},
            "value",
            "not both",
        ),
        ({"unit": "fraction", "qualitative": "negative"}, "sensitivity", "is required"),
        ({"unit": "fraction", "value": 0.01, "time_point": "pre-HSCT"}, "time_point", ""),
        ({"unit": "fraction", "value": 0.01, "qualitative": "weakly"}, "qualitative", ""),
    ],
)
def test_an_mrd_result_that_could_be_misread_is_a_400(
    api, clinician, s2_course, fields, field, words
):
    response = mrd(api(clinician), s2_course, **fields)
    assert response.status_code == 400, response.content
    messages = response.json()["error"]["fields"][field]
    assert any(words in m for m in messages), messages
    assert not MrdResult.objects.exists()


def test_a_time_point_outside_the_protocols_list_is_a_400(api, clinician, team, make_course):
    # A vocabulary word that this protocol's list would not hold is refused by the
    # service; one outside the vocabulary by the field.
    course = make_course(team, clinician)
    response = mrd(api(clinician), course, unit="fraction", value=0.01, time_point="day_33")
    assert response.status_code == 400
    assert "time_point" in response.json()["error"]["fields"]


def test_the_protocols_list_is_what_the_service_checks(api, clinician, team, make_course):
    from courses.services.common import mrd_time_point_errors

    course = make_course(team, clinician)
    assert mrd_time_point_errors(course, "time_point", "pre_hsct") == {}
    [message] = mrd_time_point_errors(course, "time_point", "end of induction")["time_point"]
    assert message.startswith("must be one of the protocol's MRD time points: at_relapse")
    assert "pre_hsct (before HSCT)" in message


@pytest.mark.parametrize(
    ("fields", "proposed", "words"),
    [
        ({"unit": "percent", "value": 0.2}, True, "0.002 is at or above 0.001: indicated"),
        ({"unit": "fraction", "value": 0.0005}, False, "is below 0.001: not indicated"),
        (
            {"unit": "fraction", "qualitative": "negative", "sensitivity": 0.0001},
            False,
            "negative at sensitivity 0.0001, which is at or below 0.001",
        ),
        (
            {"unit": "fraction", "qualitative": "negative", "sensitivity": 0.01},
            None,
            "does not show whether MRD is below 0.001",
        ),
        (
            {"unit": "percent", "qualitative": "positive_not_quantifiable", "sensitivity": 0.01},
            None,
            "positive, not quantifiable at sensitivity 0.0001",
        ),
    ],
)
def test_each_kind_of_result_becomes_the_s2_proposal_the_protocol_file_states(
    api, clinician, s2_course, fields, proposed, words
):
    client = api(clinician)
    created = mrd(client, s2_course, **fields)
    assert created.status_code == 201, created.content
    body = client.get(f"/api/v1/courses/{s2_course.pk}/").json()
    assert body["hsct_proposed"] is proposed
    assert body["hsct_indicated"] is None  # a clinician confirms
    assert words in body["hsct_proposal_basis"]
    # The rule that decided, with its source and confidence from the protocol file.
    assert "Rule hsct_s2_mrd" in body["hsct_proposal_basis"]
    assert body["hsct_proposal_basis"].endswith(("(stated).", "(recalled).", "(inferred)."))


@pytest.mark.parametrize("qualitative", ["negative", "positive_not_quantifiable"])
def test_a_qualitative_result_is_stored_and_shown(api, clinician, s2_course, qualitative):
    client = api(clinician)
    created = mrd(client, s2_course, unit="fraction", qualitative=qualitative, sensitivity=1e-4)
    assert created.status_code == 201, created.content
    [shown] = client.get(url(s2_course)).json()["results"]
    assert (shown["value"], shown["qualitative"], shown["sensitivity"]) == (
        None,
        qualitative,
        0.0001,
    )
    stored = MrdResult.objects.get()
    assert (stored.value, stored.qualitative) == (None, qualitative)


def test_deciding_hsct_after_an_undeciding_result_needs_a_reason_that_says_why(
    api, clinician, s2_course
):
    client = api(clinician)
    mrd(
        client,
        s2_course,
        unit="fraction",
        qualitative="positive_not_quantifiable",
        sensitivity=1e-4,
    )
    refused = client.post(
        f"/api/v1/courses/{s2_course.pk}/confirm-hsct/", {"hsct_indicated": True}, format="json"
    )
    assert refused.status_code == 400
    assert "does not decide it" in refused.json()["error"]["fields"]["reason"][0]


def test_a_planned_mrd_step_is_completed_by_its_time_point(api, clinician, team, make_course):
    course = make_course(team, clinician)  # group A: an MRD step before HSCT
    client = api(clinician)
    assert (
        mrd(client, course, unit="fraction", value=0.0002, time_point="pre_hsct").status_code == 201
    )
    step = client.get(url(course, "steps")).json()["results"]
    [pre_hsct] = [s for s in step if s["mrd_time_point"] == "pre_hsct"]
    assert (pre_hsct["status"], pre_hsct["done_on"]) == ("done", "2026-11-24")
