"""The admin writes through the same services and rules as the API; what no service
writes from the admin is read-only; change lists cost a fixed number of queries."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.utils import timezone

from courses import services
from courses.models import (
    AuditEntry,
    BlockAdministration,
    HsctReferral,
    MrdResult,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    TreatmentCourse,
)
from stratification.models import StratificationDecision
from tests.conftest import induction_blocks

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root-admin", "a@example.org", "pw")


@pytest.fixture
def admin(client: Any, staff: Any) -> Any:
    client.force_login(staff)
    return client


def test_a_block_added_in_the_admin_moves_the_schedule_and_is_audited(
    client, staff, team, clinician, make_course
):
    course = make_course(team, clinician)
    client.force_login(staff)
    response = client.post(
        "/admin/courses/blockadministration/add/",
        {
            "course": course.pk,
            "block_type": "R2",
            "start_date": "2026-11-24",
            "end_date": "",
            "delay_reason": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    block = BlockAdministration.objects.get(course=course)
    assert block.recorded_by == staff
    assert AuditEntry.objects.filter(
        course=course, target="BlockAdministration", actor=staff
    ).exists()
    assert PlannedStep.objects.filter(course=course, kind="block", status="done").exists()


def test_the_admin_refuses_what_the_api_refuses(client, staff, team, clinician, make_course):
    course = make_course(team, clinician)
    client.force_login(staff)
    response = client.post(
        "/admin/courses/mrdresult/add/",
        {
            "course": course.pk,
            "sampled_on": "2026-11-24",
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": "1.5",
            "method": "RQ-PCR",
            "sensitivity": "0.0001",
        },
    )
    assert response.status_code == 200
    assert "must be above 0 and at most 1 in fraction" in response.content.decode()
    assert not MrdResult.objects.exists()


def test_the_admin_refuses_a_cr2_before_the_end_of_induction_as_the_api_does(
    admin, api, team, clinician, make_course
):
    # R2 from 2026-10-13 and R1 from 2026-11-03: induction ended 2026-11-08.
    course = make_course(team, clinician, blocks=induction_blocks())
    data = {"assessed_on": "2026-11-05", "marrow": "M1", "cr2": True, "em_status": "none"}
    api_refusal = api(clinician).post(
        f"/api/v1/courses/{course.pk}/assessments/", data, format="json"
    )
    [message] = api_refusal.json()["error"]["fields"]["cr2"]
    assert "(2026-11-08: the start of the 2nd block + 5 days, ALL-REZ BFM 90;" in message
    response = admin.post(
        "/admin/courses/responseassessment/add/", {**data, "course": course.pk, "cr2": "on"}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ResponseAssessment.objects.exists()
    accepted = admin.post(
        "/admin/courses/responseassessment/add/",
        {**data, "course": course.pk, "cr2": "on", "assessed_on": "2026-11-08"},
    )
    assert accepted.status_code == 302, accepted.content.decode()[:2000]
    assert ResponseAssessment.objects.get(course=course).cr2 is True


@pytest.mark.parametrize(
    "path",
    [
        "courses/treatmentcourse",
        "courses/patient",
        "courses/plannedstep",
        "courses/auditentry",
        "courses/blockadministration",
        "courses/hsctreferral",
    ],
)
def test_admin_pages_render(client, staff, team, clinician, make_course, path):
    course = make_course(team, clinician)
    client.force_login(staff)
    assert client.get(f"/admin/{path}/").status_code == 200
    if path == "courses/treatmentcourse":
        assert client.get(f"/admin/{path}/{course.pk}/change/").status_code == 200


# --- courses: read-only ------------------------------------------------------------------


def test_a_course_cannot_be_edited_in_the_admin(admin, team, clinician, make_course):
    # hsct_proposed was editable here, with no audit entry; a course changes only
    # through the API's services now.
    course = make_course(team, clinician)
    audit = AuditEntry.objects.filter(course=course).count()
    url = f"/admin/courses/treatmentcourse/{course.pk}/change/"
    page = admin.get(url)
    assert page.status_code == 200
    assert b'name="hsct_proposed"' not in page.content
    assert admin.post(url, {"hsct_proposed": "true", "hsct_proposal_basis": "x"}).status_code == 403
    assert admin.get("/admin/courses/treatmentcourse/add/").status_code == 403
    stored = TreatmentCourse.objects.get(pk=course.pk)
    assert (stored.hsct_proposed, stored.hsct_proposal_basis) == (None, "")
    assert AuditEntry.objects.filter(course=course).count() == audit


def test_a_decision_is_confirmed_with_its_course_not_in_the_decision_admin(
    admin, api, team, clinician, make_course
):
    course = make_course(team, clinician, confirm=False)
    url = f"/admin/stratification/stratificationdecision/{course.decision_id}/change/"
    assert admin.post(url, {"chosen_group": "A", "override_reason": ""}).status_code == 403
    assert not StratificationDecision.objects.get(pk=course.decision_id).is_confirmed
    # The course is still confirmable, and confirming lays out its schedule.
    confirmed = api(clinician).post(
        f"/api/v1/courses/{course.pk}/confirm-stratification/", {"risk_group": "A"}, format="json"
    )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["state"] == "stratified"
    assert PlannedStep.objects.filter(course=course).exists()


# --- the HSCT referral -----------------------------------------------------------------


def test_a_referral_added_in_the_admin_goes_through_the_service(
    admin, staff, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = admin.post(
        "/admin/courses/hsctreferral/add/",
        {
            "course": course.pk,
            "referred_on": "2026-11-23",
            "donor_search_status": "ongoing",
            "donor_type": "",
            "centre": "",
            "planned_on": "",
            "performed_on": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    referral = HsctReferral.objects.get(course=course)
    assert (referral.recorded_by, referral.donor_search_status) == (staff, "ongoing")
    assert AuditEntry.objects.filter(course=course, target="HsctReferral", actor=staff).exists()
    step = PlannedStep.objects.get(course=course, kind="hsct_referral")
    assert (step.status, step.done_on) == ("done", date(2026, 11, 23))


def test_the_referral_admin_refuses_what_the_api_refuses(admin, team, clinician, make_course):
    course = make_course(team, clinician)
    response = admin.post(
        "/admin/courses/hsctreferral/add/",
        {"course": course.pk, "referred_on": "2026-11-25", "donor_search_status": "ongoing"},
    )
    assert response.status_code == 200
    assert "must not be in the future (today is 2026-11-24)" in response.content.decode()
    assert not HsctReferral.objects.exists()


def test_a_referral_changed_in_the_admin_is_audited_with_what_changed(
    admin, staff, team, clinician, make_course
):
    course = make_course(team, clinician)
    referral = services.referral_save(
        course, data={"referred_on": date(2026, 11, 20)}, actor=clinician, now=timezone.now()
    )
    response = admin.post(
        f"/admin/courses/hsctreferral/{referral.pk}/change/",
        {
            "referred_on": "2026-11-20",
            "donor_search_status": "donor_found",
            "donor_type": "MUD",
            "centre": "",
            "planned_on": "",
            "performed_on": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditEntry.objects.filter(target="HsctReferral", actor=staff).get()
    # An update is an amendment: what changed, and the values it replaced.
    assert entry.action == "amended"
    # Progress (the donor search moving on, a donor type filled in) needs no reason.
    assert entry.data == {
        "before": {"donor_search_status": "not_started", "donor_type": ""},
        "after": {"donor_search_status": "donor_found", "donor_type": "MUD"},
        "reason": "",
    }
    referral.refresh_from_db()
    assert (referral.donor_type, referral.recorded_by) == ("MUD", staff)


# --- patients and relapses ------------------------------------------------------------


PATIENT = {
    "reference": "ADMIN-1",
    "birth_year": "2015",
    "sex": "male",
    "immunophenotype": "B",
    "initial_diagnosis_date": "2022-01-10",
    "frontline_protocol": "",
    "frontline_status": "completed",
    "frontline_end_date": "2024-01-10",
    "bcr_abl1": "negative",
    "birth_month": "",
}


def test_a_patient_added_in_the_admin_is_checked_by_the_service(admin, team, make_patient):
    make_patient(team, reference="TAKEN-1")
    refused = admin.post(
        "/admin/courses/patient/add/",
        {**PATIENT, "team": team.pk, "reference": "TAKEN-1", "frontline_end_date": "2021-01-01"},
    )
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "is already used in this team." in page
    assert "must not be before initial_diagnosis_date (2022-01-10)." in page
    assert (
        admin.post("/admin/courses/patient/add/", {**PATIENT, "team": team.pk}).status_code == 302
    )
    assert Patient.objects.filter(team=team, reference="ADMIN-1").exists()


def test_a_patient_changed_in_the_admin_is_checked_by_the_service(admin, team, make_patient):
    patient = make_patient(team)
    url = f"/admin/courses/patient/{patient.pk}/change/"
    refused = admin.post(
        url, {**PATIENT, "reference": patient.reference, "frontline_end_date": "2027-01-01"}
    )
    assert refused.status_code == 200
    assert "must not be in the future (today is 2026-11-24)." in refused.content.decode()
    accepted = admin.post(url, {**PATIENT, "reference": patient.reference, "sex": "other"})
    assert accepted.status_code == 302, accepted.content.decode()[:2000]
    patient.refresh_from_db()
    assert (patient.sex, patient.team_id) == ("other", team.pk)


def test_a_relapse_is_added_and_changed_through_the_services(admin, team, make_patient):
    # Relapses were read-only here; they now change through relapse_update, with the
    # checks of their creation (issue 11: the same validation on create and update).
    patient = make_patient(team)
    relapse = {
        "patient": patient.pk,
        "relapse_date": "2024-03-01",
        "relapse_number": "1",
        "prior_hsct": "false",
        "site": "isolated_bm",
        "em_sites": '["cns"]',
        "bm_blast_percent": "80",
        "immunophenotype": "B",
    }
    refused = admin.post("/admin/courses/relapse/add/", relapse)
    assert refused.status_code == 200
    assert "must be empty for site isolated_bm" in refused.content.decode()
    assert (
        admin.post("/admin/courses/relapse/add/", {**relapse, "em_sites": "[]"}).status_code == 302
    )
    stored = Relapse.objects.get(patient=patient)
    url = f"/admin/courses/relapse/{stored.pk}/change/"
    refused = admin.post(url, {**relapse, "em_sites": "[]", "relapse_date": "2021-12-01"})
    assert refused.status_code == 200
    assert "must not be before initial_diagnosis_date (2022-01-10)" in refused.content.decode()
    changed = admin.post(url, {**relapse, "em_sites": "[]", "bm_blast_percent": "60"})
    assert changed.status_code == 302, changed.content.decode()[:2000]
    stored.refresh_from_db()
    assert (stored.bm_blast_percent, stored.patient_id) == (60.0, patient.pk)
    # Issue 22: unknown is an answer here too (stored as null), and shows as unknown.
    unknown = {**relapse, "em_sites": "[]", "relapse_number": "unknown", "prior_hsct": "unknown"}
    assert admin.post(url, unknown).status_code == 302
    stored.refresh_from_db()
    assert (stored.relapse_number, stored.prior_hsct) == (None, None)
    page = admin.get(url).content.decode()
    assert 'name="relapse_number" value="unknown"' in page
    assert '<option value="unknown" selected>' in page


def test_a_relapse_added_in_the_admin_without_number_or_prior_hsct_is_refused_naming_them(
    admin, team, make_patient
):
    patient = make_patient(team)
    refused = admin.post(
        "/admin/courses/relapse/add/",
        {
            "patient": patient.pk,
            "relapse_date": "2024-03-01",
            "site": "isolated_bm",
            "em_sites": "[]",
            "bm_blast_percent": "80",
            "immunophenotype": "B",
        },
    )
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "no earlier relapse of this patient is recorded here" in page
    assert "no transplant of this patient is recorded here" in page
    assert not Relapse.objects.filter(patient=patient).exists()


# --- change lists: a fixed number of queries ---------------------------------------------


def _course_with_everything(team: Any, actor: Any, make_course: Any) -> TreatmentCourse:
    # Induction given (R2, R1 from 2026-10-13): CR2 is judged no earlier than its end.
    course = make_course(team, actor, blocks=induction_blocks())
    now = timezone.now()
    services.course_transition(course, name="start_induction", actor=actor, now=now)
    services.assessment_record(
        course,
        data={"assessed_on": date(2026, 11, 21), "marrow": "M1", "cr2": True, "em_status": "none"},
        actor=actor,
        now=now,
    )
    services.mrd_record(
        course,
        data={
            "sampled_on": date(2026, 11, 21),
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": 0.0001,
        },
        actor=actor,
        now=now,
    )
    services.event_record(
        course,
        data={"kind": "secondary_malignancy", "occurred_on": date(2026, 11, 22)},
        actor=actor,
        now=now,
    )
    services.referral_save(course, data={"referred_on": date(2026, 11, 22)}, actor=actor, now=now)
    return course


# Queries per change list: session and user, the counts, the rows with what each row
# shows (select_related), and the filters' choices.
CHANGE_LISTS = {
    "courses/patient": 6,
    "courses/relapse": 5,
    "courses/treatmentcourse": 8,
    "courses/plannedstep": 5,
    "courses/auditentry": 7,
    "courses/blockadministration": 5,
    "courses/responseassessment": 5,
    "courses/mrdresult": 5,
    "courses/clinicalevent": 5,
    "courses/hsctreferral": 5,
    "stratification/stratificationdecision": 8,
}


@pytest.mark.parametrize(("path", "queries"), CHANGE_LISTS.items())
def test_change_lists_cost_the_same_queries_whatever_the_number_of_rows(
    admin, team, clinician, make_course, django_assert_num_queries, path, queries
):
    for _ in range(2):
        _course_with_everything(team, clinician, make_course)
    with django_assert_num_queries(queries):
        assert admin.get(f"/admin/{path}/").status_code == 200
    _course_with_everything(team, clinician, make_course)
    with django_assert_num_queries(queries):
        assert admin.get(f"/admin/{path}/").status_code == 200


# --- corrections ------------------------------------------------------------------


def test_the_admin_voids_and_amends_through_the_same_services(
    admin, staff, team, clinician, make_course
):
    course = make_course(team, clinician)
    block = services.block_record(
        course,
        data={"block_type": "R2", "start_date": date(2026, 11, 23)},
        actor=clinician,
        now=timezone.now(),
    )
    page = f"/admin/courses/blockadministration/{block.pk}/change/"
    form = {
        "block_type": "R2",
        "start_date": "2026-11-24",
        "end_date": "",
        "delay_reason": "",
        "void_reason": "",
        "amend_reason": "",
    }
    # The admin is a channel like any other: an amendment says why.
    unexplained = admin.post(page, form)
    assert unexplained.status_code == 200
    assert "is required to amend a record (start_date changed)" in unexplained.content.decode()
    assert not AuditEntry.objects.filter(action="amended").exists()
    form["amend_reason"] = "began a day later than typed"
    assert admin.post(page, form).status_code == 302
    entry = AuditEntry.objects.filter(action="amended", actor=staff).get()
    assert entry.data == {
        "before": {"start_date": "2026-11-23"},
        "after": {"start_date": "2026-11-24"},
        "reason": "began a day later than typed",
    }
    both = admin.post(page, {**form, "start_date": "2026-11-22", "void_reason": "duplicate"})
    assert both.status_code == 200
    assert "void or amend the record, not both at once." in both.content.decode()
    assert admin.post(page, {**form, "void_reason": "duplicate"}).status_code == 302
    block = BlockAdministration.with_voided.get(pk=block.pk)
    assert (block.void_reason, block.voided_by) == ("duplicate", staff)
    # Listed, marked, read-only afterwards.
    listing = admin.get("/admin/courses/blockadministration/")
    assert listing.status_code == 200 and f"/{block.pk}/change/" in listing.content.decode()
    assert admin.post(page, form).status_code == 403
