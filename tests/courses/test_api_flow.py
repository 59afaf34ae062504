"""A course's life through the API: creation, confirmation, every transition allowed
and refused, and the clinical records that guard them."""

from __future__ import annotations

from datetime import date

import pytest

from courses.models import AuditEntry, CourseTransition, PlannedStep, TreatmentCourse
from tests.conftest import induction_blocks

pytestmark = pytest.mark.django_db


def post(client, url, body):
    return client.post(url, body, format="json")


def transition(client, course, name, **extra):
    return post(client, f"/api/v1/courses/{course.pk}/transitions/", {"transition": name, **extra})


def test_a_clinician_registers_a_patient_relapse_and_course_and_confirms_it(api, team, clinician):
    client = api(clinician)
    patient = post(
        client,
        "/api/v1/patients/",
        {
            "team": team.pk,
            "reference": "NORTH-0001",
            "birth_year": 2014,
            "sex": "female",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2021-05-03",
            "frontline_protocol": "AIEOP-BFM ALL 2017",
            "frontline_end_date": "2023-05-01",
        },
    )
    assert patient.status_code == 201, patient.content
    relapse = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": patient.json()["id"],
            "relapse_date": "2023-08-15",
            "site": "isolated_bm",
            "em_sites": [],
            "bm_blast_percent": 60,
            "relapse_number": 1,
            "prior_hsct": False,
        },
    )
    assert relapse.status_code == 201, relapse.content
    created = post(
        client,
        "/api/v1/courses/",
        {
            "relapse": relapse.json()["id"],
            "protocol": "all-rez-bfm-90",
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    # Diagnosis 2021-05-03 + 18 months = 2022-11-03 <= relapse; end 2023-05-01 + 6 months
    # = 2023-11-01 > relapse: early isolated marrow relapse -> group A, HSCT indicated.
    assert (body["state"], body["proposed_group"], body["risk_group"]) == ("registered", "A", None)
    assert body["hsct_indicated"] is True
    assert body["allowed_transitions"] == ["take_off_protocol"]

    confirmed = post(
        client, f"/api/v1/courses/{body['id']}/confirm-stratification/", {"risk_group": "A"}
    )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["state"] == "stratified"
    assert confirmed.json()["risk_group"] == "A"
    steps = PlannedStep.objects.filter(course_id=body["id"])
    assert steps.filter(kind="hsct_referral").exists()
    assert steps.filter(kind="block").count() >= 2


def test_choosing_another_group_than_proposed_needs_a_reason(api, team, clinician, make_course):
    course = make_course(team, clinician, confirm=False)
    client = api(clinician)
    url = f"/api/v1/courses/{course.pk}/confirm-stratification/"
    refused = post(client, url, {"risk_group": "B"})
    assert refused.status_code == 400
    assert "reason" in refused.json()["error"]["fields"]
    course.refresh_from_db()
    assert course.state == "registered"
    accepted = post(client, url, {"risk_group": "B", "reason": "Front-line end date corrected"})
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["risk_group"] == "B"
    # B: no HSCT indicated, so the schedule has no referral step.
    assert accepted.json()["hsct_indicated"] is False
    assert not PlannedStep.objects.filter(course=course, kind="hsct_referral").exists()


def test_confirming_twice_is_a_409(api, team, clinician, make_course):
    course = make_course(team, clinician)
    response = post(
        api(clinician), f"/api/v1/courses/{course.pk}/confirm-stratification/", {"risk_group": "A"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_stratified"


def test_unknown_group_is_a_400(api, team, clinician, make_course):
    course = make_course(team, clinician, confirm=False)
    response = post(
        api(clinician),
        f"/api/v1/courses/{course.pk}/confirm-stratification/",
        {"risk_group": "S3", "reason": "x"},
    )
    assert response.status_code == 400
    assert "risk_group" in response.json()["error"]["fields"]


def test_the_whole_hsct_path_with_every_guard(api, team, clinician, make_course, time_machine):
    # The course opens on 2026-10-13; each record is entered on its clinical date.
    time_machine.move_to("2026-10-13T10:00:00+00:00", tick=False)
    course = make_course(team, clinician)  # group A, HSCT indicated
    client = api(clinician)
    assert transition(client, course, "start_induction").json()["state"] == "induction"

    refused = transition(client, course, "assess_response")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert "no chemotherapy block has been recorded" in error["message"]
    assert error["allowed_transitions"] == ["take_off_protocol"]

    # Induction: R2, then R1 on day 22; CR2 is judged no earlier than its end.
    for block_type, start in induction_blocks():
        time_machine.move_to(f"{start}T10:00:00+00:00", tick=False)
        block = post(
            client,
            f"/api/v1/courses/{course.pk}/blocks/",
            {"block_type": block_type, "start_date": str(start)},
        )
        assert block.status_code == 201, block.content
    time_machine.move_to("2026-11-24T10:00:00+00:00", tick=False)
    assert transition(client, course, "assess_response").json()["state"] == "response_assessment"

    no_cr2 = transition(client, course, "start_hsct_workup")
    assert no_cr2.status_code == 409
    assert "CR2" in no_cr2.json()["error"]["message"]
    post(
        client,
        f"/api/v1/courses/{course.pk}/assessments/",
        {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "none"},
    )

    # HSCT is indicated: continuing on chemotherapy alone needs a reason.
    chemo = transition(client, course, "continue_chemotherapy")
    assert chemo.status_code == 409
    assert "HSCT is indicated" in chemo.json()["error"]["message"]
    assert transition(client, course, "start_hsct_workup").json()["state"] == "hsct_workup"

    no_date = transition(client, course, "transplant")
    assert no_date.status_code == 409
    assert "transplant date" in no_date.json()["error"]["message"]
    referral = client.put(
        f"/api/v1/courses/{course.pk}/hsct-referral/",
        {"referred_on": "2026-11-24", "performed_on": "2026-11-24"},
        format="json",
    )
    assert referral.status_code == 200, referral.content
    # No MRD in the pre-HSCT window: refused unless a clinician overrides with a reason.
    no_mrd = transition(client, course, "transplant")
    assert no_mrd.status_code == 409
    assert "pre-HSCT window" in no_mrd.json()["error"]["message"]
    mrd = post(
        client,
        f"/api/v1/courses/{course.pk}/mrd/",
        {"sampled_on": "2026-11-24", "time_point": "pre_hsct", "value": 0.0001, "unit": "fraction"},
    )
    assert mrd.status_code == 201, mrd.content
    assert transition(client, course, "transplant").json()["state"] == "transplanted"
    # Never complete on the day of the transplant, not even with a reason (issue 11).
    same_day = transition(client, course, "complete", reason="family wish")
    assert same_day.status_code == 409
    assert "day of its transplant" in same_day.json()["error"]["message"]
    # Day +100 after the transplant (2026-11-24) is the template's end of therapy.
    time_machine.move_to("2027-03-04T10:00:00+00:00", tick=False)
    done = transition(client, course, "complete")
    assert done.json()["state"] == "completed", done.content
    assert done.json()["allowed_transitions"] == []

    names = list(CourseTransition.objects.filter(course=course).values_list("name", flat=True))
    assert names == [
        "stratify",
        "start_induction",
        "assess_response",
        "start_hsct_workup",
        "transplant",
        "complete",
    ]
    assert (
        transition(
            client, course, "take_off_protocol", reason="x", off_protocol_reason="death"
        ).status_code
        == 409
    )


def test_the_chemotherapy_path_and_hsct_override(api, team, clinician, make_course):
    # Late isolated marrow relapse -> group B, no HSCT.
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1), blocks=induction_blocks())
    assert course.risk_group == "B"
    client = api(clinician)
    transition(client, course, "start_induction")
    transition(client, course, "assess_response")
    post(
        client,
        f"/api/v1/courses/{course.pk}/assessments/",
        {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "none"},
    )
    no_reason = transition(client, course, "start_hsct_workup")
    assert no_reason.status_code == 409
    assert "give a reason to override" in no_reason.json()["error"]["message"]
    options = client.get(f"/api/v1/courses/{course.pk}/transitions/").json()["allowed"]
    assert {
        "transition": "start_hsct_workup",
        "to_state": "hsct_workup",
        "requires": ["reason"],
    } in options

    assert transition(client, course, "continue_chemotherapy").json()["state"] == (
        "post_remission_chemo"
    )
    assert transition(client, course, "start_maintenance").json()["state"] == "maintenance"
    # Maintenance has not ended (the template's end of therapy is ~2 years away):
    # completing now needs a reason (issue 11).
    early = transition(client, course, "complete")
    assert early.status_code == 409
    assert "end-of-therapy step is not reached" in early.json()["error"]["message"]
    done = transition(client, course, "complete", reason="therapy stopped: toxicity")
    assert done.json()["state"] == "completed"


def test_an_override_to_hsct_records_the_reason(api, team, clinician, make_course):
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1), blocks=induction_blocks())
    client = api(clinician)
    transition(client, course, "start_induction")
    transition(client, course, "assess_response")
    post(
        client,
        f"/api/v1/courses/{course.pk}/assessments/",
        {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "none"},
    )
    ok = transition(client, course, "start_hsct_workup", reason="MRD persistence, tumour board")
    assert ok.status_code == 200
    assert CourseTransition.objects.get(course=course, name="start_hsct_workup").reason == (
        "MRD persistence, tumour board"
    )


@pytest.mark.parametrize("state_path", [[], ["start_induction"]])
def test_off_protocol_needs_a_category_and_a_reason(api, team, clinician, make_course, state_path):
    course = make_course(team, clinician)
    client = api(clinician)
    for name in state_path:
        transition(client, course, name)
    missing = transition(client, course, "take_off_protocol", reason="refractory disease")
    assert missing.status_code == 409
    assert "off-protocol reason is required" in missing.json()["error"]["message"]
    no_text = transition(client, course, "take_off_protocol", off_protocol_reason="refractory")
    assert no_text.status_code == 409
    ok = transition(
        client,
        course,
        "take_off_protocol",
        off_protocol_reason="refractory",
        reason="M3 marrow after R2",
    )
    assert ok.status_code == 200
    assert (ok.json()["state"], ok.json()["off_protocol_reason"]) == ("off_protocol", "refractory")


def test_a_refused_transition_changes_nothing(api, team, clinician, make_course):
    course = make_course(team, clinician)
    before = (
        course.state,
        course.version,
        CourseTransition.objects.count(),
        AuditEntry.objects.count(),
    )
    response = transition(api(clinician), course, "complete")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "transition_not_allowed"
    assert "not possible from state 'stratified'" in response.json()["error"]["message"]
    assert sorted(response.json()["error"]["allowed_transitions"]) == [
        "start_induction",
        "take_off_protocol",
    ]
    course.refresh_from_db()
    assert (
        course.state,
        course.version,
        CourseTransition.objects.count(),
        AuditEntry.objects.count(),
    ) == before


def test_unknown_transition_name_is_a_400(api, team, clinician, make_course):
    course = make_course(team, clinician)
    response = transition(api(clinician), course, "teleport")
    assert response.status_code == 400
    assert "transition" in response.json()["error"]["fields"]
    assert transition(api(clinician), course, "stratify").status_code == 400


def test_a_stale_version_is_a_409(api, team, clinician, make_course):
    course = make_course(team, clinician)
    client = api(clinician)
    seen = client.get(f"/api/v1/courses/{course.pk}/").json()["version"]
    assert transition(client, course, "start_induction", version=seen).status_code == 200
    stale = transition(
        client,
        course,
        "take_off_protocol",
        version=seen,
        reason="x",
        off_protocol_reason="withdrawal",
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_version"
    course.refresh_from_db()
    assert course.state == "induction"


def test_the_state_field_cannot_be_written_directly(team, clinician, make_course):
    course = make_course(team, clinician)
    with pytest.raises(AttributeError):
        course.state = "completed"
    assert TreatmentCourse.objects.get(pk=course.pk).state == "stratified"
