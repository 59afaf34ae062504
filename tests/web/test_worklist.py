"""The worklist: three sections, filters, search by reference, CSV, and a fixed number
of queries whatever the number of courses."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses import services as course_services
from notifications.models import Alert, AlertKind
from teams.models import Role

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_the_three_sections_show_what_needs_attention_what_is_due_and_what_awaits_review(
    web, parse, team, clinician, started_course, make_course
):
    late = started_course(team, clinician)  # block overdue, HSCT referral missing
    fresh = make_course(team, clinician)  # confirmed today: its first steps are due now
    pending = make_course(team, clinician, confirm=False)  # awaiting a clinician

    response = web(clinician).get("/")

    assert response.status_code == 200
    page = parse(response)
    text = page.text
    attention = text.split("Needs attention")[1].split("Due now and in the next 14 days")[0]
    due = text.split("Due now and in the next 14 days")[1].split("Needs review")[0]
    review = text.split("Needs review")[1]
    assert late.patient.reference in attention
    assert "HSCT referral missing" in attention and "Planned step overdue" in attention
    assert "High" in attention  # severity in words, not only in colour
    assert fresh.patient.reference not in attention
    assert fresh.patient.reference in due and late.patient.reference in due
    assert "overdue 14 days" in due  # the late course's first block, due on its start
    assert pending.patient.reference in review and late.patient.reference not in review
    # Each row links to its course (the alerts to the alert on the course page).
    assert f"/courses/{late.pk}/" in page.links
    alert = Alert.objects.get(course=late, kind=AlertKind.HSCT_REFERRAL_MISSING)
    assert f"/courses/{late.pk}/#alert-{alert.pk}" in page.links


def test_a_relapse_whose_course_was_never_opened_waits_in_needs_review(
    web, parse, team, clinician, make_patient, make_course
):
    patient = make_patient(team, reference="HALF-DONE")
    relapse = course_services.relapse_create(
        patient=patient,
        data={
            "relapse_date": date(2024, 3, 1),
            "site": "isolated_bm",
            "bm_blast_percent": 80.0,
            "relapse_number": 1,
            "prior_hsct": False,
        },
        now=timezone.now(),
    )
    make_course(team, clinician, confirm=False)  # and one decision awaiting a clinician
    response = web(clinician).get("/")
    page = parse(response)
    assert "HALF-DONE" in page.text.split("Needs review")[1]
    assert f"/relapses/{relapse.pk}/course/" in page.links
    # The section's badge counts both kinds of row (it once read 0 with rows below it).
    assert '<h2 id="review-title">Needs review <span class="count">2</span></h2>' in (
        response.content.decode()
    )


@pytest.mark.parametrize("query", ["abc", "ABC", "c-00", "C-007"])
def test_search_by_reference_is_partial_and_case_insensitive(
    web, parse, team, clinician, make_patient, make_course, query
):
    wanted = make_course(team, clinician, patient=make_patient(team, reference="ABC-007"))
    other = make_course(team, clinician, patient=make_patient(team, reference="XYZ-100"))
    page = parse(web(clinician).get("/", {"q": query}))
    assert wanted.patient.reference in page.text
    assert other.patient.reference not in page.text


def test_filters_narrow_every_section(web, parse, team, clinician, started_course, make_course):
    bfm90 = started_course(team, clinician)  # group A, alerts
    bfm2002 = make_course(team, clinician, protocol="all-rez-bfm-2002")
    client = web(clinician)

    only_2002 = parse(client.get("/", {"protocol": "all-rez-bfm-2002"})).text
    assert bfm2002.patient.reference in only_2002 and bfm90.patient.reference not in only_2002

    group_a = parse(client.get("/", {"risk_group": "A"})).text
    assert bfm90.patient.reference in group_a and bfm2002.patient.reference not in group_a

    referral = parse(client.get("/", {"kind": AlertKind.HSCT_REFERRAL_MISSING})).text
    assert bfm90.patient.reference in referral and bfm2002.patient.reference not in referral
    stalled = parse(client.get("/", {"kind": AlertKind.COURSE_STALLED})).text
    assert bfm90.patient.reference not in stalled


def test_a_member_of_one_team_is_not_offered_a_team_filter_and_of_two_is(
    web, parse, team, other_team, clinician, member
):
    filters = parse(web(clinician).get("/")).form("/")
    assert "q" in filters["visible"] and "team" not in filters["visible"]
    both = member(team, Role.CLINICIAN)
    member_of_other = other_team.memberships.create(user=both, role=Role.VIEWER)
    assert member_of_other.pk
    assert "team" in parse(web(both).get("/")).form("/")["visible"]


def test_the_team_filter_shows_one_team_and_another_teams_id_is_not_found(
    web, parse, team, other_team, clinician, member, make_course
):
    both = member(team, Role.CLINICIAN)
    other_team.memberships.create(user=both, role=Role.CLINICIAN)
    mine = make_course(team, clinician)
    theirs = make_course(other_team, both)
    client = web(both)
    text = parse(client.get("/", {"team": team.pk})).text
    assert mine.patient.reference in text and theirs.patient.reference not in text
    stranger = web(clinician)
    assert stranger.get("/", {"team": other_team.pk}).status_code == 404
    assert stranger.get("/worklist.csv", {"team": other_team.pk}).status_code == 404


def test_the_csv_export_has_every_row_of_the_three_sections_with_the_filters(
    web, team, clinician, started_course, make_course
):
    late = started_course(team, clinician)
    pending = make_course(team, clinician, confirm=False)
    response = web(clinician).get("/worklist.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="worklist-2026-11-24.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    sections = {(r["section"], r["reference"]) for r in rows}
    assert ("needs attention", late.patient.reference) in sections
    assert ("due", late.patient.reference) in sections
    assert ("needs review", pending.patient.reference) in sections
    attention = next(r for r in rows if r["section"] == "needs attention")
    assert "HSCT referral missing (high)" in attention["alerts"]
    assert attention["team"] == team.name

    filtered = web(clinician).get("/worklist.csv", {"q": "no-such-reference"})
    assert list(csv.reader(io.StringIO(b"".join(filtered.streaming_content).decode())))[1:] == []


def _worklist_queries(client) -> int:  # noqa: ANN001
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    return len(queries)


# Session, user, the user's teams with names, the role map, then the worklist itself:
# needs attention (the precomputed attention rows with their courses and next steps,
# then their alerts), due steps, needs review, unopened relapses.
WORKLIST_QUERIES = 9


@pytest.mark.parametrize("courses", [2, 10])
def test_the_worklist_page_renders_in_a_fixed_number_of_queries(
    web, team, clinician, started_course, make_course, courses
):
    for _ in range(courses // 2):
        started_course(team, clinician)  # with alerts
        make_course(team, clinician, confirm=False)  # awaiting review
    client = web(clinician)
    assert Alert.objects.count() >= courses // 2
    assert _worklist_queries(client) == WORKLIST_QUERIES


def test_the_kind_filter_ends_each_snooze_on_its_own_teams_date(team, clinician, started_course):
    # A member of a Berlin and an Auckland team: on the Berlin 24th it is already the
    # 25th in Auckland, where an alert snoozed until the 25th asks for attention again.
    # Every section of the filtered page must agree with "needs attention" on that.
    from tests.factories import MembershipFactory, TeamFactory
    from web import selectors

    auckland = TeamFactory(time_zone="Pacific/Auckland")
    MembershipFactory(team=auckland, user=clinician, role=Role.CLINICIAN)
    course = started_course(auckland, clinician)
    Alert.objects.filter(course=course, kind=AlertKind.HSCT_REFERRAL_MISSING).update(
        snoozed_until=date(2026, 11, 25)
    )
    dates = {team.pk: date(2026, 11, 24), auckland.pk: date(2026, 11, 25)}
    filters = selectors.WorklistFilters(kind=AlertKind.HSCT_REFERRAL_MISSING)

    work = selectors.worklist(list(dates), filters, date(2026, 11, 24), dates=dates)

    assert {row.course_id for row in work.due.rows} == {course.pk}
    assert course.pk in {row["course"] for row in work.attention.rows}
