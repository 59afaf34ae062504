"""The daily digest: once per recipient per day, at the team's hour, only their teams,
nothing when there is nothing to say."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from notifications.email import delivery, digests
from notifications.models import EmailKind, OutboundEmail
from teams.models import Role

pytestmark = pytest.mark.django_db


def digests_for(user) -> list:
    return list(OutboundEmail.objects.filter(kind=EmailKind.DIGEST, user=user))


def test_no_digest_for_a_team_without_open_alerts(clock, team, clinician, time_machine):
    time_machine.move_to("2026-11-24T08:00:00+00:00", tick=False)  # 09:00 in Berlin
    assert digests.enqueue_digests(timezone.now()) == 0
    assert not OutboundEmail.objects.exists()


def test_the_digest_waits_for_the_teams_local_hour_and_goes_once_a_day(
    clock, sweep, team, clinician, make_course, time_machine, smtp
):
    make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    team.digest_hour = 12
    team.save()
    time_machine.move_to("2026-12-09T10:59:00+00:00", tick=False)  # 11:59 Berlin
    assert digests.enqueue_digests(timezone.now()) == 0
    time_machine.move_to("2026-12-09T11:00:00+00:00", tick=False)  # 12:00 Berlin
    assert digests.enqueue_digests(timezone.now()) == 1
    assert digests.enqueue_digests(timezone.now()) == 0  # again the same day: nothing
    [digest] = digests_for(clinician)
    assert digest.subject.startswith("[rezcourse] Daily digest 2026-12-09:")
    delivery.drain(timezone.now)
    [message] = [m for m in smtp.handler.messages() if "Daily digest" in m["Subject"]]
    parts = {p.get_content_type(): p.get_content() for p in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    text = parts["text/plain"]
    # Grouped by severity, then course.
    assert text.index("== HIGH ==") < text.index("== MEDIUM ==")
    assert "HSCT referral missing" in text


def test_a_digest_lists_only_the_recipients_teams(
    clock, sweep, team, other_team, clinician, member, make_course
):
    mine = make_course(team, clinician)
    theirs = make_course(other_team, member(other_team, Role.COORDINATOR))
    clock("2026-12-08")
    sweep()
    digests.enqueue_digests(timezone.now())
    [digest] = digests_for(clinician)
    assert mine.patient.reference in digest.body_text
    assert theirs.patient.reference not in digest.body_text + digest.body_html


def test_a_member_of_two_teams_gets_one_digest_covering_both(
    clock, sweep, team, other_team, clinician, member, make_course
):
    from tests.factories import MembershipFactory

    MembershipFactory(team=other_team, user=clinician, role=Role.VIEWER)
    first = make_course(team, clinician)
    second = make_course(other_team, member(other_team, Role.COORDINATOR))
    clock("2026-12-08")
    sweep()
    digests.enqueue_digests(timezone.now())
    [digest] = digests_for(clinician)
    assert first.patient.reference in digest.body_text
    assert second.patient.reference in digest.body_text


def test_what_changed_since_the_last_digest(clock, sweep, team, clinician, make_course):
    from courses import services as course_services

    course = make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    digests.enqueue_digests(timezone.now())
    clock("2026-12-09")
    course_services.referral_save(
        course, data={"referred_on": timezone.localdate()}, actor=clinician, now=timezone.now()
    )
    sweep()
    digests.enqueue_digests(timezone.now())
    latest = (
        OutboundEmail.objects.filter(kind=EmailKind.DIGEST, user=clinician)
        .order_by("-created_at")
        .first()
    )
    assert "Since the last digest" in latest.body_text
    assert "HSCT referral missing on course" in latest.body_text
    assert ": resolved" in latest.body_text


def test_a_member_who_turned_the_digest_off_gets_none(
    api, clock, sweep, team, clinician, make_course
):
    membership = clinician.memberships.get(team=team)
    api(clinician).patch(
        f"/api/v1/notification-preferences/{membership.pk}/", {"digest": False}, format="json"
    )
    make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    digests.enqueue_digests(timezone.now())
    assert digests_for(clinician) == []


def test_preview_digest_prints_what_would_be_sent(clock, sweep, team, clinician, make_course):
    course = make_course(team, clinician)
    out = StringIO()
    call_command("preview_digest", user=clinician.username, stdout=out)
    assert "Nothing to say" in out.getvalue()
    clock("2026-12-08")
    sweep()
    out = StringIO()
    call_command("preview_digest", user=clinician.username, stdout=out)
    text = out.getvalue()
    assert f"To: {clinician.email}" in text and course.patient.reference in text
    assert not OutboundEmail.objects.filter(kind=EmailKind.DIGEST).exists()
    with pytest.raises(CommandError, match="No user named"):
        call_command("preview_digest", user="ghost")


def test_preferences_api_lists_defaults_and_only_changes_my_own(
    api, team, other_team, clinician, viewer, member
):
    other = member(other_team, Role.CLINICIAN)
    rows = api(viewer).get("/api/v1/notification-preferences/").json()
    assert rows == [
        {
            "membership": viewer.memberships.get().pk,
            "team": team.pk,
            "team_name": "Team X",
            # A viewer cannot act on an alert: the digest only, until they opt in.
            "immediate_min_severity": None,
            "digest": True,
            "viewer_immediate_opt_in": False,
        }
    ]
    mine = viewer.memberships.get().pk
    changed = api(viewer).patch(
        f"/api/v1/notification-preferences/{mine}/",
        {"immediate_min_severity": "low"},
        format="json",
    )
    assert changed.status_code == 200 and changed.json()["immediate_min_severity"] is None
    opted = api(viewer).patch(
        f"/api/v1/notification-preferences/{mine}/",
        {"viewer_immediate_opt_in": True},
        format="json",
    )
    assert opted.status_code == 200 and opted.json()["immediate_min_severity"] == "low"
    theirs = other.memberships.get().pk
    assert (
        api(viewer)
        .patch(f"/api/v1/notification-preferences/{theirs}/", {"digest": False}, format="json")
        .status_code
        == 404
    )
    bad = api(viewer).patch(
        f"/api/v1/notification-preferences/{mine}/",
        {"immediate_min_severity": "urgent"},
        format="json",
    )
    assert bad.status_code == 400 and "immediate_min_severity" in bad.json()["error"]["fields"]


@pytest.mark.parametrize("teams, members", [(2, 2), (4, 4)])
def test_digests_cost_the_same_queries_whatever_the_number_of_recipients(
    clock, sweep, member, make_course, django_assert_num_queries, teams, members
):
    from tests.factories import MembershipFactory, TeamFactory

    everyone = []
    for _ in range(teams):
        team = TeamFactory(distribution_email="office@example.org")
        people = [member(team, Role.CLINICIAN) for _ in range(members)]
        make_course(team, people[0])
        everyone += people
    # Someone in two teams gets one digest covering both.
    MembershipFactory(team=team, user=everyone[0], role=Role.VIEWER)
    clock("2026-12-08")
    sweep()
    # The first digests (nobody had one yet), then the next day's, which also read
    # each recipient's last digest and what changed since.
    with django_assert_num_queries(10):
        written = digests.enqueue_digests(timezone.now())
    assert written == teams * (members + 1)
    clock("2026-12-09")
    sweep()
    with django_assert_num_queries(10):
        assert digests.enqueue_digests(timezone.now()) == written
    assert all(
        "Since the last digest" in e.body_text
        for e in OutboundEmail.objects.filter(kind=EmailKind.DIGEST, created_at=timezone.now())
    )
