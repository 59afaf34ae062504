"""One course's timeline: steps, transitions, records and its alerts, in date order."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def timeline(client, course) -> dict:
    response = client.get(f"/api/v1/courses/{course.pk}/timeline/")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_timeline_lists_steps_transitions_and_records_in_date_order(
    api, clinician, team, make_course, clock
):
    course = make_course(team, clinician)
    client = api(clinician)
    client.post(
        f"/api/v1/courses/{course.pk}/blocks/",
        {"block_type": "R2", "start_date": "2026-11-24"},
        format="json",
    )
    data = timeline(client, course)
    dates = [e["date"] for e in data["entries"]]
    assert dates == sorted(dates)
    types = {e["type"] for e in data["entries"]}
    assert {"step", "transition", "block"} <= types


def test_the_course_timeline_shows_its_alerts(api, clinician, team, make_course, clock, sweep):
    mine = make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    data = timeline(api(clinician), mine)
    kinds = {e["kind"] for e in data["entries"] if e["type"] == "alert"}
    assert "hsct_referral_missing" in kinds
    dates = [e["date"] for e in data["entries"]]
    assert dates == sorted(dates)


def test_another_teams_course_has_no_timeline(
    api, member, other_team, team, clinician, make_course
):
    theirs = make_course(other_team, member(other_team, "coordinator"))
    response = api(clinician).get(f"/api/v1/courses/{theirs.pk}/timeline/")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404


def test_the_timeline_costs_the_same_queries_for_a_longer_course(
    api, clinician, team, make_course, clock, sweep, django_assert_num_queries
):
    short = make_course(team, clinician, confirm=False)
    long = make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    client = api(clinician)
    # token+user, roles, the course; then steps, the records' corrections (the audit
    # trail's amendments), transitions, blocks, assessments, MRD, the HSCT referral,
    # events and alerts.
    with django_assert_num_queries(12):
        timeline(client, short)
    with django_assert_num_queries(12):
        assert len(timeline(client, long)["entries"]) > 10
