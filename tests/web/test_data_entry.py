"""Data entry: registering a patient, the relapse and the course with a preview of the
stratification; recording each kind of record; rescheduling and skipping a step.
Every form refuses what the API refuses, beside the field, keeping what was typed."""

from __future__ import annotations

import re
from datetime import date

import pytest

from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    HsctReferral,
    MrdResult,
    Patient,
    Relapse,
    ResponseAssessment,
    State,
    StepStatus,
    TreatmentCourse,
)
from stratification.models import StratificationDecision
from teams.models import Role
from tests.conftest import induction_blocks

pytestmark = pytest.mark.django_db

PATIENT = {
    "reference": "NEW-001",
    "birth_year": "2014",
    "sex": "female",
    "immunophenotype": "B",
    "initial_diagnosis_date": "2022-01-10",
    "frontline_protocol": "AIEOP-BFM ALL 2017",
    "frontline_end_date": "2024-01-10",
}
RELAPSE = {
    "relapse_date": "2024-03-01",
    "site": "isolated_bm",
    "bm_blast_percent": "80",
    "relapse_number": "1",
    "prior_hsct": "no",
}


def test_a_member_of_one_team_is_never_asked_for_the_team(web, parse, team, clinician):
    client = web(clinician)
    form = parse(client.get("/patients/new/")).form(None, "post")
    assert "team" not in form["fields"]
    response = client.post("/patients/new/", PATIENT)
    patient = Patient.objects.get(reference="NEW-001")
    assert patient.team == team
    assert response["Location"] == f"/patients/{patient.pk}/relapses/new/"


def test_a_member_of_several_teams_chooses_among_those_they_may_write_in(
    web, parse, team, other_team, member
):
    user = member(team, Role.CLINICIAN)
    other_team.memberships.create(user=user, role=Role.COORDINATOR)
    client = web(user)
    assert "team" in parse(client.get("/patients/new/")).form(None, "post")["fields"]
    client.post("/patients/new/", {**PATIENT, "team": other_team.pk})
    assert Patient.objects.get(reference="NEW-001").team == other_team


def test_a_team_where_one_only_views_is_not_offered(web, parse, team, other_team, member):
    user = member(team, Role.CLINICIAN)
    third = other_team.memberships.create(user=user, role=Role.VIEWER)
    assert third.pk
    client = web(user)
    assert "team" not in parse(client.get("/patients/new/")).form(None, "post")["fields"]
    client.post("/patients/new/", {**PATIENT, "team": other_team.pk})
    assert Patient.objects.get(reference="NEW-001").team == team


def test_the_patient_form_refuses_what_the_api_refuses_and_keeps_what_was_typed(
    web, parse, team, clinician, make_patient
):
    make_patient(team, reference="TAKEN-1")
    bad = {**PATIENT, "reference": "TAKEN-1", "frontline_end_date": "2021-01-01"}
    response = web(clinician).post("/patients/new/", bad)
    assert response.status_code == 400
    text = parse(response).text
    # The service's words: the same as the API's 400.
    assert "must not be before initial_diagnosis_date (2022-01-10)." in text
    html = response.content.decode()
    assert 'value="TAKEN-1"' in html and 'value="AIEOP-BFM ALL 2017"' in html
    assert 'aria-invalid="true"' in html
    assert Patient.objects.filter(reference="TAKEN-1").count() == 1


def test_a_name_like_reference_is_refused_by_the_same_rule_as_the_api(web, parse, team, clinician):
    response = web(clinician).post("/patients/new/", {**PATIENT, "reference": "Anna Müller"})
    assert response.status_code == 400
    assert "never a name" in parse(response).text
    assert not Patient.objects.exists()


def test_the_relapse_form_names_each_impossible_field(web, parse, team, clinician, make_patient):
    patient = make_patient(team, sex="female")
    response = web(clinician).post(
        f"/patients/{patient.pk}/relapses/new/",
        {
            "relapse_date": "2024-03-01",
            "site": "combined",
            "em_sites": ["testis"],
            "bm_blast_percent": "40",
        },
    )
    assert response.status_code == 400
    assert "'testis' is impossible for a patient recorded as female." in parse(response).text
    assert re.search(r'value="testis"[^>]* checked', response.content.decode())
    assert not Relapse.objects.exists()


def test_registering_then_previewing_changes_nothing_and_confirming_opens_the_course(
    web, parse, team, clinician
):
    client = web(clinician)
    client.post("/patients/new/", PATIENT)
    patient = Patient.objects.get(reference="NEW-001")
    response = client.post(f"/patients/{patient.pk}/relapses/new/", RELAPSE)
    relapse = Relapse.objects.get(patient=patient)
    assert response["Location"] == f"/relapses/{relapse.pk}/course/"

    preview = client.get(f"/relapses/{relapse.pk}/course/", {"protocol": "all-rez-bfm-90"})
    text = parse(preview).text
    assert "The engine's proposal" in text and "Group A" in text
    assert "time point early" in text and "a_early_isolated_marrow" in text
    assert not TreatmentCourse.objects.exists() and not StratificationDecision.objects.exists()

    done = client.post(
        f"/relapses/{relapse.pk}/course/",
        {"protocol": "all-rez-bfm-90", "risk_group": "A", "reason": "", "action": "confirm"},
    )
    course = TreatmentCourse.objects.get(relapse=relapse)
    assert done["Location"] == f"/courses/{course.pk}/"
    assert course.state == State.STRATIFIED and course.risk_group == "A"
    assert course.decision.confirmed_by == clinician


def test_a_refused_confirmation_leaves_no_half_registered_course(
    web, parse, team, clinician, make_patient
):
    client = web(clinician)
    patient = make_patient(team)
    client.post(f"/patients/{patient.pk}/relapses/new/", RELAPSE)
    relapse = Relapse.objects.get(patient=patient)
    response = client.post(
        f"/relapses/{relapse.pk}/course/",
        {"protocol": "all-rez-bfm-90", "risk_group": "B", "reason": "", "action": "confirm"},
    )
    assert response.status_code == 400
    assert "differs from the proposed one (A)" in parse(response).text
    assert not TreatmentCourse.objects.exists()
    assert not StratificationDecision.objects.exists()


def test_opening_without_confirming_leaves_the_course_for_review(
    web, team, clinician, make_patient
):
    client = web(clinician)
    patient = make_patient(team)
    client.post(f"/patients/{patient.pk}/relapses/new/", RELAPSE)
    relapse = Relapse.objects.get(patient=patient)
    client.post(
        f"/relapses/{relapse.pk}/course/",
        {"protocol": "all-rez-bfm-90", "risk_group": "", "reason": "", "action": "review"},
    )
    course = TreatmentCourse.objects.get(relapse=relapse)
    assert course.state == State.REGISTERED and not course.decision_confirmed
    assert patient.reference in client.get("/").content.decode().split("Needs review")[1]


# --- records ------------------------------------------------------------------------


RECORDS = [
    ("block", {"block_type": "R2", "start_date": "2026-11-20"}, BlockAdministration),
    (
        "assessment",
        {"assessed_on": "2026-11-20", "marrow": "M1", "cr2": "yes", "em_status": "none"},
        ResponseAssessment,
    ),
    (
        "mrd",
        {
            "sampled_on": "2026-11-20",
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": "0.0001",
            "method": "RQ-PCR",
            "sensitivity": "0.0001",
        },
        MrdResult,
    ),
    ("referral", {"referred_on": "2026-11-20", "donor_search_status": "ongoing"}, HsctReferral),
    (
        "event",
        {"kind": "secondary_malignancy", "occurred_on": "2026-11-20", "note": ""},
        ClinicalEvent,
    ),
]


@pytest.mark.parametrize(("kind", "data", "model"), RECORDS, ids=[r[0] for r in RECORDS])
def test_each_record_type_is_saved_through_its_service(
    web, team, clinician, make_course, kind, data, model
):
    # CR2 is judged no earlier than the end of induction: that course has had it.
    blocks = induction_blocks() if model is ResponseAssessment else ()
    course = make_course(team, clinician, blocks=blocks)
    client = web(clinician)
    assert client.get(f"/courses/{course.pk}/record/{kind}/").status_code == 200
    response = client.post(f"/courses/{course.pk}/record/{kind}/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == f"/courses/{course.pk}/#records"
    record = model.objects.get(course=course)
    assert record.recorded_by == clinician


def test_a_cr2_before_the_end_of_induction_is_refused_beside_cr2_as_the_api_refuses_it(
    web, api, parse, team, clinician, make_course
):
    # One induction block (R2 from 2026-10-13): the end of induction, after the 2nd
    # block, is not known yet, so CR2 cannot be judged (Buchmann et al., Blood 2022).
    course = make_course(team, clinician, blocks=(("R2", date(2026, 10, 13)),))
    data = {"assessed_on": "2026-11-20", "marrow": "M1", "cr2": "yes", "em_status": "none"}
    refused = api(clinician).post(
        f"/api/v1/courses/{course.pk}/assessments/", {**data, "cr2": True}, format="json"
    )
    [message] = refused.json()["error"]["fields"]["cr2"]
    assert "the 2nd block is not recorded yet" in message
    response = web(clinician).post(f"/courses/{course.pk}/record/assessment/", data)
    assert response.status_code == 400
    assert message in parse(response).text
    assert 'id="id_cr2_error"' in response.content.decode()
    assert not ResponseAssessment.objects.exists()


def test_a_record_dated_in_the_future_is_refused_beside_the_date_and_the_rest_is_kept(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = web(clinician).post(
        f"/courses/{course.pk}/record/block/",
        {"block_type": "R2", "start_date": "2026-12-24", "delay_reason": "bed shortage"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "must not be in the future (today is 2026-11-24)." in parse(response).text
    assert 'id="id_start_date_error"' in html
    assert 'value="R2"' in html and "bed shortage</textarea>" in html
    assert not BlockAdministration.objects.exists()


def test_a_block_recorded_closes_its_planned_step(web, team, clinician, make_course):
    course = make_course(team, clinician)
    web(clinician).post(
        f"/courses/{course.pk}/record/block/", {"block_type": "R2", "start_date": "2026-11-24"}
    )
    step = course.steps.get(kind="block", block_type="R2", sequence=0)
    assert step.status == StepStatus.DONE and step.done_on == date(2026, 11, 24)


def test_a_closed_course_takes_no_record_and_says_why(web, parse, team, clinician, make_course):
    course = make_course(team, clinician)
    from django.utils import timezone

    from courses import services as course_services

    course_services.course_transition(
        course,
        name="take_off_protocol",
        reason="moved",
        off_protocol_reason="withdrawal",
        actor=clinician,
        now=timezone.now(),
    )
    # A block is therapy: refused. (A death is follow-up: a closed course takes it.)
    response = web(clinician).post(
        f"/courses/{course.pk}/record/block/", {"block_type": "R2", "start_date": "2026-11-20"}
    )
    assert response.status_code == 409
    assert "The course is off_protocol; it takes no more records." in parse(response).text
    assert "Follow-up records are still taken" in parse(response).text


def test_rescheduling_a_step_needs_a_reason_and_moves_the_due_date(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    step = course.steps.get(sequence=0)
    client = web(clinician)
    url = f"/courses/{course.pk}/steps/{step.pk}/"
    refused = client.post(url, {"action": "reschedule", "reschedule-due_on": "2026-11-30"})
    assert refused.status_code == 400
    assert "is required to reschedule a step." in parse(refused).text
    assert 'value="2026-11-30"' in refused.content.decode()
    done = client.post(
        url,
        {
            "action": "reschedule",
            "reschedule-due_on": "2026-11-30",
            "reschedule-reason": "infection",
        },
    )
    assert done["Location"] == f"/courses/{course.pk}/#step-{step.pk}"
    step.refresh_from_db()
    # The team's reason stands beside the protocol's note, never over it (issue 11).
    assert step.due_on == date(2026, 11, 30) and step.team_reason == "infection"
    assert step.note == "Block sequence and timing to confirm."


def test_skipping_a_step_needs_a_reason(web, parse, team, clinician, make_course):
    course = make_course(team, clinician)
    step = course.steps.get(sequence=1)
    url = f"/courses/{course.pk}/steps/{step.pk}/"
    client = web(clinician)
    assert client.post(url, {"action": "skip"}).status_code == 400
    client.post(url, {"action": "skip", "skip-reason": "not indicated after review"})
    step.refresh_from_db()
    assert step.status == StepStatus.SKIPPED


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("frontline_protocol", "AIEOP\x1b[31m", "must not contain control characters"),
        ("initial_diagnosis_date", "9999-12-31", "less than or equal to 2200-12-31"),
        ("initial_diagnosis_date", "1899-12-31", "greater than or equal to 1900-01-01"),
    ],
)
def test_the_forms_hold_the_apis_input_bounds(web, parse, team, clinician, field, value, message):
    response = web(clinician).post("/patients/new/", {**PATIENT, field: value})
    assert response.status_code == 400
    assert message in parse(response).text
    assert not Patient.objects.exists()
