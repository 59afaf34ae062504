"""Every amendment says why (issue 22, entry safety): a correction of a clinical record
through the API needs a reason (a 400 naming ``reason`` without one), and the reason is
kept with the old and the new values in the course's audit trail and timeline. The MRD
record answers its value in both units (``value_display``), and a number sent as text
("0,2") is a 400 naming the field, never read."""

from __future__ import annotations

from datetime import date

import pytest

from courses.models import AuditEntry, HsctReferral, MrdResult

pytestmark = pytest.mark.django_db


def at(time_machine, day: str) -> None:
    time_machine.move_to(f"{day}T10:00:00+00:00", tick=False)


def url(course, path: str) -> str:
    return f"/api/v1/courses/{course.pk}/{path}"


@pytest.fixture
def course(team, clinician, make_course, time_machine):
    # A late isolated marrow relapse in January 2026; therapy from 19 January.
    at(time_machine, "2026-01-19")
    return make_course(team, clinician, relapse_date=date(2026, 1, 12))


def test_a_tenfold_mrd_slip_is_corrected_with_a_reason_and_the_old_value_stays_visible(
    api, course, clinician, time_machine
):
    client = api(clinician)
    # End of induction: the flow report says 0.2 %; "2" was typed.
    at(time_machine, "2026-03-03")
    entered = client.post(
        url(course, "mrd/"),
        {
            "sampled_on": "2026-03-02",
            "time_point": "end_of_induction",
            "unit": "percent",
            "value": 2,
        },
        format="json",
    )
    assert entered.status_code == 201, entered.content
    result = entered.json()
    # The answer reads the stored fraction back in both units: 2 % is 2×10⁻².
    assert (result["value"], result["value_display"]) == (0.02, "2×10⁻² = 2 %")
    assert result["sensitivity_display"] == ""
    detail = url(course, f"mrd/{result['id']}/")

    at(time_machine, "2026-03-05")
    correction = {"unit": "percent", "value": 0.2}
    for missing in ({}, {"reason": ""}, {"reason": "   "}):
        refused = client.patch(detail, {**correction, **missing}, format="json")
        assert refused.status_code == 400, refused.content
        assert list(refused.json()["error"]["fields"]) == ["reason"]
        assert "is required to amend a record" in refused.json()["error"]["fields"]["reason"][0]
    assert MrdResult.objects.get(pk=result["id"]).value == 0.02  # nothing changed
    assert not AuditEntry.objects.filter(course=course, action="amended").exists()
    too_long = client.patch(detail, {**correction, "reason": "x" * 2001}, format="json")
    assert too_long.status_code == 400
    assert list(too_long.json()["error"]["fields"]) == ["reason"]

    why = "typed 2 for 0,2 %: the flow report says 0.2 %"
    amended = client.patch(detail, {**correction, "reason": why}, format="json")
    assert amended.status_code == 200, amended.content
    body = amended.json()
    assert (body["value"], body["value_display"]) == (0.002, "2×10⁻³ = 0.2 %")
    assert "reason" not in body  # write-only: it lives in the audit trail
    assert body["amended_at"].startswith("2026-03-05")

    # The old value, who, when and why: in the course's audit trail ...
    trail = client.get(url(course, "audit/")).json()["results"]
    [entry] = [e for e in trail if e["action"] == "amended"]
    assert (entry["target"], entry["target_id"], entry["actor"]) == (
        "MrdResult",
        result["id"],
        clinician.username,
    )
    assert entry["data"] == {
        "before": {"value": 0.02},
        "after": {"value": 0.002},
        "reason": why,
    }
    # ... and beside the record in the timeline, readable in both units.
    [mrd] = [
        e for e in client.get(url(course, "timeline/")).json()["entries"] if e["type"] == "mrd"
    ]
    assert mrd["value_display"] == "2×10⁻³ = 0.2 %"
    [seen] = mrd["corrections"]
    assert (seen["actor"], seen["reason"], seen["at"][:10]) == (
        clinician.username,
        why,
        "2026-03-05",
    )
    assert seen["changes"] == [
        {
            "field": "value",
            "before": 0.02,
            "after": 0.002,
            "before_display": "2×10⁻² = 2 %",
            "after_display": "2×10⁻³ = 0.2 %",
        }
    ]


def test_an_mrd_value_sent_as_text_is_a_400_naming_the_field(api, course, clinician, time_machine):
    client = api(clinician)
    at(time_machine, "2026-03-03")
    body = {"sampled_on": "2026-03-02", "time_point": "end_of_induction", "unit": "percent"}
    for text in ("0,2", "0.2", "1,000.5"):
        response = client.post(url(course, "mrd/"), {**body, "value": text}, format="json")
        assert response.status_code == 400, response.content
        assert list(response.json()["error"]["fields"]) == ["value"]
    for text in ("0,01", "1e-4"):
        response = client.post(
            url(course, "mrd/"),
            {**body, "qualitative": "negative", "sensitivity": text},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert list(response.json()["error"]["fields"]) == ["sensitivity"]
    assert not MrdResult.objects.exists()
    entered = client.post(url(course, "mrd/"), {**body, "value": 0.2}, format="json").json()
    response = client.patch(
        url(course, f"mrd/{entered['id']}/"),
        {"unit": "percent", "value": "0,2", "reason": "retyped"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["value"]


def test_a_referral_moves_on_without_a_reason_and_is_corrected_with_one(
    api, course, clinician, time_machine
):
    client = api(clinician)
    referral = url(course, "hsct-referral/")
    at(time_machine, "2026-02-02")
    assert client.put(referral, {"referred_on": "2026-02-02"}, format="json").status_code == 200
    # Progress: the donor search moves forward, the planned date is filled in.
    at(time_machine, "2026-03-10")
    progress = client.patch(
        referral,
        {"donor_search_status": "donor_found", "donor_type": "MUD", "planned_on": "2026-05-04"},
        format="json",
    )
    assert progress.status_code == 200, progress.content
    # Correcting what was recorded is an amendment: the referral date was typed wrong,
    # and the donor search went back (the donor withdrew).
    for change in ({"referred_on": "2026-01-30"}, {"donor_search_status": "ongoing"}):
        refused = client.patch(referral, change, format="json")
        assert refused.status_code == 400, refused.content
        assert list(refused.json()["error"]["fields"]) == ["reason"]
        field = next(iter(change))
        assert f"({field} changed)" in refused.json()["error"]["fields"]["reason"][0]
    corrected = client.patch(
        referral,
        {"referred_on": "2026-01-30", "reason": "referral letter is dated 30 January"},
        format="json",
    )
    assert corrected.status_code == 200, corrected.content
    assert HsctReferral.objects.get(course=course).referred_on == date(2026, 1, 30)
    reasons = [
        e.data["reason"]
        for e in AuditEntry.objects.filter(course=course, action="amended").order_by("at", "id")
    ]
    assert reasons == ["", "referral letter is dated 30 January"]
