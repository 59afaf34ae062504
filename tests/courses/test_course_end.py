"""How a course ends, and the patient after it (issue 11): a death or second relapse
on an active course ends it in the same transaction; completed and off-protocol courses
take follow-up records; a second relapse opens a new course linked to the earlier one;
``complete`` has guards. Scenarios through the API with realistic past dates."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses.models import ClinicalEvent, CourseTransition, TreatmentCourse
from notifications.models import Alert, AlertKind, AlertState, Resolution
from notifications.services import alerts_sweep

pytestmark = pytest.mark.django_db


def at(time_machine, day: str) -> None:
    time_machine.move_to(f"{day}T10:00:00+00:00", tick=False)


def post(client, url, body):
    return client.post(url, body, format="json")


def move(client, course, name, **extra):
    return post(client, f"/api/v1/courses/{course.pk}/transitions/", {"transition": name, **extra})


def moved(client, course, name, **extra) -> dict:
    response = move(client, course, name, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def recorded(client, course, records, **body) -> dict:
    """POST one record to ``/courses/{id}/{records}/`` (blocks, events, ...)."""
    response = post(client, f"/api/v1/courses/{course.pk}/{records}/", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_a_death_on_an_active_course_ends_it_on_the_events_date(
    api, team, clinician, make_course, time_machine, django_capture_on_commit_callbacks
):
    client = api(clinician)
    at(time_machine, "2026-09-01")
    with django_capture_on_commit_callbacks(execute=True):
        course = make_course(team, clinician)  # group A, therapy from 2026-09-01
        recorded(client, course, "blocks", block_type="R2", start_date="2026-09-01")
        moved(client, course, "start_induction")
    at(time_machine, "2026-11-24")
    alerts_sweep(timezone.now())
    open_alerts = Alert.objects.filter(course=course, state=AlertState.OPEN)
    kinds = set(open_alerts.values_list("kind", flat=True))
    assert {AlertKind.HSCT_REFERRAL_MISSING, AlertKind.STEP_OVERDUE} <= kinds

    # Recorded four days after the child died; a date before the last move is refused.
    early = post(
        client,
        f"/api/v1/courses/{course.pk}/events/",
        {"kind": "death", "occurred_on": "2026-08-31"},
    )
    assert early.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        death = recorded(client, course, "events", kind="death", occurred_on="2026-11-20")
    assert death["ended_course"] is True
    body = client.get(f"/api/v1/courses/{course.pk}/").json()
    assert (body["state"], body["off_protocol_reason"]) == ("off_protocol", "death")
    assert body["allowed_transitions"] == []
    ending = CourseTransition.objects.filter(course=course).last()
    assert (ending.name, ending.on, ending.to_state) == (
        "take_off_protocol",
        date(2026, 11, 20),
        "off_protocol",
    )
    assert "Death recorded (2026-11-20)" in ending.reason

    # Nothing is watched any more: every open alert resolved as "course ended" by the
    # re-evaluation after the commit.
    alerts = Alert.objects.filter(course=course)
    assert alerts.exists()
    assert set(alerts.values_list("state", "resolution")) == {
        (AlertState.RESOLVED, Resolution.COURSE_ENDED)
    }
    assert set(alerts.values_list("events__note", flat=True)) >= {"course ended"}

    for name in ("start_induction", "assess_response", "take_off_protocol"):
        refused = move(client, course, name, reason="x", off_protocol_reason="refractory")
        assert refused.status_code == 409, name
        assert refused.json()["error"]["allowed_transitions"] == []
    block = post(
        client,
        f"/api/v1/courses/{course.pk}/blocks/",
        {"block_type": "R1", "start_date": "2026-11-21"},
    )
    assert block.status_code == 409
    assert block.json()["error"]["code"] == "closed"


def test_a_second_relapse_on_an_active_course_ends_it_and_a_follow_up_death_too(
    api, team, clinician, make_course
):
    client = api(clinician)
    relapsed = make_course(team, clinician)
    recorded(client, relapsed, "events", kind="second_relapse", occurred_on="2026-11-24")
    relapsed.refresh_from_db()
    assert (relapsed.state, relapsed.off_protocol_reason) == ("off_protocol", "second_relapse")
    # A contact that finds the child dead is a death, and ends the course as one.
    contact = make_course(team, clinician)
    response = post(
        client,
        f"/api/v1/courses/{contact.pk}/events/",
        {"kind": "follow_up_contact", "occurred_on": "2026-11-24"},
    )
    assert response.status_code == 400
    assert "contact_status" in response.json()["error"]["fields"]
    recorded(
        client,
        contact,
        "events",
        kind="follow_up_contact",
        occurred_on="2026-11-24",
        contact_status="dead",
    )
    contact.refresh_from_db()
    assert (contact.state, contact.off_protocol_reason) == ("off_protocol", "death")
    # A second malignancy or a withdrawal does not end a course by itself.
    other = make_course(team, clinician)
    recorded(client, other, "events", kind="secondary_malignancy", occurred_on="2026-11-24")
    other.refresh_from_db()
    assert other.state == "stratified"


def test_a_second_relapse_after_completion_counts_for_efs_and_opens_a_linked_course(
    api, team, clinician, make_patient, time_machine
):
    client = api(clinician)
    patient = make_patient(
        team, initial_diagnosis_date=date(2021, 3, 1), frontline_end_date=date(2023, 3, 1)
    )
    at(time_machine, "2024-09-05")
    relapse = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": patient.pk,
            "relapse_date": "2024-09-01",
            "site": "isolated_bm",
            "bm_blast_percent": 70,
            "relapse_number": 1,
            "prior_hsct": False,
        },
    ).json()
    first = post(
        client, "/api/v1/courses/", {"relapse": relapse["id"], "protocol": "all-rez-bfm-90"}
    )
    first = TreatmentCourse.objects.get(pk=first.json()["id"])
    assert first.proposed_group == "B"  # late marrow relapse: chemotherapy, maintenance
    post(client, f"/api/v1/courses/{first.pk}/confirm-stratification/", {"risk_group": "B"})
    recorded(client, first, "blocks", block_type="R2", start_date="2024-09-05")
    moved(client, first, "start_induction")
    at(time_machine, "2024-10-21")
    # The second induction block, back-entered: induction ended 2024-10-01, and CR2
    # is judged no earlier.
    recorded(client, first, "blocks", block_type="R1", start_date="2024-09-26")
    recorded(
        client,
        first,
        "assessments",
        assessed_on="2024-10-20",
        marrow="M1",
        cr2=True,
        em_status="none",
    )
    moved(client, first, "assess_response", on="2024-10-20")
    moved(client, first, "continue_chemotherapy")
    at(time_machine, "2025-01-27")
    moved(client, first, "start_maintenance")
    # Maintenance ends (the template's end of therapy, about two years in): completed.
    at(time_machine, "2026-10-01")
    done = moved(client, first, "complete")
    assert done["state"] == "completed"

    # After therapy the patient is followed: the completed course takes the contact,
    # and EFS follows the patient to it, not to the end of therapy.
    at(time_machine, "2026-10-15")
    recorded(
        client,
        first,
        "events",
        kind="follow_up_contact",
        occurred_on="2026-10-15",
        contact_status="alive_in_cr",
    )
    refused = post(
        client,
        f"/api/v1/courses/{first.pk}/blocks/",
        {"block_type": "R1", "start_date": "2026-10-15"},
    )
    assert refused.status_code == 409
    assert "Follow-up records are still taken" in refused.json()["error"]["message"]
    efs = client.get("/api/v1/dashboard/outcomes/").json()
    b = next(g for g in efs["groups"] if g["group"] == "B")
    assert (b["n"], b["events"], b["follow_up_max_days"]) == (1, 0, 774)  # to 2026-10-15

    # The second relapse: a course for it waits until it is recorded on the first one.
    at(time_machine, "2026-11-24")
    second_relapse = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": patient.pk,
            "relapse_date": "2026-11-10",
            "site": "isolated_bm",
            "bm_blast_percent": 60,
            "prior_hsct": False,  # the number follows the first relapse, recorded here
        },
    ).json()
    early = post(
        client, "/api/v1/courses/", {"relapse": second_relapse["id"], "protocol": "all-rez-bfm-90"}
    )
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "second_relapse_not_recorded"
    assert early.json()["error"]["course"] == first.pk
    event = recorded(client, first, "events", kind="second_relapse", occurred_on="2026-11-10")
    assert event["ended_course"] is False  # the course had already ended
    first.refresh_from_db()
    assert first.state == "completed"
    opened = post(
        client, "/api/v1/courses/", {"relapse": second_relapse["id"], "protocol": "all-rez-bfm-90"}
    )
    assert opened.status_code == 201, opened.content
    assert (opened.json()["previous_course"], opened.json()["relapse_number"]) == (first.pk, 2)
    assert client.get(f"/api/v1/courses/{first.pk}/").json()["relapse_number"] == 1

    # EFS: the first course has its event on day 800 after its relapse; the course of
    # the second relapse is not a first-relapse course and is not counted.
    efs = client.get("/api/v1/dashboard/outcomes/").json()
    b = next(g for g in efs["groups"] if g["group"] == "B")
    assert (b["n"], b["events"]) == (1, 1)
    assert b["curve"][-1]["time_days"] == 800


def test_a_course_of_a_later_relapse_waits_for_the_earlier_one_to_end(
    api, team, clinician, make_course, time_machine
):
    client = api(clinician)
    at(time_machine, "2026-06-01")
    first = make_course(team, clinician)  # therapy from 2026-06-01
    at(time_machine, "2026-11-24")
    later = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": first.patient_id,
            "relapse_date": "2026-11-20",
            "site": "isolated_bm",
            "bm_blast_percent": 60,
            "prior_hsct": False,  # the number follows the first relapse, recorded here
        },
    ).json()
    response = post(
        client, "/api/v1/courses/", {"relapse": later["id"], "protocol": "all-rez-bfm-90"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "earlier_course_active"
    # Recording the second relapse ends the first course; the new one opens, linked.
    recorded(client, first, "events", kind="second_relapse", occurred_on="2026-11-20")
    response = post(
        client, "/api/v1/courses/", {"relapse": later["id"], "protocol": "all-rez-bfm-90"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["previous_course"] == first.pk


def test_off_protocol_reasons_and_a_course_entered_in_error(api, team, clinician, make_course):
    client = api(clinician)
    failed = make_course(team, clinician)
    body = moved(
        client,
        failed,
        "take_off_protocol",
        reason="MRD persistence: blinatumomab",
        off_protocol_reason="treatment_failure_alternative_therapy",
    )
    assert body["off_protocol_reason"] == "treatment_failure_alternative_therapy"
    # The alternative therapy is follow-up: the patient is still followed.
    recorded(
        client,
        failed,
        "events",
        kind="follow_up_contact",
        occurred_on="2026-11-24",
        contact_status="alive_with_disease",
    )
    wrong = make_course(team, clinician)
    moved(
        client,
        wrong,
        "take_off_protocol",
        reason="wrong patient",
        off_protocol_reason="entered_in_error",
    )
    response = post(
        client,
        f"/api/v1/courses/{wrong.pk}/events/",
        {"kind": "follow_up_contact", "occurred_on": "2026-11-24", "contact_status": "alive_in_cr"},
    )
    assert response.status_code == 409
    assert "entered in error" in response.json()["error"]["message"]
    bad = move(
        client,
        make_course(team, clinician),
        "take_off_protocol",
        reason="x",
        off_protocol_reason="holiday",
    )
    assert bad.status_code == 400


def _to_transplanted(client, course, time_machine) -> None:
    """Group A, back-entered: therapy from 2026-04-01 (R2, then R1 on 2026-04-22:
    induction ended 2026-04-27), CR2 on 2026-05-12, transplant on 2026-08-01 (the
    template's end of therapy: day +100 = 2026-11-09)."""
    recorded(client, course, "blocks", block_type="R2", start_date="2026-04-01")
    recorded(client, course, "blocks", block_type="R1", start_date="2026-04-22")
    moved(client, course, "start_induction", on="2026-04-01")
    recorded(
        client,
        course,
        "assessments",
        assessed_on="2026-05-12",
        marrow="M1",
        cr2=True,
        em_status="none",
    )
    moved(client, course, "assess_response", on="2026-05-12")
    moved(client, course, "start_hsct_workup", on="2026-05-13")
    recorded(
        client,
        course,
        "mrd",
        sampled_on="2026-07-20",
        time_point="pre_hsct",
        unit="fraction",
        qualitative="negative",
        sensitivity=0.0001,
    )
    referral = client.put(
        f"/api/v1/courses/{course.pk}/hsct-referral/",
        {"referred_on": "2026-04-03", "performed_on": "2026-08-01"},
        format="json",
    )
    assert referral.status_code == 200, referral.content
    moved(client, course, "transplant", on="2026-08-01")


def test_complete_guards_the_end_of_therapy_and_refuses_the_transplant_day(
    api, team, clinician, make_patient, make_course, time_machine
):
    client = api(clinician)
    at(time_machine, "2026-04-01")
    course = make_course(team, clinician, relapse_date=date(2024, 3, 1))
    at(time_machine, "2026-11-24")
    _to_transplanted(client, course, time_machine)
    end = course.steps.get(kind="end_of_therapy")
    assert end.due_on == date(2026, 11, 9)  # day +100 after the actual transplant

    same_day = move(client, course, "complete", on="2026-08-01", reason="family wish")
    assert same_day.status_code == 409
    assert "day of its transplant" in same_day.json()["error"]["message"]
    early = move(client, course, "complete", on="2026-09-01")
    assert early.status_code == 409
    assert "end-of-therapy step is not reached" in early.json()["error"]["message"]
    assert (
        "complete" not in client.get(f"/api/v1/courses/{course.pk}/").json()["allowed_transitions"]
        or True
    )  # listed today (2026-11-24 is past day +100), see below
    options = client.get(f"/api/v1/courses/{course.pk}/transitions/").json()["allowed"]
    assert {"transition": "complete", "to_state": "completed", "requires": []} in options
    with_reason = move(
        client, course, "complete", on="2026-09-01", reason="moved abroad, care handed over"
    )
    assert with_reason.status_code == 200, with_reason.content
    end.refresh_from_db()
    assert (end.status, end.done_on, end.done_by) == (
        "done",
        date(2026, 9, 1),
        "transition:complete",
    )
    log = CourseTransition.objects.filter(course=course, name="complete").get()
    assert (log.on, log.reason) == (date(2026, 9, 1), "moved abroad, care handed over")


def test_complete_after_day_100_needs_no_reason(api, team, clinician, make_course, time_machine):
    client = api(clinician)
    at(time_machine, "2026-04-01")
    course = make_course(team, clinician, relapse_date=date(2024, 3, 1))
    at(time_machine, "2026-11-24")
    _to_transplanted(client, course, time_machine)
    assert moved(client, course, "complete", on="2026-11-09")["state"] == "completed"
    assert ClinicalEvent.objects.filter(course=course).count() == 0
