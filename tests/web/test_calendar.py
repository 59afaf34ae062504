"""The calendar of due steps, and the personal iCalendar feed behind a secret token."""

from __future__ import annotations

import hashlib
import re
from datetime import date

import pytest
from django.test import Client
from icalendar import Calendar

from teams.models import Role
from web.models import CalendarFeed

pytestmark = pytest.mark.django_db


def test_due_steps_are_listed_week_by_week_with_the_overdue_ones_first(
    web, parse, team, clinician, started_course, make_course
):
    late = started_course(team, clinician)
    fresh = make_course(team, clinician)
    page = parse(web(clinician).get("/calendar/"))
    text = page.text
    overdue = text.split("Overdue")[1].split("Week of")[0]
    assert late.patient.reference in overdue and fresh.patient.reference not in overdue
    this_week = text.split("Week of 23 Nov this week")[1].split("Week of 30 Nov")[0]
    assert fresh.patient.reference in this_week  # its first block is due today
    first = fresh.steps.get(sequence=0)
    assert f"/courses/{fresh.pk}/#step-{first.pk}" in page.links


def test_later_weeks_are_reached_by_the_week_parameter(web, parse, team, clinician, make_course):
    course = make_course(team, clinician)
    later = course.steps.order_by("-due_on").first()
    week = date.fromordinal(later.due_on.toordinal() - later.due_on.weekday()).isoformat()
    text = parse(web(clinician).get("/calendar/", {"week": week})).text
    assert later.label in text


def _make_feed(client: Client) -> str:
    response = client.post("/calendar/feed/", {"action": "rotate"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    match = re.search(
        r'value="(http://testserver/calendar/feed/[^"]+\.ics)"', response.content.decode()
    )
    assert match, "the new address is shown once"
    return match.group(1).removeprefix("http://testserver")


def test_the_feed_holds_one_event_per_due_step_with_only_reference_step_and_link(
    web, team, clinician, make_course
):
    course = make_course(team, clinician)
    url = _make_feed(web(clinician))
    response = Client().get(url)  # a calendar app: no session
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Cache-Control"] == "private, no-store"
    calendar = Calendar.from_ical(response.content)
    events = calendar.walk("VEVENT")
    open_steps = list(course.steps.filter(status="planned"))
    assert len(events) == len(open_steps) > 0
    by_uid = {str(e["UID"]): e for e in events}
    for step in open_steps:
        event = by_uid[f"step-{step.pk}@rezcourse"]
        assert str(event["SUMMARY"]) == f"{course.patient.reference}: {step.label}"
        assert str(event["URL"]) == f"http://testserver/courses/{course.pk}/"
        assert event.decoded("DTSTART") == step.due_on
        # Nothing else about the course travels with the event.
        assert set(event) <= {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "URL", "TRANSP"}


def test_only_a_hash_of_the_token_is_stored(web, clinician):
    url = _make_feed(web(clinician))
    token = url.removeprefix("/calendar/feed/").removesuffix(".ics")
    feed = CalendarFeed.objects.get(user=clinician)
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(list(CalendarFeed.objects.values_list()))
    # Not kept in the session either: the page shows it once, from the POST's answer.
    page = web(clinician).get("/calendar/").content.decode()
    assert token not in page and "cannot be shown again" in page


def test_rotating_the_token_ends_the_old_feed_at_once_and_revoking_ends_it_too(web, clinician):
    client = web(clinician)
    old = _make_feed(client)
    assert Client().get(old).status_code == 200
    new = _make_feed(client)
    assert new != old
    assert Client().get(old).status_code == 404
    assert Client().get(new).status_code == 200
    assert client.post("/calendar/feed/", {"action": "revoke"}).status_code == 302
    assert Client().get(new).status_code == 404
    assert not CalendarFeed.objects.exists()


def test_the_feed_follows_the_users_teams_at_fetch_time(
    web, team, other_team, member, clinician, make_course
):
    user = member(team, Role.VIEWER)  # viewers read, so they may subscribe too
    theirs = make_course(other_team, member(other_team, Role.CLINICIAN))
    mine = make_course(team, clinician)
    url = _make_feed(web(user))
    text = Client().get(url).content.decode()
    assert mine.patient.reference in text and theirs.patient.reference not in text
    user.memberships.all().delete()
    assert mine.patient.reference not in Client().get(url).content.decode()
    user.is_active = False
    user.save()
    assert Client().get(url).status_code == 404


def test_an_unknown_token_is_not_found(client):
    assert client.get("/calendar/feed/not-a-token.ics").status_code == 404


def test_managing_the_feed_needs_sign_in_and_a_known_action(client, web, clinician):
    assert client.post("/calendar/feed/", {"action": "rotate"}).status_code == 302  # sign-in
    assert web(clinician).post("/calendar/feed/", {"action": "drop"}).status_code == 404
    assert not CalendarFeed.objects.exists()
