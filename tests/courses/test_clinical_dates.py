"""Clinical dates everywhere (issue 11): a course starts the day therapy began, every
transition carries the day it happened, records entered in any order (and before the
confirmation) close their planned steps, and the alert rules judge a back-entered
course by those dates at once. Scenarios through the API, with realistic past dates;
"today" is 2026-11-24."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses.models import CourseTransition, PlannedStep, TreatmentCourse
from notifications.models import AlertKind, AlertState
from notifications.services import alerts_sweep
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


def post(client, url, body):
    return client.post(url, body, format="json")


def move(client, course, name, **extra):
    return post(client, f"/api/v1/courses/{course.pk}/transitions/", {"transition": name, **extra})


def record(client, course, kind, **body):
    response = post(client, f"/api/v1/courses/{course.pk}/{kind}/", body)
    assert response.status_code == 201, response.content
    return response.json()


def steps_of(course) -> dict[str, PlannedStep]:
    return {s.key: s for s in PlannedStep.objects.filter(course=course)}


def open_course(client, team, **relapse) -> TreatmentCourse:
    """A group-A relapse (ALL-REZ BFM 90: early isolated marrow relapse, HSCT indicated)
    of a child diagnosed 2024-06-01 whose front-line therapy ended 2026-06-01."""
    patient = post(
        client,
        "/api/v1/patients/",
        {
            "team": team.pk,
            "reference": "NORTH-0101",
            "birth_year": 2014,
            "sex": "female",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2024-06-01",
            "frontline_protocol": "AIEOP-BFM ALL 2017",
            "frontline_end_date": "2026-06-01",
        },
    )
    assert patient.status_code == 201, patient.content
    made = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": patient.json()["id"],
            "relapse_date": "2026-08-20",
            "site": "isolated_bm",
            "em_sites": [],
            "bm_blast_percent": 85,
            "relapse_number": 1,
            "prior_hsct": False,
            **relapse,
        },
    )
    assert made.status_code == 201, made.content
    course = post(
        client, "/api/v1/courses/", {"relapse": made.json()["id"], "protocol": "all-rez-bfm-90"}
    )
    assert course.status_code == 201, course.content
    assert course.json()["proposed_group"] == "A"
    return TreatmentCourse.objects.get(pk=course.json()["id"])


def test_a_high_risk_course_back_entered_90_days_after_its_start_is_judged_by_its_dates(
    api, team, clinician, django_capture_on_commit_callbacks
):
    client = api(clinician)
    # Each request commits on its own in production; running its after-commit callbacks
    # here stands for that (the per-course re-evaluation among them).
    with django_capture_on_commit_callbacks(execute=True):
        course = open_course(client, team)
    # Therapy began 2026-08-26, 90 days ago; the team types the course in today.
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = post(
            client,
            f"/api/v1/courses/{course.pk}/confirm-stratification/",
            {"risk_group": "A", "start_date": "2026-08-26"},
        )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["start_date"] == "2026-08-26"
    steps = steps_of(course)
    # The protocol plan counts from the clinical start, not from today.
    assert steps["block_1"].planned_on == date(2026, 8, 26)
    assert steps["block_2"].planned_on == date(2026, 9, 16)
    assert steps["response"].planned_on == date(2026, 10, 7)
    history = client.get(f"/api/v1/courses/{course.pk}/transitions/").json()["history"]
    assert [(h["name"], h["on"]) for h in history] == [("stratify", "2026-08-26")]
    assert history[0]["at"].startswith("2026-11-24")  # when it was typed in

    # The re-evaluation after the confirmation: no referral 14 days after the start ->
    # the high alert at once, dated from the clinical start (due since 2026-09-09), not
    # 14 days from now. The next sweep agrees (and opens nothing twice).
    [missing] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    assert (missing.severity, missing.condition_since) == ("high", date(2026, 9, 9))
    alerts_sweep(timezone.now())
    assert unresolved(course, AlertKind.HSCT_REFERRAL_MISSING) == [missing]
    assert "after the start of therapy (2026-08-26)" in missing.message
    overdue = {a.subject for a in unresolved(course, AlertKind.STEP_OVERDUE)}
    assert f"step:{steps['block_1'].pk}" in overdue

    # Back-entry in any order: the second block first, then the first.
    with django_capture_on_commit_callbacks(execute=True):
        record(client, course, "blocks", block_type="R1", start_date="2026-09-17")
        record(client, course, "blocks", block_type="R2", start_date="2026-08-26")
        record(
            client,
            course,
            "assessments",
            assessed_on="2026-10-08",
            marrow="M1",
            cr2=True,
            em_status="none",
        )
        referral = client.put(
            f"/api/v1/courses/{course.pk}/hsct-referral/",
            {"referred_on": "2026-09-04", "donor_search_status": "ongoing"},
            format="json",
        )
        assert referral.status_code == 200, referral.content
    steps = steps_of(course)
    assert (steps["block_1"].status, steps["block_1"].done_on) == ("done", date(2026, 8, 26))
    assert (steps["block_2"].status, steps["block_2"].done_on) == ("done", date(2026, 9, 17))
    assert steps["block_1"].done_by.startswith("block:")
    # Later due dates follow what happened: block 2 one day late moves the response.
    assert steps["response"].due_on == date(2026, 10, 8)
    assert steps["response"].done_on == date(2026, 10, 8)
    # "Later than the protocol plan from the clinical start": 0 and 1 day, never the
    # nonsense negatives of a plan counted from the typing day.
    api_steps = client.get(f"/api/v1/courses/{course.pk}/steps/").json()["results"]
    delays = {s["key"]: s["delay_days"] for s in api_steps}
    assert delays["block_1"] == 0 and delays["block_2"] == 1 and delays["response"] == 1
    assert min(delays.values()) >= 0
    # The largest delay of any step: the referral, 9 days after its plan (the day of
    # the first block), inside its 14 days' grace.
    timeline = client.get(f"/api/v1/courses/{course.pk}/timeline/").json()
    assert timeline["cumulative_delay_days"] == 9
    summary = client.get("/api/v1/dashboard/summary/").json()["delays"]
    assert summary["block_delay"] == {"count": 2, "median_days": 0.5, "p90_days": 0.9}
    assert summary["hsct_referral"]["median_days"] == 9.0  # 2026-08-26 -> 2026-09-04

    # The per-course re-evaluation (after commit) judged the records by their dates: the
    # referral alert cleared, the first block is no longer overdue.
    missing.refresh_from_db()
    assert (missing.state, missing.resolution) == (AlertState.RESOLVED, "condition_cleared")
    overdue = {a.subject for a in unresolved(course, AlertKind.STEP_OVERDUE)}
    assert f"step:{steps['block_1'].pk}" not in overdue

    # The moves are dated too, back to when they happened, in order.
    assert move(client, course, "start_induction", on="2026-08-26").status_code == 200
    future = move(client, course, "assess_response", on="2026-11-25")
    assert future.status_code == 400
    assert future.json()["error"]["fields"]["on"] == [
        "must not be in the future (today is 2026-11-24)."
    ]
    earlier = move(client, course, "assess_response", on="2026-08-25")
    assert earlier.status_code == 400
    assert (
        "previous move (start_induction on 2026-08-26)"
        in earlier.json()["error"]["fields"]["on"][0]
    )
    assert move(client, course, "assess_response", on="2026-10-08").status_code == 200
    ons = list(CourseTransition.objects.filter(course=course).values_list("name", "on"))
    assert ons == [
        ("stratify", date(2026, 8, 26)),
        ("start_induction", date(2026, 8, 26)),
        ("assess_response", date(2026, 10, 8)),
    ]
    entries = [e for e in timeline_entries(client, course) if e["type"] == "transition"]
    assert [e["date"] for e in entries] == ["2026-08-26", "2026-08-26", "2026-10-08"]


def timeline_entries(client, course) -> list[dict]:
    return client.get(f"/api/v1/courses/{course.pk}/timeline/").json()["entries"]


def test_blocks_recorded_before_the_confirmation_are_linked_when_the_schedule_is_laid_out(
    api, team, clinician
):
    client = api(clinician)
    course = open_course(client, team)
    # The group waits for the tumour board; the blocks are given and recorded meanwhile.
    first = record(client, course, "blocks", block_type="R2", start_date="2026-09-01")
    record(client, course, "blocks", block_type="R1", start_date="2026-09-23")
    url = f"/api/v1/courses/{course.pk}/confirm-stratification/"
    too_late = post(client, url, {"risk_group": "A", "start_date": "2026-09-02"})
    assert too_late.status_code == 400
    assert too_late.json()["error"]["fields"]["start_date"] == [
        "must not be after the first recorded block (R2 on 2026-09-01): therapy began "
        "with it at the latest."
    ]
    future = post(client, url, {"risk_group": "A", "start_date": "2026-11-25"})
    assert "must not be in the future" in future.json()["error"]["fields"]["start_date"][0]
    before = post(client, url, {"risk_group": "A", "start_date": "2026-08-19"})
    assert "before the relapse date" in before.json()["error"]["fields"]["start_date"][0]
    assert TreatmentCourse.objects.get(pk=course.pk).state == "registered"

    # No start date given: therapy began with the first recorded block.
    confirmed = post(client, url, {"risk_group": "A"})
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["start_date"] == "2026-09-01"
    steps = steps_of(course)
    assert (steps["block_1"].status, steps["block_1"].done_on) == ("done", date(2026, 9, 1))
    assert steps["block_1"].done_by == f"block:{first['id']}"
    assert (steps["block_2"].status, steps["block_2"].done_on) == ("done", date(2026, 9, 23))
    # block 2 was planned for day 21 (2026-09-22): one day late, and what follows moved.
    assert steps["block_2"].delay_days == 1
    assert steps["response"].due_on == date(2026, 10, 14)


def test_without_a_start_date_or_blocks_the_course_starts_today(api, team, clinician):
    client = api(clinician)
    course = open_course(client, team)
    confirmed = post(
        client, f"/api/v1/courses/{course.pk}/confirm-stratification/", {"risk_group": "A"}
    )
    assert confirmed.json()["start_date"] == "2026-11-24"


def test_blocks_come_from_the_courses_protocol(api, team, clinician, make_course):
    client = api(clinician)
    bfm90 = make_course(team, clinician)
    bfm2002 = make_course(team, clinician, protocol="all-rez-bfm-2002")
    for course, block, ok in [
        (bfm90, "R3", True),
        (bfm90, "F1", False),
        (bfm90, "R4", False),
        (bfm2002, "F1", True),
        (bfm2002, "R3", False),
    ]:
        response = post(
            client,
            f"/api/v1/courses/{course.pk}/blocks/",
            {"block_type": block, "start_date": "2026-11-24"},
        )
        assert (response.status_code == 201) is ok, (course.protocol_slug, block)
        if not ok:
            message = response.json()["error"]["fields"]["block_type"][0]
            expected = "R1, R2, R3" if course is bfm90 else "F1, F2, R1, R2"
            assert message == f"must be one of this protocol's blocks: {expected}."
    added = post(
        client,
        f"/api/v1/courses/{bfm90.pk}/steps/",
        {"kind": "block", "block_type": "X9", "offset_days": 7},
    )
    assert added.status_code == 400
    assert "block_type" in added.json()["error"]["fields"]


def test_a_step_patch_keeps_the_protocols_note_beside_the_teams_reason(
    api, team, clinician, make_course
):
    course = make_course(team, clinician)
    step = PlannedStep.objects.get(course=course, key="block_2")
    note = step.note
    assert note  # the protocol's basis
    response = api(clinician).patch(
        f"/api/v1/courses/{course.pk}/steps/{step.pk}/",
        {"due_on": "2026-12-20", "reason": "count recovery"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert (response.json()["note"], response.json()["team_reason"]) == (note, "count recovery")
    [entry] = [
        e
        for e in timeline_entries(api(clinician), course)
        if e["type"] == "step" and e["key"] == "block_2"
    ]
    assert (entry["note"], entry["team_reason"]) == (note, "count recovery")


def test_a_step_closed_by_a_record_is_corrected_through_the_record(
    api, team, clinician, make_course
):
    course = make_course(team, clinician)
    client = api(clinician)
    record(client, course, "blocks", block_type="R2", start_date="2026-11-24")
    step = PlannedStep.objects.get(course=course, key="block_1")
    response = client.patch(
        f"/api/v1/courses/{course.pk}/steps/{step.pk}/",
        {"status": "planned"},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "closed_by_record"
    assert "amend or void that record instead" in response.json()["error"]["message"]


def test_alert_texts_say_why_a_due_date_is_not_the_plan(
    api, team, clinician, make_course, time_machine
):
    course = make_course(team, clinician)  # started 2026-11-24
    client = api(clinician)
    # Block 2 brought forward by the team; what follows it moves with it.
    block_2 = PlannedStep.objects.get(course=course, key="block_2")
    response = client.patch(
        f"/api/v1/courses/{course.pk}/steps/{block_2.pk}/",
        {"due_on": "2026-12-10", "reason": "ward closed"},
        format="json",
    )
    assert response.status_code == 200
    record(client, course, "blocks", block_type="R2", start_date="2026-11-24")
    time_machine.move_to("2027-01-20T10:00:00+00:00", tick=False)
    alerts_sweep(timezone.now())
    texts = {a.subject: a.message for a in unresolved(course, AlertKind.STEP_OVERDUE)}
    block_2_text = texts[f"step:{block_2.pk}"]
    assert (
        "was due 2026-12-10 (rescheduled by the team; the protocol plan from the start "
        "was 2026-12-15)" in block_2_text
    )
    response_step = PlannedStep.objects.get(course=course, key="response")
    # The response follows block 2's new date: 5 days before its plan, and says why.
    assert (
        "was due 2026-12-31 (5 days before the protocol plan from the start, 2027-01-05, "
        "following the actual or rescheduled dates of earlier steps)"
    ) in texts[f"step:{response_step.pk}"]
