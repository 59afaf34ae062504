"""Scenario (issue 22): a proposed group-A course, HSCT indicated, waits for a
clinician's confirmation. It used to raise nothing for 44 days, then a low "stalled";
now it is a high alert on the third day, on the team's alerts through the API, and it
resolves the moment a clinician confirms the stratification."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from notifications.models import AlertKind, OutboundEmail
from notifications.services import alerts_sweep
from tests.notifications.conftest import register_group_a

pytestmark = pytest.mark.django_db

PROPOSAL = AlertKind.HSCT_PROPOSAL_UNCONFIRMED


def alerts_of(client: Any, course: int) -> list[dict]:
    answer = client.get("/api/v1/alerts/", {"course": course})
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def test_a_group_a_proposal_registered_10_days_ago_is_high_until_a_clinician_confirms(
    clock, api, team, clinician, viewer, django_capture_on_commit_callbacks
):
    client = api(clinician)
    # The relapse on 2026-10-20; the course typed in two days later, and nobody has
    # confirmed its stratification since. Beat sweeps every day.
    clock("2026-10-22")
    with django_capture_on_commit_callbacks(execute=True):
        course = register_group_a(client, team)
    for day in ("2026-10-23", "2026-10-24"):
        clock(day)
        alerts_sweep(timezone.now())
        assert alerts_of(client, course) == [], day
    for day in range(25, 32):
        clock(f"2026-10-{day}")
        alerts_sweep(timezone.now())
    clock("2026-11-01")  # ten days after the registration
    alerts_sweep(timezone.now())
    [alert] = alerts_of(client, course)
    assert (alert["kind"], alert["severity"], alert["state"]) == (PROPOSAL, "high", "open")
    assert alert["condition_since"] == "2026-10-25"
    assert "2026-10-22 proposes group A with HSCT indicated" in alert["message"]
    heard = OutboundEmail.objects.filter(alert_id=alert["id"], kind="immediate")
    assert set(heard.values_list("recipient", flat=True)) == {clinician.email}
    # A clinician confirms (therapy began on 2026-10-23 with block R2, recorded with
    # it): the course's re-evaluation after commit resolves the alert without waiting
    # for the next sweep, and nothing else waits on the course.
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(
            f"/api/v1/courses/{course}/confirm-stratification/",
            {"risk_group": "A", "start_date": "2026-10-23"},
            format="json",
        )
        assert confirmed.status_code == 200, confirmed.content
        block = client.post(
            f"/api/v1/courses/{course}/blocks/",
            {"block_type": "R2", "start_date": "2026-10-23"},
            format="json",
        )
        assert block.status_code == 201, block.content
    [alert] = alerts_of(client, course)
    assert (alert["kind"], alert["state"]) == (PROPOSAL, "resolved")
    assert alert["resolution"] == "condition_cleared"
    alerts_sweep(timezone.now())
    assert [(a["kind"], a["state"]) for a in alerts_of(client, course)] == [(PROPOSAL, "resolved")]
