"""Clinical records and planned steps: impossible values are 400s naming the field,
and recording what happened moves the schedule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from courses.models import AuditEntry, BlockAdministration, PlannedStep
from tests.conftest import induction_blocks

pytestmark = pytest.mark.django_db


def url(course, suffix):
    return f"/api/v1/courses/{course.pk}/{suffix}/"


@pytest.fixture
def course(team, clinician, make_course):
    return make_course(team, clinician)


@pytest.fixture
def client(api, clinician):
    return api(clinician)


@pytest.mark.parametrize(
    ("suffix", "body", "field"),
    [
        ("blocks", {"block_type": "R2", "start_date": "2024-02-01"}, "start_date"),
        ("blocks", {"block_type": "R2", "start_date": "2026-11-25"}, "start_date"),
        (
            "blocks",
            {"block_type": "R2", "start_date": "2026-11-20", "end_date": "2026-11-19"},
            "end_date",
        ),
        ("blocks", {"block_type": "R2", "start_date": "not-a-date"}, "start_date"),
        (
            "assessments",
            {"assessed_on": "2026-12-01", "marrow": "M1", "cr2": True, "em_status": "none"},
            "assessed_on",
        ),
        (
            "assessments",
            {"assessed_on": "2026-11-20", "marrow": "M3", "cr2": True, "em_status": "none"},
            "cr2",
        ),
        (
            "assessments",
            {"assessed_on": "2026-11-20", "marrow": "M4", "cr2": False, "em_status": "none"},
            "marrow",
        ),
        (
            "mrd",
            {
                "sampled_on": "2026-11-20",
                "time_point": "end_of_induction",
                "unit": "fraction",
                "value": 1.5,
            },
            "value",
        ),
        (
            "mrd",
            {
                "sampled_on": "2026-11-20",
                "time_point": "end_of_induction",
                "unit": "fraction",
                "value": -0.1,
            },
            "value",
        ),
        (
            "mrd",
            {
                "sampled_on": "2026-11-20",
                "time_point": "end_of_induction",
                "unit": "fraction",
                "value": 0.01,
                "sensitivity": 0,
            },
            "sensitivity",
        ),
        (
            "mrd",
            {
                "sampled_on": "2023-01-01",
                "time_point": "end_of_induction",
                "unit": "fraction",
                "value": 0.01,
            },
            "sampled_on",
        ),
        ("events", {"kind": "death", "occurred_on": "2030-01-01"}, "occurred_on"),
        ("events", {"kind": "abduction", "occurred_on": "2026-11-01"}, "kind"),
    ],
)
def test_impossible_values_are_a_400_naming_the_field_and_store_nothing(
    client, course, suffix, body, field
):
    audit_before = AuditEntry.objects.count()
    response = client.post(url(course, suffix), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert AuditEntry.objects.count() == audit_before
    assert client.get(url(course, suffix)).json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"referred_on": "2024-01-01"}, "referred_on"),
        ({"referred_on": "2026-11-20", "performed_on": "2026-11-19"}, "performed_on"),
        ({"referred_on": "2026-11-20", "planned_on": "2026-11-01"}, "planned_on"),
        ({"donor_search_status": "ongoing"}, "referred_on"),
        ({"referred_on": "2026-11-20", "donor_search_status": "maybe"}, "donor_search_status"),
    ],
)
def test_impossible_referrals_are_a_400(client, course, body, field):
    response = client.put(url(course, "hsct-referral"), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert client.get(url(course, "hsct-referral")).status_code == 404


def test_a_late_block_moves_later_due_dates_and_keeps_the_plan(client, course):
    steps = list(PlannedStep.objects.filter(course=course).order_by("sequence"))
    first_block = next(s for s in steps if s.kind == "block")
    later = [s for s in steps if s.sequence > first_block.sequence and s.anchor_key]
    assert later, "the template has steps anchored after the first block"
    # Record the first block 0 days late, then move the clock: the schedule follows.
    response = client.post(
        url(course, "blocks"),
        {
            "block_type": first_block.block_type,
            "start_date": "2026-11-24",
            "delay_reason": "",
        },
        format="json",
    )
    assert response.status_code == 201
    first_block.refresh_from_db()
    assert (first_block.status, first_block.done_on) == ("done", date(2026, 11, 24))

    second_block = next(s for s in steps if s.kind == "block" and s.sequence > first_block.sequence)
    second_block.refresh_from_db()
    planned = second_block.planned_on
    assert second_block.due_on == planned


def test_recording_a_block_late_shifts_the_rest_of_the_course(client, course, time_machine):
    first = PlannedStep.objects.filter(course=course, kind="block").order_by("sequence").first()
    following = list(
        PlannedStep.objects.filter(course=course, sequence__gt=first.sequence).order_by("sequence")
    )
    time_machine.move_to("2026-11-30T10:00:00+00:00", tick=False)
    client.post(
        url(course, "blocks"),
        {"block_type": first.block_type, "start_date": "2026-11-29", "delay_reason": "neutropenia"},
        format="json",
    )
    for step in following:
        before_due = step.due_on
        step.refresh_from_db()
        # Everything downstream of the first block is five days later than planned
        # (steps anchored to the course start would not move; the templates anchor all
        # later steps on earlier ones).
        assert step.due_on == before_due + timedelta(days=5), step.key
        assert step.planned_on == before_due
    timeline = client.get(f"/api/v1/courses/{course.pk}/timeline/").json()
    assert timeline["cumulative_delay_days"] == 5


def test_a_clinician_reschedules_skips_and_adds_steps_with_reasons(client, course):
    steps = list(PlannedStep.objects.filter(course=course).order_by("sequence"))
    target = steps[1]
    no_reason = client.patch(
        url(course, f"steps/{target.pk}"), {"due_on": "2026-12-30"}, format="json"
    )
    assert no_reason.status_code == 400
    assert "reason" in no_reason.json()["error"]["fields"]
    moved = client.patch(
        url(course, f"steps/{target.pk}"),
        {"due_on": "2026-12-30", "reason": "family holiday"},
        format="json",
    )
    assert moved.status_code == 200
    assert moved.json()["due_on"] == "2026-12-30"
    assert moved.json()["planned_on"] == target.planned_on.isoformat()

    skip = client.patch(url(course, f"steps/{steps[2].pk}"), {"status": "skipped"}, format="json")
    assert skip.status_code == 400
    skip = client.patch(
        url(course, f"steps/{steps[2].pk}"),
        {"status": "skipped", "reason": "not needed per tumour board"},
        format="json",
    )
    assert skip.json()["status"] == "skipped"

    added = client.post(
        url(course, "steps"),
        {"kind": "mrd", "mrd_time_point": "post_hsct", "after": steps[0].key, "offset_days": 7},
        format="json",
    )
    assert added.status_code == 201, added.content
    assert added.json()["sequence"] == 1
    actions = list(AuditEntry.objects.filter(course=course).values_list("action", flat=True))
    assert actions.count("step_updated") == 2
    assert "step_added" in actions


def test_every_record_write_leaves_an_audit_entry(client, team, clinician, make_course):
    # Induction given, so the CR2 below comes after its end (2026-11-08).
    course = make_course(team, clinician, blocks=induction_blocks())
    before = AuditEntry.objects.filter(course=course).count()
    client.post(
        url(course, "blocks"), {"block_type": "R2", "start_date": "2026-11-24"}, format="json"
    )
    client.post(
        url(course, "assessments"),
        {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "none"},
        format="json",
    )
    client.post(
        url(course, "mrd"),
        {"sampled_on": "2026-11-24", "time_point": "pre_hsct", "unit": "fraction", "value": 0.0001},
        format="json",
    )
    client.put(url(course, "hsct-referral"), {"referred_on": "2026-11-24"}, format="json")
    client.post(
        url(course, "events"),
        {"kind": "secondary_malignancy", "occurred_on": "2026-11-24"},
        format="json",
    )
    entries = AuditEntry.objects.filter(course=course).order_by("id")[before:]
    assert [e.target for e in entries] == [
        "BlockAdministration",
        "ResponseAssessment",
        "MrdResult",
        "HsctReferral",
        "ClinicalEvent",
    ]
    assert all(e.actor == clinician for e in entries)
    audit = client.get(f"/api/v1/courses/{course.pk}/audit/").json()
    assert audit["count"] == before + 5


def test_a_testicular_relapse_is_refused_for_a_female_patient(api, team, clinician, make_patient):
    patient = make_patient(team, sex="female")
    response = api(clinician).post(
        "/api/v1/relapses/",
        {
            "patient": patient.pk,
            "relapse_date": "2024-03-01",
            "site": "combined",
            "em_sites": ["testis"],
            "bm_blast_percent": 30,
            "relapse_number": 1,
            "prior_hsct": False,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "em_sites" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"relapse_date": "2021-01-01"}, "relapse_date"),  # before diagnosis
        ({"relapse_date": "2027-01-01"}, "relapse_date"),  # in the future
        ({"site": "isolated_bm", "em_sites": ["cns"]}, "em_sites"),
        ({"site": "isolated_em", "em_sites": []}, "em_sites"),
        ({"site": "isolated_bm", "bm_blast_percent": 3}, "bm_blast_percent"),  # M1 marrow
        ({"site": "nowhere"}, "site"),
        ({"bm_blast_percent": 101}, "bm_blast_percent"),
    ],
)
def test_impossible_relapses_are_a_400(api, team, clinician, make_patient, body, field):
    patient = make_patient(team)
    data = {
        "patient": patient.pk,
        "relapse_date": "2024-03-01",
        "site": "isolated_bm",
        "em_sites": [],
        "bm_blast_percent": 50,
        "relapse_number": 1,
        "prior_hsct": False,
        **body,
    }
    response = api(clinician).post("/api/v1/relapses/", data, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_a_duplicate_patient_reference_is_a_400(api, team, clinician, make_patient):
    make_patient(team, reference="NORTH-7")
    response = api(clinician).post(
        "/api/v1/patients/",
        {
            "team": team.pk,
            "reference": "NORTH-7",
            "birth_year": 2014,
            "sex": "male",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2021-05-03",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "reference" in response.json()["error"]["fields"]


def test_a_reference_that_looks_like_a_name_with_spaces_is_refused(api, team, clinician):
    response = api(clinician).post(
        "/api/v1/patients/",
        {
            "team": team.pk,
            "reference": "Anna Schmidt",
            "birth_year": 2014,
            "sex": "female",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2021-05-03",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "reference" in response.json()["error"]["fields"]


def test_records_on_a_closed_course_are_a_409(api, team, clinician, make_course):
    course = make_course(team, clinician)
    client = api(clinician)
    client.post(
        f"/api/v1/courses/{course.pk}/transitions/",
        {
            "transition": "take_off_protocol",
            "reason": "family moved abroad",
            "off_protocol_reason": "lost_to_follow_up",
        },
        format="json",
    )
    response = client.post(
        url(course, "blocks"), {"block_type": "R2", "start_date": "2026-11-24"}, format="json"
    )
    assert response.status_code == 409
    assert BlockAdministration.objects.filter(course=course).count() == 0


def test_cr2_after_a_cns_relapse_needs_the_extramedullary_status_assessed(
    client, team, clinician, make_course
):
    # Ponte-di-Legno consensus (Buchmann et al., Blood 2022): remission is judged at
    # every site the relapse involved.
    cns = make_course(
        team,
        clinician,
        site="isolated_em",
        em_sites=["cns"],
        bm_blast_percent=1.0,
        blocks=induction_blocks(),  # CR2 is judged no earlier than the end of induction
    )
    body = {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "not_assessed"}
    refused = client.post(url(cns, "assessments"), body, format="json")
    assert refused.status_code == 400
    [message] = refused.json()["error"]["fields"]["em_status"]
    assert "must be assessed for CR2: the relapse involved cns" in message
    assert client.get(url(cns, "assessments")).json()["count"] == 0
    no_cr2 = {**body, "cr2": False}
    assert client.post(url(cns, "assessments"), no_cr2, format="json").status_code == 201
    assessed = {**body, "em_status": "none"}
    assert client.post(url(cns, "assessments"), assessed, format="json").status_code == 201


def test_cr2_after_an_isolated_marrow_relapse_needs_no_extramedullary_assessment(
    client, team, clinician, make_course
):
    course = make_course(team, clinician, blocks=induction_blocks())  # induction ended 2026-11-08
    body = {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "not_assessed"}
    assert client.post(url(course, "assessments"), body, format="json").status_code == 201
