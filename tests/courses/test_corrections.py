"""Corrections without losing anything (issue 11): a record entered wrongly is voided
with a reason (kept, shown as voided, ignored by the schedule, guards, rules and
figures) or amended with a reason (the old values and the reason in the audit trail),
through the API and the admin alike (the admin's side is in test_admin.py). Never
deleted."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses.models import (
    AuditEntry,
    BlockAdministration,
    HsctReferral,
    MrdResult,
    PlannedStep,
    TreatmentCourse,
)
from notifications.models import AlertKind
from notifications.services import alerts_sweep
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


def at(time_machine, day: str) -> None:
    time_machine.move_to(f"{day}T10:00:00+00:00", tick=False)


def post(client, url, body):
    return client.post(url, body, format="json")


def url(course, path: str) -> str:
    return f"/api/v1/courses/{course.pk}/{path}"


def test_a_voided_block_counts_for_nothing_and_stays_on_the_record(
    api, team, clinician, viewer, make_course, time_machine
):
    client = api(clinician)
    at(time_machine, "2026-10-01")
    course = make_course(team, clinician)  # group A, therapy from 2026-10-01
    # The block was typed on the wrong child's course.
    block = post(client, url(course, "blocks/"), {"block_type": "R2", "start_date": "2026-10-01"})
    assert block.status_code == 201
    block = block.json()
    assert (
        post(client, url(course, "transitions/"), {"transition": "start_induction"}).status_code
        == 200
    )
    step = PlannedStep.objects.get(course=course, key="block_1")
    assert step.status == "done"

    at(time_machine, "2026-11-24")
    no_reason = post(client, url(course, f"blocks/{block['id']}/void/"), {"reason": " "})
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["fields"] == {"reason": ["is required to void a record."]}
    assert (
        api(viewer).post(url(course, f"blocks/{block['id']}/void/"), {"reason": "x"}).status_code
        == 403
    )
    voided = post(client, url(course, f"blocks/{block['id']}/void/"), {"reason": "wrong patient"})
    assert voided.status_code == 200, voided.content
    assert (voided.json()["voided"], voided.json()["void_reason"]) == (True, "wrong patient")
    assert voided.json()["voided_by"] == clinician.username

    # Kept and shown as voided: in the list, on its own, in the timeline.
    [listed] = client.get(url(course, "blocks/")).json()["results"]
    assert (listed["id"], listed["voided"]) == (block["id"], True)
    assert client.get(url(course, f"blocks/{block['id']}/")).json()["voided"] is True
    [entry] = [
        e for e in client.get(url(course, "timeline/")).json()["entries"] if e["type"] == "block"
    ]
    assert (entry["voided"], entry["void_reason"]) == (True, "wrong patient")
    assert BlockAdministration.with_voided.filter(pk=block["id"]).exists()
    assert not BlockAdministration.objects.filter(pk=block["id"]).exists()
    actions = list(
        AuditEntry.objects.filter(course=course, target="BlockAdministration").values_list(
            "action", flat=True
        )
    )
    assert actions == ["recorded", "voided"]

    # Ignored by the schedule (the step reopens), the guards, the rules, the figures.
    step.refresh_from_db()
    assert (step.status, step.done_on, step.done_by) == ("planned", None, "")
    refused = post(client, url(course, "transitions/"), {"transition": "assess_response"})
    assert refused.status_code == 409
    assert "no chemotherapy block has been recorded" in refused.json()["error"]["message"]
    alerts_sweep(timezone.now())
    overdue = {a.subject for a in unresolved(course, AlertKind.STEP_OVERDUE)}
    assert f"step:{step.pk}" in overdue
    course.refresh_from_db()
    assert course.last_clinical_on == date(2026, 10, 1)  # the start and the move, not the block
    # Voided twice, or amended after: refused.
    again = post(client, url(course, f"blocks/{block['id']}/void/"), {"reason": "again"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "voided")
    amend = client.patch(
        url(course, f"blocks/{block['id']}/"), {"block_type": "R1", "reason": "x"}, format="json"
    )
    assert amend.status_code == 409
    # Never deleted.
    assert client.delete(url(course, f"blocks/{block['id']}/")).status_code == 405


def test_an_amended_record_keeps_its_old_values_in_the_audit(
    api, team, clinician, make_course, time_machine
):
    client = api(clinician)
    at(time_machine, "2026-10-01")
    course = make_course(team, clinician)
    block = post(
        client, url(course, "blocks/"), {"block_type": "R2", "start_date": "2026-10-01"}
    ).json()
    at(time_machine, "2026-11-24")
    # The block actually began two days later than typed.
    bad = client.patch(
        url(course, f"blocks/{block['id']}/"), {"start_date": "2026-11-25"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["start_date"] == [
        "must not be in the future (today is 2026-11-24)."
    ]
    wrong_type = client.patch(
        url(course, f"blocks/{block['id']}/"), {"block_type": "F1"}, format="json"
    )
    assert wrong_type.status_code == 400
    # Every amendment says why: without a reason it is refused, naming the reason.
    unexplained = client.patch(
        url(course, f"blocks/{block['id']}/"), {"start_date": "2026-10-03"}, format="json"
    )
    assert unexplained.status_code == 400
    assert list(unexplained.json()["error"]["fields"]) == ["reason"]
    amended = client.patch(
        url(course, f"blocks/{block['id']}/"),
        {"start_date": "2026-10-03", "reason": "started two days late, typed the plan"},
        format="json",
    )
    assert amended.status_code == 200, amended.content
    assert amended.json()["start_date"] == "2026-10-03"
    assert amended.json()["amended_at"].startswith("2026-11-24")
    assert amended.json()["recorded_at"].startswith("2026-10-01")
    entry = AuditEntry.objects.filter(course=course, action="amended").get()
    assert (entry.target, entry.target_id, entry.actor) == (
        "BlockAdministration",
        block["id"],
        clinician,
    )
    assert entry.data == {
        "before": {"start_date": "2026-10-01"},
        "after": {"start_date": "2026-10-03"},
        "reason": "started two days late, typed the plan",
    }
    # The schedule follows the amended date.
    step = PlannedStep.objects.get(course=course, key="block_1")
    assert (step.done_on, step.delay_days) == (date(2026, 10, 3), 2)
    assert PlannedStep.objects.get(course=course, key="block_2").due_on == date(2026, 10, 24)


def test_an_event_cannot_be_amended_into_another_kind(api, team, clinician, make_course):
    client = api(clinician)
    course = make_course(team, clinician)
    event = post(
        client,
        url(course, "events/"),
        {"kind": "secondary_malignancy", "occurred_on": "2026-11-24", "note": "AML"},
    ).json()
    response = client.patch(
        url(course, f"events/{event['id']}/"), {"kind": "death", "reason": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "void this record" in response.json()["error"]["fields"]["kind"][0]
    ok = client.patch(
        url(course, f"events/{event['id']}/"),
        {"note": "t-AML", "reason": "therapy-related, per the report"},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["note"] == "t-AML"


def test_voiding_the_death_that_ended_a_course_reinstates_it(
    api, team, clinician, make_course, time_machine, django_capture_on_commit_callbacks
):
    client = api(clinician)
    at(time_machine, "2026-10-01")
    with django_capture_on_commit_callbacks(execute=True):
        course = make_course(team, clinician)
        post(client, url(course, "transitions/"), {"transition": "start_induction"})
    at(time_machine, "2026-11-24")
    with django_capture_on_commit_callbacks(execute=True):
        death = post(
            client, url(course, "events/"), {"kind": "death", "occurred_on": "2026-11-20"}
        ).json()
    assert TreatmentCourse.objects.get(pk=course.pk).state == "off_protocol"
    # It was another child: voiding the record reinstates the course, and its safety
    # net with it.
    date_change = client.patch(
        url(course, f"events/{death['id']}/"),
        {"occurred_on": "2026-11-19", "reason": "x"},
        format="json",
    )
    assert date_change.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        voided = post(
            client, url(course, f"events/{death['id']}/void/"), {"reason": "wrong patient"}
        )
    assert voided.status_code == 200, voided.content
    body = client.get(url(course, "")).json()
    assert (body["state"], body["off_protocol_reason"]) == ("induction", None)
    history = client.get(url(course, "transitions/")).json()["history"]
    assert [h["name"] for h in history][-2:] == ["take_off_protocol", "reinstate"]
    assert "wrong patient" in history[-1]["reason"]
    assert unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)  # watched again


def test_a_voided_referral_can_be_replaced_and_mrd_voids_too(api, team, clinician, make_course):
    client = api(clinician)
    course = make_course(team, clinician)
    first = client.put(url(course, "hsct-referral/"), {"referred_on": "2026-11-24"}, format="json")
    assert first.status_code == 200
    voided = post(client, url(course, "hsct-referral/void/"), {"reason": "another centre's form"})
    assert voided.status_code == 200 and voided.json()["voided"] is True
    assert client.get(url(course, "hsct-referral/")).status_code == 404
    assert PlannedStep.objects.get(course=course, kind="hsct_referral").status == "planned"
    second = client.put(url(course, "hsct-referral/"), {"referred_on": "2026-11-23"}, format="json")
    assert second.status_code == 200, second.content
    assert second.json()["id"] != first.json()["id"]
    assert HsctReferral.with_voided.filter(course=course).count() == 2

    mrd = post(
        client,
        url(course, "mrd/"),
        {
            "sampled_on": "2026-11-24",
            "time_point": "pre_hsct",
            "unit": "fraction",
            "qualitative": "negative",
            "sensitivity": 0.0001,
        },
    ).json()
    assert PlannedStep.objects.get(course=course, kind="mrd").status == "done"
    assert (
        post(client, url(course, f"mrd/{mrd['id']}/void/"), {"reason": "mislabelled"}).status_code
        == 200
    )
    assert PlannedStep.objects.get(course=course, kind="mrd").status == "planned"
    assert MrdResult.with_voided.get(pk=mrd["id"]).void_reason == "mislabelled"


def test_an_mrd_result_is_amended_as_it_is_entered_with_its_unit(api, team, clinician, make_course):
    # The MRD value was typed as a fraction but the report said percent: the amendment
    # names its unit, the stored value stays a fraction, the old one is in the audit.
    client = api(clinician)
    course = make_course(team, clinician)
    entered = post(
        client,
        url(course, "mrd/"),
        {"sampled_on": "2026-11-24", "time_point": "pre_hsct", "unit": "fraction", "value": 0.2},
    )
    assert entered.status_code == 201, entered.content
    result = entered.json()
    detail = url(course, f"mrd/{result['id']}/")

    why = {"reason": "the report says percent"}
    no_unit = client.patch(detail, {"value": 0.2, **why}, format="json")
    assert no_unit.status_code == 400
    assert set(no_unit.json()["error"]["fields"]) == {"unit"}
    too_big = client.patch(detail, {"value": 150, "unit": "percent", **why}, format="json")
    assert too_big.status_code == 400
    assert set(too_big.json()["error"]["fields"]) == {"value"}

    amended = client.patch(detail, {"value": 0.2, "unit": "percent", **why}, format="json")
    assert amended.status_code == 200, amended.content
    stored = MrdResult.objects.get(pk=result["id"])
    assert (stored.value, stored.entered_unit) == (0.002, "percent")
    entry = AuditEntry.objects.filter(course=course, action="amended").get()
    assert entry.data["before"] == {"value": 0.2, "entered_unit": "fraction"}

    # A change of another field needs no unit and leaves the value and its unit alone.
    note = client.patch(detail, {"method": "flow cytometry", **why}, format="json")
    assert note.status_code == 200, note.content
    stored.refresh_from_db()
    assert (stored.value, stored.entered_unit, stored.method) == (
        0.002,
        "percent",
        "flow cytometry",
    )
