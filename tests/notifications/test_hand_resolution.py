"""Resolving by hand cannot silence (issue 22). A team registers and confirms a group-A
course (HSCT indicated) through the API and records no referral; the sweep opens
hsct_referral_missing; a clinician resolves it by hand, with a reason. While the
condition still holds, it stays resolved only as long as a high alert may be snoozed
(7 days): then the sweep opens it again, once, says who resolved it and when, and
mails it like any alert that opens."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.utils import timezone

from notifications.models import Alert, AlertKind, AlertState, OutboundEmail
from notifications.services import alerts_sweep
from tests.notifications.conftest import register_group_a

pytestmark = pytest.mark.django_db

REFERRAL = AlertKind.HSCT_REFERRAL_MISSING


def open_referral_alerts(course: int) -> list[dict]:
    return list(
        Alert.objects.filter(course_id=course, kind=REFERRAL)
        .exclude(state=AlertState.RESOLVED)
        .values("pk", "state", "condition_since", "message", "severity")
    )


def course_alerts(client: Any, course: int) -> list[dict]:
    answer = client.get("/api/v1/alerts/", {"course": course, "kind": REFERRAL})
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


@pytest.fixture
def resolved_by_hand(clock, sweep, api, team, clinician, viewer) -> Any:  # noqa: ANN001
    """The course, its referral alert opened on 2026-11-09 (14 days after the start)
    and resolved by hand that day by the clinician, although no referral exists."""
    client = api(clinician)
    clock("2026-10-26")
    course = register_group_a(client, team, start="2026-10-26")
    clock("2026-11-09")
    sweep()
    [alert] = course_alerts(client, course)
    assert (alert["severity"], alert["state"]) == ("high", "open")
    assert alert["condition_since"] == "2026-11-09"
    done = client.post(
        f"/api/v1/alerts/{alert['id']}/resolve/",
        {"reason": "referral discussed on the phone with the transplant centre"},
        format="json",
    )
    assert done.status_code == 200, done.content
    assert (done.json()["state"], done.json()["resolution"]) == ("resolved", "manual")
    return client, course, alert["id"]


def test_a_resolve_without_a_reason_is_a_400_naming_reason(clock, sweep, api, team, clinician):
    client = api(clinician)
    clock("2026-10-26")
    course = register_group_a(client, team, start="2026-10-26")
    clock("2026-11-09")
    sweep()
    [alert] = course_alerts(client, course)
    url = f"/api/v1/alerts/{alert['id']}/resolve/"
    for body in ({}, {"reason": "  "}):
        refused = client.post(url, body, format="json")
        assert refused.status_code == 400, refused.content
        assert "reason" in refused.json()["error"]["fields"]
    assert [a["state"] for a in course_alerts(client, course)] == ["open"]


def test_a_holding_condition_resolved_by_hand_opens_again_after_the_longest_snooze(
    clock, sweep, resolved_by_hand, clinician, viewer
):
    client, course, first = resolved_by_hand
    referral_mails = OutboundEmail.objects.filter(alert__kind=REFERRAL)
    mails_before = referral_mails.count()
    # Day +1 to +6: no referral yet, but within what a snooze (7 days) could hide.
    for day in range(10, 16):
        clock(f"2026-11-{day}")
        sweep()
        assert open_referral_alerts(course) == [], day
    assert referral_mails.count() == mails_before
    # Day +7: the condition still holds, so it is back.
    clock("2026-11-16")
    sweep()
    [again] = open_referral_alerts(course)
    assert again["pk"] != first
    assert (again["state"], again["severity"]) == ("open", "high")
    assert again["condition_since"] == date(2026, 11, 9)  # the same condition
    assert (
        f"Resolved by hand on 2026-11-09 by {clinician.username} (clinician)" in (again["message"])
    )
    assert "still holds" in again["message"]
    assert "NORTH-0022" not in again["message"]  # no patient identity
    # Mailed like any newly opened alert: once, to the clinician (a viewer: digest only).
    mails = OutboundEmail.objects.filter(alert_id=again["pk"], kind="immediate")
    assert list(mails.values_list("recipient", flat=True)) == [clinician.email]
    # Re-running the sweep (and a per-course re-evaluation) duplicates nothing.
    sweep()
    alerts_sweep(timezone.now(), course_ids=[course])
    assert [a["pk"] for a in open_referral_alerts(course)] == [again["pk"]]
    assert mails.count() == 1
    # The first alert stays what it was: resolved by hand.
    assert Alert.objects.get(pk=first).resolution == "manual"
    # Shown on the course's alerts through the API, open again.
    shown = {a["id"]: a["state"] for a in course_alerts(client, course)}
    assert shown == {first: "resolved", again["pk"]: "open"}


def test_resolved_by_hand_and_nine_days_later_it_is_open_again(
    clock, sweep, resolved_by_hand, clinician
):
    """The issue's case: the first sweep after the resolution runs nine days later."""
    client, course, first = resolved_by_hand
    clock("2026-11-18")
    sweep()
    [again] = open_referral_alerts(course)
    assert "Resolved by hand on 2026-11-09" in again["message"]
    assert (
        OutboundEmail.objects.filter(alert_id=again["pk"], recipient=clinician.email).count() == 1
    )
    sweep()
    assert len(open_referral_alerts(course)) == 1


def test_resolved_by_hand_again_it_waits_another_snooze_from_then(
    clock, sweep, resolved_by_hand
):
    client, course, _ = resolved_by_hand
    clock("2026-11-16")
    sweep()
    [again] = open_referral_alerts(course)
    clock("2026-11-17")
    done = client.post(
        f"/api/v1/alerts/{again['pk']}/resolve/", {"reason": "letter sent"}, format="json"
    )
    assert done.status_code == 200, done.content
    clock("2026-11-23")
    sweep()
    assert open_referral_alerts(course) == []
    clock("2026-11-24")
    sweep()
    [third] = open_referral_alerts(course)
    assert "Resolved by hand on 2026-11-17" in third["message"]


def test_resolved_by_hand_and_then_cleared_it_does_not_come_back(
    clock, sweep, resolved_by_hand
):
    client, course, _ = resolved_by_hand
    clock("2026-11-12")
    saved = client.put(
        f"/api/v1/courses/{course}/hsct-referral/",
        {"referred_on": "2026-11-12", "donor_search_status": "ongoing"},
        format="json",
    )
    assert saved.status_code == 200, saved.content
    clock("2026-11-20")
    sweep()
    assert open_referral_alerts(course) == []
