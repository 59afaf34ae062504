"""The alerts API: scoped lists and filters, and the lifecycle actions with the same
400/409 discipline as the rest of the API."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Alert, AlertEvent, AlertKind
from teams.models import Role
from tests.factories import MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts(clock, sweep, team, other_team, clinician, member, make_course):
    mine = make_course(team, clinician)
    theirs = make_course(other_team, member(other_team, Role.COORDINATOR))
    clock("2026-12-08")
    sweep()
    return mine, theirs


def referral_alert(course):
    return Alert.objects.get(course=course, kind=AlertKind.HSCT_REFERRAL_MISSING)


def test_the_list_shows_only_my_teams_alerts_with_filters(api, clinician, alerts):
    mine, theirs = alerts
    client = api(clinician)
    rows = client.get("/api/v1/alerts/").json()["results"]
    assert rows and {r["course"] for r in rows} == {mine.pk}
    high = client.get("/api/v1/alerts/?severity=high").json()["results"]
    assert [r["kind"] for r in high] == ["hsct_referral_missing"]
    assert high[0]["course_reference"] == mine.patient.reference
    assert high[0]["caveat"].startswith("Early identification")
    kinds = client.get("/api/v1/alerts/?kind=step_overdue&state=open").json()["results"]
    assert kinds and all(r["kind"] == "step_overdue" for r in kinds)
    assert client.get(f"/api/v1/alerts/?course={theirs.pk}").json()["count"] == 0
    assert client.get("/api/v1/alerts/?severity=urgent").status_code == 400


def test_another_teams_alert_is_404_for_every_action(api, clinician, alerts):
    _, theirs = alerts
    alert = referral_alert(theirs)
    client = api(clinician)
    assert client.get(f"/api/v1/alerts/{alert.pk}/").status_code == 404
    for action, body in [
        ("acknowledge", {}),
        ("snooze", {"until": "2026-12-20", "reason": "x"}),
        ("resolve", {"reason": "x"}),
    ]:
        assert (
            client.post(f"/api/v1/alerts/{alert.pk}/{action}/", body, format="json").status_code
            == 404
        )
    alert.refresh_from_db()
    assert alert.state == "open"


def test_a_viewer_cannot_act_on_alerts(api, viewer, alerts):
    alert = referral_alert(alerts[0])
    response = api(viewer).post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json")
    assert response.status_code == 403
    assert api(viewer).get(f"/api/v1/alerts/{alert.pk}/").status_code == 200


def test_acknowledge_then_resolve_then_nothing_more(api, clinician, alerts):
    alert = referral_alert(alerts[0])
    client = api(clinician)
    ack = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"note": "on it"}, format="json")
    assert ack.status_code == 200
    assert (ack.json()["state"], ack.json()["acknowledged_by"]) == (
        "acknowledged",
        clinician.username,
    )
    again = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["allowed_actions"] == ["snooze", "resolve"]
    no_reason = client.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"reason": " "}, format="json")
    assert no_reason.status_code == 400
    assert "reason" in no_reason.json()["error"]["fields"]
    done = client.post(
        f"/api/v1/alerts/{alert.pk}/resolve/", {"reason": "referred by phone"}, format="json"
    )
    assert (done.json()["state"], done.json()["resolution"]) == ("resolved", "manual")
    closed = client.post(
        f"/api/v1/alerts/{alert.pk}/snooze/", {"until": "2026-12-20", "reason": "x"}, format="json"
    )
    assert closed.status_code == 409
    assert closed.json()["error"]["allowed_actions"] == []
    history = client.get(f"/api/v1/alerts/{alert.pk}/history/").json()
    assert [h["action"] for h in history] == ["opened", "acknowledged", "resolved"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2026-12-08", "reason": "x"}, "until"),  # today, not after it
        ({"until": "2026-12-01", "reason": "x"}, "until"),
        ({"until": "2027-06-01", "reason": "x"}, "until"),  # beyond the 90-day cap
        ({"until": "tomorrow", "reason": "x"}, "until"),
        ({"until": "2026-12-20", "reason": ""}, "reason"),
        ({"reason": "x"}, "until"),
    ],
)
def test_bad_snoozes_are_400s_naming_the_field_and_change_nothing(
    api, clinician, alerts, body, field
):
    alert = referral_alert(alerts[0])
    events = AlertEvent.objects.count()
    response = api(clinician).post(f"/api/v1/alerts/{alert.pk}/snooze/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    alert.refresh_from_db()
    assert alert.snoozed_until is None and AlertEvent.objects.count() == events


def test_a_snooze_is_recorded(api, clinician, alerts):
    alert = referral_alert(alerts[0])
    response = api(clinician).post(
        f"/api/v1/alerts/{alert.pk}/snooze/",
        {"until": "2026-12-15", "reason": "awaiting centre"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["snoozed_until"] == "2026-12-15"
    alert.refresh_from_db()
    assert alert.snoozed_until == date(2026, 12, 15)
    assert api(clinician).get("/api/v1/alerts/?snoozed=true").json()["count"] == 1


def test_a_high_alert_cannot_be_snoozed_past_seven_days(api, clinician, alerts, settings):
    alert = referral_alert(alerts[0])  # high; today is 2026-12-08
    assert alert.severity == "high"
    client = api(clinician)
    url = f"/api/v1/alerts/{alert.pk}/snooze/"
    longer = client.post(url, {"until": "2026-12-16", "reason": "awaiting"}, format="json")
    assert longer.status_code == 400
    assert "7 days" in longer.json()["error"]["fields"]["until"][0]
    alert.refresh_from_db()
    assert alert.snoozed_until is None
    # The policy lives in settings: a centre may allow longer (documented default 7).
    settings.REZCOURSE_ALERT_MAX_SNOOZE_DAYS_BY_SEVERITY = {"high": 10}
    allowed = client.post(url, {"until": "2026-12-16", "reason": "x"}, format="json")
    assert allowed.status_code == 200


def test_a_medium_alert_keeps_the_general_maximum_snooze(api, clinician, alerts, make_alert):
    course = alerts[0]
    medium = make_alert(course, kind="cumulative_delay", severity="medium")
    answer = api(clinician).post(
        f"/api/v1/alerts/{medium.pk}/snooze/",
        {"until": "2027-02-01", "reason": "delay explained: infection"},
        format="json",
    )
    assert answer.status_code == 200, answer.content


def test_the_alert_list_query_count_does_not_grow(
    api, clinician, alerts, team, make_course, sweep, django_assert_num_queries
):
    client = api(clinician)
    with django_assert_num_queries(4):  # token+user, roles, count, page
        client.get("/api/v1/alerts/")
    for _ in range(3):
        make_course(team, clinician)
    sweep()
    with django_assert_num_queries(4):
        client.get("/api/v1/alerts/")


def test_courses_filter_on_open_alerts(api, clinician, alerts, team, make_course):
    mine, _ = alerts
    quiet = make_course(team, clinician)  # created today (2026-12-08): nothing due yet
    client = api(clinician)
    with_alerts = client.get("/api/v1/courses/?has_open_alerts=true").json()["results"]
    assert [c["id"] for c in with_alerts] == [mine.pk]
    without = client.get("/api/v1/courses/?has_open_alerts=false").json()["results"]
    assert [c["id"] for c in without] == [quiet.pk]
    for alert in Alert.objects.filter(course=mine):
        services.alert_resolve(alert, actor=clinician, reason="handled", now=timezone.now())
    assert client.get("/api/v1/courses/?has_open_alerts=true").json()["count"] == 0


def test_snoozed_is_judged_on_each_alerts_team_calendar(
    api, clock, sweep, member, make_course, time_machine
):
    # 23:30 UTC on 14 December: the 15th in Tokyo, still the 14th in New York.
    east = TeamFactory(name="East", slug="east", time_zone="Asia/Tokyo")
    west = TeamFactory(name="West", slug="west", time_zone="America/New_York")
    coordinator = member(east, Role.COORDINATOR)
    MembershipFactory(team=west, user=coordinator, role=Role.COORDINATOR)
    tokyo, new_york = make_course(east, coordinator), make_course(west, coordinator)
    clock("2026-12-08")
    sweep()
    for course in (tokyo, new_york):
        services.alert_snooze(
            referral_alert(course),
            actor=coordinator,
            until=date(2026, 12, 15),
            reason="away",
            now=timezone.now(),
        )
    time_machine.move_to("2026-12-14T23:30:00+00:00", tick=False)
    client = api(coordinator)
    snoozed = client.get("/api/v1/alerts/?snoozed=true&kind=hsct_referral_missing").json()
    assert [a["course"] for a in snoozed["results"]] == [new_york.pk]
    awake = client.get("/api/v1/alerts/?snoozed=false&kind=hsct_referral_missing").json()
    assert [a["course"] for a in awake["results"]] == [tokyo.pk]
