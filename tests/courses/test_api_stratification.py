"""Opening a course stratifies it with every fact the records hold, and the course API
shows the decision's work: status, group, time point with its cut-off dates, HSCT,
warnings and reasons with rule id, text, source and confidence (issue 12)."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courses.models import TreatmentCourse
from teams.models import Role

pytestmark = pytest.mark.django_db

PROTOCOLS = ["all-rez-bfm-90", "all-rez-bfm-2002"]


def post(client, url, body):
    return client.post(url, body, format="json")


def open_course(client, patient_id: int, protocol: str, relapse: dict | None = None, **extra):
    """Record an early isolated marrow relapse (2024-03-01) of the patient and open a
    course on it; the response of the course creation."""
    body = {
        "patient": patient_id,
        "relapse_date": "2024-03-01",
        "site": "isolated_bm",
        "bm_blast_percent": 80,
        "relapse_number": 1,
        "prior_hsct": False,
        **(relapse or {}),
    }
    recorded = post(client, "/api/v1/relapses/", body)
    assert recorded.status_code == 201, recorded.content
    return post(
        client,
        "/api/v1/courses/",
        {"relapse": recorded.json()["id"], "protocol": protocol, **extra},
    )


EXCLUSIONS = [
    ("excluded_second_relapse", {}, {"relapse_number": 2}),
    ("excluded_prior_hsct", {}, {"prior_hsct": True}),
    ("excluded_bcr_abl1_positive", {"bcr_abl1": "positive"}, {}),
    # Born June 2021, diagnosed 2022-01-10: 6 months old.
    ("excluded_infant", {"birth_year": 2021, "birth_month": 6}, {}),
    ("excluded_lineage", {"immunophenotype": "MPAL"}, {}),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("rule", "patient_fields", "relapse_fields"), EXCLUSIONS, ids=[e[0] for e in EXCLUSIONS]
)
def test_a_case_outside_the_population_needs_review_with_the_exclusion_named(
    api, team, clinician, make_patient, protocol, rule, patient_fields, relapse_fields
):
    patient = make_patient(team, **patient_fields)
    response = open_course(api(clinician), patient.pk, protocol, relapse_fields)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["proposed_group"] is None  # null, not ""
    assert body["hsct_indicated"] is None
    decision = body["decision"]
    assert (decision["status"], decision["proposed_group"]) == ("needs_review", None)
    [exclusion] = [r for r in decision["reasons"] if r["rule"] == rule]
    assert exclusion["text"].startswith("Outside the protocol")
    assert exclusion["source"] and exclusion["confidence"] in ("stated", "recalled", "inferred")
    stored = TreatmentCourse.objects.get(pk=body["id"])
    assert stored.proposed_group is None


def test_the_course_embeds_its_decision_with_reasons_warnings_and_cut_off_dates(
    api, team, clinician, make_patient
):
    client = api(clinician)
    patient = make_patient(team)  # BCR::ABL1 and birth month not recorded
    created = open_course(client, patient.pk, "all-rez-bfm-90")
    assert created.status_code == 201, created.content
    body = client.get(f"/api/v1/courses/{created.json()['id']}/").json()
    decision = body["decision"]
    assert body["proposed_group"] == decision["proposed_group"] == "A"
    assert (decision["status"], decision["time_point"], decision["hsct_indicated"]) == (
        "assigned",
        "early",
        True,
    )
    # Diagnosis 2022-01-10 + 18 months; end of front-line therapy 2024-01-10 + 6 months.
    assert decision["cut_offs"] == {
        "very_early_before": "2023-07-10",
        "late_from": "2024-07-10",
        "late_if_frontline_ended_on_or_before": None,
        "on_therapy_implausible_after": "2025-01-10",
    }
    assert [r["rule"] for r in decision["reasons"]] == [
        "time_point.early",
        "a_early_isolated_marrow",
        "hsct_a",
    ]
    for reason in decision["reasons"]:
        assert reason.keys() == {"rule", "text", "source", "confidence"}
        assert reason["confidence"] in ("stated", "recalled", "inferred")
    assert [w["rule"] for w in decision["warnings"]] == [
        "bcr_abl1_unknown",
        "age_at_diagnosis_unknown",
    ]
    assert (body["decision_stale"], body["decision_outdated"]) == (False, False)


def test_an_unknown_front_line_status_is_not_read_as_on_therapy(api, team, clinician, make_patient):
    # No end date: unknown. Relapse 2024-03-01 is past the very-early cut-off, so the
    # time point hangs on the status: needs review, both readings given.
    patient = make_patient(team, frontline_end_date=None)
    response = open_course(api(clinician), patient.pk, "all-rez-bfm-2002")
    assert response.status_code == 201, response.content
    decision = response.json()["decision"]
    assert (decision["status"], decision["time_point"]) == ("needs_review", None)
    assert decision["cut_offs"]["late_if_frontline_ended_on_or_before"] == "2023-09-01"
    [reason] = decision["reasons"]
    assert reason["rule"] == "time_point.frontline_status_unknown"
    assert "late → group S2" in reason["text"] and "early → group S3" in reason["text"]


def test_on_therapy_long_after_diagnosis_is_refused_unless_confirmed_with_a_reason(
    api, team, clinician, make_patient
):
    client = api(clinician)
    # Diagnosed 2020-01-10, "still on front-line therapy" at a relapse on 2024-03-01:
    # more than the protocol's 36 months (a local default).
    patient = make_patient(
        team,
        initial_diagnosis_date=date(2020, 1, 10),
        frontline_status="on_therapy",
        frontline_end_date=None,
    )
    recorded = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": patient.pk,
            "relapse_date": "2024-03-01",
            "site": "isolated_bm",
            "bm_blast_percent": 80,
            "relapse_number": 1,
            "prior_hsct": False,
        },
    ).json()
    course = {"relapse": recorded["id"], "protocol": "all-rez-bfm-2002"}
    refused = post(client, "/api/v1/courses/", course)
    assert refused.status_code == 400
    [message] = refused.json()["error"]["fields"]["frontline_status"]
    assert "implausible" in message and "2023-01-10" in message
    no_reason = post(client, "/api/v1/courses/", {**course, "confirm_implausible": True})
    assert no_reason.status_code == 400
    assert "implausible_reason" in no_reason.json()["error"]["fields"]
    assert not TreatmentCourse.objects.exists()
    confirmed = post(
        client,
        "/api/v1/courses/",
        {
            **course,
            "confirm_implausible": True,
            "implausible_reason": "Maintenance prolonged after an interruption for toxicity.",
        },
    )
    assert confirmed.status_code == 201, confirmed.content
    decision = confirmed.json()["decision"]
    assert (decision["proposed_group"], decision["time_point"]) == ("S3", "early")
    [warning] = [
        w for w in decision["warnings"] if w["rule"].startswith("frontline_status.on_therapy")
    ]
    assert "prolonged after an interruption" in warning["text"]


def test_a_second_course_on_the_same_relapse_is_refused_naming_the_first(
    api, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = post(
        api(clinician),
        "/api/v1/courses/",
        {"relapse": course.relapse_id, "protocol": "all-rez-bfm-2002"},
    )
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["relapse"]
    assert f"course {course.pk}" in message
    assert course.patient.reference not in message


def test_one_decision_is_served_to_its_team_with_its_input_snapshot(
    api, team, other_team, clinician, member, make_course
):
    course = make_course(team, clinician)
    url = f"/api/v1/stratification-decisions/{course.decision_id}/"
    body = api(clinician).get(url).json()
    assert body["id"] == course.decision_id
    assert body["input_snapshot"]["relapse_date"] == "2024-03-01"
    assert body["input_snapshot"]["frontline_status"] == "completed"
    assert body["chosen_group"] == "A" and body["confirmed_at"]
    assert [r["rule"] for r in body["reasons"]][1] == "a_early_isolated_marrow"
    assert api(member(other_team, Role.COORDINATOR)).get(url).status_code == 404
    assert api(clinician).get("/api/v1/stratification-decisions/999999/").status_code == 404


def test_the_course_list_embeds_decisions_without_a_query_per_course(
    api, team, clinician, make_course
):
    client = api(clinician)
    counts = []
    for size in (1, 5):
        while TreatmentCourse.objects.count() < size:
            make_course(team, clinician)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/api/v1/courses/")
        results = response.json()["results"]
        assert len(results) == size
        assert all(r["decision"]["reasons"] for r in results)
        counts.append(len(ctx.captured_queries))
    # token+user, roles, the count, the page (courses with patient and decision joined)
    assert counts == [4, 4]
