"""Who sees what: another team's objects are a 404 page on every page and action;
viewers read everything of their team, are shown no write control, and are refused
(403) when they write anyway; clinicians and coordinators write."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps

from notifications.models import Alert
from teams.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign(other_team, member, started_course) -> dict[str, Any]:  # noqa: ANN001
    """A course of another team, with an alert, a step and a half-registered relapse."""
    owner = member(other_team, Role.CLINICIAN)
    course = started_course(other_team, owner)
    return {
        "course": course,
        "alert": Alert.objects.filter(course=course).first(),
        "step": course.steps.first(),
        "patient": course.patient,
        "relapse": course.relapse,
    }


def pages(o: dict[str, Any]) -> list[str]:
    c = o["course"].pk
    return [
        f"/courses/{c}/",
        f"/courses/{c}/record/block/",
        f"/courses/{c}/record/assessment/",
        f"/courses/{c}/record/mrd/",
        f"/courses/{c}/record/referral/",
        f"/courses/{c}/record/event/",
        f"/courses/{c}/steps/{o['step'].pk}/",
        f"/patients/{o['patient'].pk}/relapses/new/",
        f"/relapses/{o['relapse'].pk}/course/",
    ]


def actions(o: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    c, a = o["course"].pk, o["alert"].pk
    return [
        (f"/courses/{c}/confirm/", {"confirm-risk_group": "A"}),
        (f"/courses/{c}/hsct/", {"hsct-hsct_indicated": "yes"}),
        (f"/courses/{c}/move/", {"form_id": "t-other", "t-other-transition": "start_induction"}),
        (f"/courses/{c}/record/block/", {"block_type": "R2", "start_date": "2026-11-20"}),
        (f"/courses/{c}/record/event/", {"kind": "death", "occurred_on": "2026-11-20"}),
        (f"/courses/{c}/steps/{o['step'].pk}/", {"action": "skip", "skip-reason": "x"}),
        (f"/alerts/{a}/acknowledge/", {}),
        (f"/alerts/{a}/snooze/", {f"alert-{a}-snooze-until": "2026-12-01"}),
        (f"/alerts/{a}/resolve/", {f"alert-{a}-resolve-reason": "x"}),
        (f"/patients/{o['patient'].pk}/relapses/new/", {"relapse_date": "2026-11-01"}),
        (f"/relapses/{o['relapse'].pk}/course/", {"protocol": "all-rez-bfm-90"}),
    ]


def snapshot() -> dict[str, int]:
    """Row counts of every table but the session and sign-in logs."""
    skip = {"sessions.Session", "axes.AccessLog", "axes.AccessAttempt"}
    return {
        m._meta.label: m.objects.count() for m in apps.get_models() if m._meta.label not in skip
    }


def test_another_teams_objects_are_a_404_page_on_every_page_and_action(
    web, parse, team, clinician, foreign
):
    client = web(clinician)
    for url in pages(foreign):
        response = client.get(url)
        assert response.status_code == 404, url
        # The page says nothing about what is there, not even the reference.
        assert foreign["patient"].reference not in response.content.decode(), url
        assert "Not found" in parse(response).text
    before = snapshot()
    for url, data in actions(foreign):
        assert client.post(url, data).status_code == 404, url
    assert snapshot() == before


@pytest.mark.parametrize(
    "page", ["/", "/worklist.csv", "/calendar/", "/outcomes/", "/outcomes/efs.png"]
)
def test_naming_another_team_in_a_filter_is_not_found(web, team, other_team, clinician, page):
    assert web(clinician).get(page, {"team": other_team.pk}).status_code == 404


def test_a_viewer_reads_every_page_and_is_shown_no_write_control(
    web, parse, team, viewer, clinician, started_course
):
    course = started_course(team, clinician)
    client = web(viewer)
    worklist = parse(client.get("/"))
    assert course.patient.reference in worklist.text
    assert "/patients/new/" not in worklist.links  # no "Register a patient"
    page = client.get(f"/courses/{course.pk}/")
    assert page.status_code == 200
    course_page = parse(page)
    assert course_page.write_forms() == []
    assert "HSCT referral missing" in course_page.text  # the alerts are there to read
    assert not [link for link in course_page.links if "/record/" in link or "/steps/" in link]
    for url in ("/calendar/", "/outcomes/"):
        assert client.get(url).status_code == 200


def test_a_viewer_writing_anyway_is_refused_and_nothing_changes(
    web, team, viewer, clinician, started_course
):
    course = started_course(team, clinician)
    own = {
        "course": course,
        "alert": Alert.objects.filter(course=course).first(),
        "step": course.steps.first(),
        "patient": course.patient,
        "relapse": course.relapse,
    }
    client = web(viewer)
    before = snapshot()
    for url, data in actions(own):
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert "Your role in this team does not allow this change." in response.content.decode()
    assert client.post("/patients/new/", {"reference": "V-1"}).status_code == 403
    for url in pages(own)[1:]:  # the data-entry pages themselves
        assert client.get(url).status_code == 403, url
    assert snapshot() == before


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.COORDINATOR])
def test_clinicians_and_coordinators_see_the_write_controls(
    web, parse, team, member, clinician, started_course, role
):
    course = started_course(team, clinician)
    page = parse(web(member(team, role)).get(f"/courses/{course.pk}/"))
    actions_ = {f["action"] for f in page.write_forms()}
    alert = Alert.objects.filter(course=course).first()
    assert f"/alerts/{alert.pk}/acknowledge/" in actions_
    assert f"/courses/{course.pk}/move/" in actions_
    assert f"/courses/{course.pk}/record/block/" in page.links


def test_a_viewer_here_who_is_a_clinician_elsewhere_still_cannot_write_here(
    web, team, other_team, member, clinician, started_course
):
    course = started_course(team, clinician)
    both = member(team, Role.VIEWER)
    other_team.memberships.create(user=both, role=Role.CLINICIAN)
    alert = Alert.objects.filter(course=course).first()
    assert web(both).post(f"/alerts/{alert.pk}/acknowledge/", {}).status_code == 403
