"""The history of every write (history/): who, when, what changed (before and after)
and through which channel (api, web, admin, command, task); readable in the API,
team-scoped, and in the admin, read-only."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from courses.models import BlockAdministration, Patient
from history.models import Entry
from teams.models import Role

NOW = datetime.fromisoformat("2026-11-24T10:00:00+00:00")


@pytest.fixture(autouse=True)
def frozen_time(time_machine: Any) -> datetime:
    time_machine.move_to(NOW, tick=False)
    return timezone.now()


def _entries(model: str, pk: Any) -> list[Entry]:
    app_label, name = model.split(".")
    return list(
        Entry.objects.filter(
            content_type__app_label=app_label, content_type__model=name, object_pk=str(pk)
        ).order_by("id")
    )


# --- one entry per write channel, with before and after ----------------------------


def test_an_api_write_is_recorded_with_its_actor_channel_and_before_after(
    api, team, clinician, make_patient
) -> None:
    patient = make_patient(team, birth_year=2015)
    response = api(clinician).patch(f"/api/v1/patients/{patient.pk}/", {"birth_year": 2014})
    assert response.status_code == 200, response.content
    entry = _entries("courses.patient", patient.pk)[-1]
    assert (entry.channel, entry.actor, entry.action) == ("api", clinician, Entry.Action.UPDATE)
    assert entry.changes == {"birth_year": [2015, 2014]}
    assert entry.team_id == team.pk
    assert entry.timestamp == NOW


def test_a_web_write_is_recorded_as_the_web_channel(team, clinician) -> None:
    client = Client()
    client.force_login(clinician)
    response = client.post(
        "/patients/new/",
        {
            "reference": "NEW-001",
            "birth_year": "2014",
            "sex": "female",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2022-01-10",
            "frontline_protocol": "",
            "frontline_end_date": "2024-01-10",
        },
    )
    assert response.status_code == 302, response.content.decode()[:1000]
    patient = Patient.objects.get(reference="NEW-001")
    (entry,) = _entries("courses.patient", patient.pk)
    assert (entry.channel, entry.actor, entry.action) == ("web", clinician, Entry.Action.CREATE)
    assert entry.changes["reference"] == [None, "NEW-001"]
    assert entry.changes["initial_diagnosis_date"] == [None, "2022-01-10"]


def test_an_admin_write_is_recorded_as_the_admin_channel(
    client, django_user_model, team, clinician, make_course
) -> None:
    staff = django_user_model.objects.create_superuser("root-admin", "a@example.org", "pw")
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
    (entry,) = _entries("courses.blockadministration", block.pk)
    assert (entry.channel, entry.actor, entry.team_id) == ("admin", staff, team.pk)
    assert entry.changes["start_date"] == [None, "2026-11-24"]


def test_a_command_write_is_recorded_as_the_command_channel(team, clinician) -> None:
    """A token rotation is recorded on its user, never with the secret."""
    call_command("api_token", clinician.username, "--rotate", stdout=None)
    entries = _entries("auth.user", clinician.pk)
    assert entries, "the rotation left no trace"
    assert {e.channel for e in entries} == {"command"}
    assert entries[-1].changes == {"api_token": [None, "(new)"]}
    assert all(e.owner_id == clinician.pk and e.team_id is None for e in entries)
    from rest_framework.authtoken.models import Token

    key = Token.objects.get(user=clinician).key
    assert not Entry.objects.filter(object_repr__contains=key).exists()
    assert key not in str(list(Entry.objects.values_list("changes", flat=True)))


# --- what each kind of write records -------------------------------------------------


def test_alert_actions_are_recorded_and_the_sweep_writes_none(
    api, team, clinician, make_course, make_alert
) -> None:
    course = make_course(team, clinician)
    from notifications.services import alerts_sweep

    stale = make_alert(course)  # its condition does not hold: the sweep resolves it
    before = Entry.objects.count()
    alerts_sweep(now=timezone.now())  # system writes: set-based, not recorded
    stale.refresh_from_db()
    assert stale.state == "resolved"
    assert Entry.objects.count() == before
    alert = make_alert(course)
    client = api(clinician)
    assert (
        client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"note": "seen"}).status_code == 200
    )
    entry = _entries("notifications.alert", alert.pk)[-1]
    assert entry.changes["state"] == ["open", "acknowledged"]
    assert entry.changes["acknowledge_note"] == ["", "seen"]
    assert (entry.channel, entry.actor, entry.team_id) == ("api", clinician, team.pk)


def test_memberships_roles_preferences_and_calendar_tokens_are_recorded(
    api, team, coordinator, member
) -> None:
    viewer = member(team, Role.VIEWER)
    membership = viewer.memberships.get()
    client = api(coordinator)
    response = client.patch(f"/api/v1/memberships/{membership.pk}/", {"role": "clinician"})
    assert response.status_code == 200, response.content
    assert _entries("teams.membership", membership.pk)[-1].changes == {
        "role": ["viewer", "clinician"]
    }
    own = coordinator.memberships.get()
    response = client.patch(f"/api/v1/notification-preferences/{own.pk}/", {"digest": False})
    assert response.status_code == 200, response.content
    pref = Entry.objects.filter(content_type__model="notificationpreference").latest("id")
    assert pref.changes["digest"][1] is False
    assert (pref.team_id, pref.owner_id) == (team.pk, coordinator.pk)
    from web.services import feed_rotate

    feed_rotate(coordinator, timezone.now())
    feed_rotate(coordinator, timezone.now())
    feeds = [e.changes for e in _entries("auth.user", coordinator.pk)]
    assert {"calendar_token": [None, "(new)"]} in feeds
    assert {"calendar_token": ["(set)", "(new)"]} in feeds


def test_a_course_transition_is_recorded_on_the_course(api, team, clinician, make_course) -> None:
    course = make_course(team, clinician)
    response = api(clinician).post(
        f"/api/v1/courses/{course.pk}/transitions/", {"transition": "start_induction"}
    )
    assert response.status_code == 200, response.content
    entry = _entries("courses.treatmentcourse", course.pk)[-1]
    assert entry.changes["state"] == ["stratified", "induction"]


# --- reading it ------------------------------------------------------------------------


def test_the_history_is_team_scoped_and_a_viewer_reads_their_own_team(
    api, team, other_team, member, make_patient
) -> None:
    mine = make_patient(team)
    theirs = make_patient(other_team)
    viewer = member(team, Role.VIEWER)
    client = api(viewer)
    response = client.get("/api/v1/history/?model=courses.patient")
    assert response.status_code == 200, response.content
    objects = {row["object_id"] for row in response.json()["results"]}
    assert mine.pk in objects and theirs.pk not in objects
    assert {row["team"] for row in response.json()["results"]} == {team.pk}
    # Another team's id answers as a nonexistent one: an empty page, no oracle.
    for team_id in (other_team.pk, 999_999):
        answer = client.get(f"/api/v1/history/?team={team_id}")
        assert answer.status_code == 200
        assert answer.json()["count"] == 0
    row = client.get(f"/api/v1/history/?model=courses.patient&object_id={mine.pk}").json()
    (created,) = row["results"]
    assert created["action"] == "create" and created["channel"] == "command"
    assert created["model"] == "courses.patient"
    assert created["changes"]["reference"] == [None, mine.reference]


def test_the_history_is_paginated_with_a_pinned_query_count(
    api, team, clinician, make_patient, django_assert_num_queries
) -> None:
    for _ in range(7):
        make_patient(team)
    client = api(clinician)
    client.get("/api/v1/history/")  # the token row exists; later pages cost the same
    # token + user, memberships, count, page (actor and content type joined)
    with django_assert_num_queries(4):
        response = client.get("/api/v1/history/?model=courses.patient&page_size=5&page=2")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 7 and len(body["results"]) == 2
    assert body["previous"] is not None


def test_the_history_is_read_only_in_the_api_and_the_admin(
    api, client, django_user_model, team, clinician, make_patient
) -> None:
    patient = make_patient(team)
    entry = _entries("courses.patient", patient.pk)[0]
    assert api(clinician).post("/api/v1/history/", {}).status_code == 405
    staff = django_user_model.objects.create_superuser("root-admin", "a@example.org", "pw")
    client.force_login(staff)
    assert client.get("/admin/history/entry/").status_code == 200
    assert client.get(f"/admin/history/entry/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/history/entry/add/").status_code == 403
    assert (
        client.post(f"/admin/history/entry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    with pytest.raises(ValueError):
        entry.save()


def test_a_task_write_is_recorded_as_the_task_channel(team, clinician, make_course) -> None:
    from celery.signals import task_postrun, task_prerun

    from courses import services as course_services

    course = make_course(team, clinician)
    task_prerun.send(sender=None, task_id="t-1")
    try:
        course_services.block_record(
            course,
            data={"block_type": "R2", "start_date": date(2026, 11, 24)},
            actor=clinician,
            now=timezone.now(),
        )
    finally:
        task_postrun.send(sender=None, task_id="t-1")
    block = BlockAdministration.objects.get(course=course)
    assert _entries("courses.blockadministration", block.pk)[0].channel == "task"


def test_a_removed_membership_is_recorded_with_what_it_was(api, team, coordinator, member) -> None:
    leaving = member(team, Role.CLINICIAN)
    membership = leaving.memberships.get()
    response = api(coordinator).delete(f"/api/v1/memberships/{membership.pk}/")
    assert response.status_code == 204, response.content
    entry = _entries("teams.membership", membership.pk)[-1]
    assert entry.action == Entry.Action.DELETE
    assert entry.changes["role"] == ["clinician", None]
    assert (entry.channel, entry.actor, entry.team_id) == ("api", coordinator, team.pk)


@pytest.mark.parametrize(
    ("query", "name"),
    [("model=courses.nothing", "model"), ("team=abc", "team"), ("channel=fax", "channel")],
)
def test_a_bad_history_filter_is_a_400_naming_it(api, team, viewer, query, name) -> None:
    response = api(viewer).get(f"/api/v1/history/?{query}")
    assert response.status_code == 400, response.content
    assert name in response.json()["error"]["fields"]
