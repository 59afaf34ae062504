"""The worklist, against hand-computed values for a small cohort (conftest.py)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import services
from notifications.models import Alert
from teams.models import Role
from tests.factories import MembershipFactory, TeamFactory
from tests.reports.conftest import queries

pytestmark = pytest.mark.django_db


def rows(client, query: str = "") -> list[dict]:
    response = client.get(f"/api/v1/dashboard/worklist/{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_the_worklist_puts_the_most_urgent_course_first(api, clinician, cohort):
    result = rows(api(clinician))
    assert [r["course"] for r in result] == [cohort["a"].pk, cohort["b"].pk]
    first = result[0]
    assert first["severity"] == "high" and first["urgency"] == 3
    assert {a["kind"] for a in first["alerts"]} == {"hsct_referral_missing", "step_overdue"}
    # The first block was due 2026-11-24 with 3 days' grace: overdue since 11-28.
    assert (first["oldest_since"], first["days_overdue"]) == ("2026-11-28", 10)
    assert first["next_step"] and first["next_step_due_on"]
    assert result[1]["severity"] == "medium"


def test_escalation_moves_a_course_up(api, clinician, cohort, time_machine, sweep):
    # Team X acknowledges everything on course a; nobody looks at course b.
    for alert in Alert.objects.filter(course=cohort["a"]):
        services.alert_acknowledge(alert, actor=clinician, note="", now=timezone.now())
    time_machine.move_to("2026-12-11T10:00:00+00:00", tick=False)  # 72 h later
    sweep()
    result = rows(api(clinician))
    # a: high (3), acknowledged so never escalated; b: medium (2) escalated twice -> 4.
    assert [(r["course"], r["urgency"]) for r in result] == [
        (cohort["b"].pk, 4),
        (cohort["a"].pk, 3),
    ]


def test_worklist_filters(api, clinician, cohort):
    client = api(clinician)
    assert [r["course"] for r in rows(client, "?kind=hsct_referral_missing")] == [cohort["a"].pk]
    assert [r["course"] for r in rows(client, "?risk_group=B")] == [cohort["b"].pk]
    assert rows(client, f"?team={cohort['a'].patient.team_id}")
    assert (
        client.get(f"/api/v1/dashboard/worklist/?team={cohort['y'].patient.team_id}").status_code
        == 404
    )
    bad = client.get("/api/v1/dashboard/worklist/?kind=nonsense")
    assert bad.status_code == 400 and "kind" in bad.json()["error"]["fields"]


def test_snoozed_alerts_leave_the_worklist_until_their_date(api, clinician, cohort):
    for alert in Alert.objects.filter(course=cohort["b"]):
        services.alert_snooze(
            alert, actor=clinician, until=date(2026, 12, 15), reason="holiday", now=timezone.now()
        )
    client = api(clinician)
    assert [r["course"] for r in rows(client)] == [cohort["a"].pk]
    assert len(rows(client, "?include_snoozed=true")) == 2


def test_worklist_csv_export(api, clinician, cohort):
    response = api(clinician).get("/api/v1/dashboard/worklist/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0][:3] == ["course", "team", "course_reference"]
    assert [int(r[0]) for r in table[1:]] == [cohort["a"].pk, cohort["b"].pk]
    assert "hsct_referral_missing (high)" in table[1][-1]


def test_the_worklist_costs_the_same_queries_for_more_courses(
    api, clinician, cohort, team, make_course, sweep, clock
):
    client = api(clinician)

    def count() -> int:
        return queries(client, "/api/v1/dashboard/worklist/")

    few = count()
    for _ in range(4):
        make_course(team, clinician)
    clock("2026-12-20")
    sweep()
    assert len(rows(client)) == 6
    # token+user, roles, count, the page (with its courses and next steps, from the
    # precomputed attention rows), the page's alerts
    assert count() == few == 5


def test_each_row_is_judged_on_its_own_teams_calendar(
    api, clock, sweep, member, make_course, time_machine
):
    """A coordinator of two teams either side of midnight UTC: at 23:30 UTC on 14
    December it is already the 15th in Tokyo and still the 14th in New York (and the
    15th on the server's Europe/Berlin clock, the 14th in UTC). A snooze until the 15th
    has ended for the Tokyo course only, and each course counts its days overdue on its
    own team's calendar."""
    east = TeamFactory(name="East", slug="east", time_zone="Asia/Tokyo")
    west = TeamFactory(name="West", slug="west", time_zone="America/New_York")
    coordinator = member(east, Role.COORDINATOR)
    MembershipFactory(team=west, user=coordinator, role=Role.COORDINATOR)
    tokyo = make_course(east, coordinator)  # both started on 2026-11-24 locally
    new_york = make_course(west, coordinator)
    clock("2026-12-08")
    sweep()
    for alert in Alert.objects.all():
        services.alert_snooze(
            alert, actor=coordinator, until=date(2026, 12, 15), reason="away", now=timezone.now()
        )
    client = api(coordinator)
    assert rows(client) == []

    time_machine.move_to("2026-12-14T23:30:00+00:00", tick=False)
    # A snooze ends by the calendar: the worklist shows it from the first periodic
    # sweep on the new date (beat runs one every few minutes).
    sweep()
    with CaptureQueriesContext(connection) as ctx:
        assert [r["course"] for r in rows(client)] == [tokyo.pk]
    assert len(ctx.captured_queries) == 5  # two calendars cost no extra query
    everything = {r["course"]: r for r in rows(client, "?include_snoozed=true")}
    assert set(everything) == {tokyo.pk, new_york.pk}
    east_row, west_row = everything[tokyo.pk], everything[new_york.pk]
    assert east_row["oldest_since"] == west_row["oldest_since"] == "2026-11-28"
    assert (east_row["days_overdue"], west_row["days_overdue"]) == (17, 16)
    # The export is named after the teams' latest date.
    export = client.get("/api/v1/dashboard/worklist/?format=csv")
    assert "worklist-2026-12-15.csv" in export["Content-Disposition"]


def test_pages_are_keyset_pages_followed_by_their_links(api, clinician, cohort):
    """Two courses, one per page: `next` and `previous` carry a cursor (the key of the
    row the page starts after or before), never a page number."""
    client = api(clinician)
    first = client.get("/api/v1/dashboard/worklist/?page_size=1").json()
    assert [r["course"] for r in first["results"]] == [cohort["a"].pk]
    assert first["previous"] is None and "cursor=" in first["next"]
    assert "page_size=1" in first["next"] and "page=" not in first["next"].replace("page_size=", "")
    second = client.get(first["next"]).json()
    assert [r["course"] for r in second["results"]] == [cohort["b"].pk]
    assert second["next"] is None
    back = client.get(second["previous"]).json()
    assert back["results"] == first["results"] and back["previous"] is None
    assert first["count"] == second["count"] == 2 and first["count_exact"] is True


def test_a_cursor_that_is_not_from_a_link_is_a_400(api, clinician, cohort):
    for cursor in ("nonsense", "WyJ4Il0", "WyJuIiwgMV0"):  # garbage, ["x"], ["n", 1]
        response = api(clinician).get(f"/api/v1/dashboard/worklist/?cursor={cursor}")
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]["fields"]


def test_the_count_is_exact_for_one_team_and_may_be_an_estimate_for_several(
    api, clinician, cohort, other_team
):
    MembershipFactory(team=other_team, user=clinician, role=Role.CLINICIAN)
    client = api(clinician)
    one = client.get(f"/api/v1/dashboard/worklist/?team={cohort['a'].patient.team_id}").json()
    assert (one["count"], one["count_exact"]) == (2, True)
    both = client.get("/api/v1/dashboard/worklist/").json()
    assert len(both["results"]) == 3  # course y of team Y too
    if connection.vendor == "postgresql":
        # The planner's estimate: one EXPLAIN instead of counting a network's rows.
        assert both["count_exact"] is False and both["count"] >= 0
    else:
        assert (both["count"], both["count_exact"]) == (3, True)


@pytest.mark.parametrize("size", ["0", "501", "abc", "-1"])
def test_a_page_size_out_of_range_is_a_400(api, clinician, cohort, size):
    response = api(clinician).get(f"/api/v1/dashboard/worklist/?page_size={size}")
    assert response.status_code == 400
    assert "page_size" in response.json()["error"]["fields"]
