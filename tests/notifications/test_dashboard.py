"""The worklist and the summary, against hand-computed values for a small cohort."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses import services as course_services
from notifications import services
from notifications.models import Alert
from teams.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort(clock, sweep, team, other_team, clinician, member, make_course):  # noqa: ANN001, ANN201
    """Three courses of team X and one of team Y, swept on 2026-12-08:

    * a: group A (HSCT indicated) -> hsct_referral_missing (high) + overdue blocks
    * b: group B (no HSCT)       -> overdue blocks only (medium)
    * c: group B, all on time    -> its first block recorded on the start day, the
         rest still within grace on 2026-11-26 (swept that day: nothing)
    * y: team Y, group A          -> never visible to team X
    """
    a = make_course(team, clinician)
    b = make_course(team, clinician, relapse_date=date(2024, 9, 1))
    c = make_course(team, clinician, relapse_date=date(2024, 9, 1))
    y = make_course(other_team, member(other_team, Role.COORDINATOR))
    clock("2026-12-08")
    course_services.referral_save(
        c, data={"referred_on": date(2026, 12, 8)}, actor=clinician, now=timezone.now()
    )
    for step in c.steps.filter(status="planned"):
        course_services.step_update(
            step, data={"status": "skipped", "reason": "test"}, actor=clinician, now=timezone.now()
        )
    sweep()
    return {"a": a, "b": b, "c": c, "y": y}


def rows(client, query: str = "") -> list[dict]:  # noqa: ANN001
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
        with CaptureQueriesContext(connection) as ctx:
            rows(client)
        return len(ctx.captured_queries)

    few = count()
    for _ in range(4):
        make_course(team, clinician)
    clock("2026-12-20")
    sweep()
    assert len(rows(client)) == 6
    # token+user, roles, count, page; then the page's courses, alerts and next steps
    assert count() == few == 7


def test_the_summary_against_hand_counted_figures(api, clinician, cohort):
    data = api(clinician).get("/api/v1/dashboard/summary/").json()
    assert data["active_courses"] == 3
    assert data["active_by_state"]["stratified"] == 3
    assert data["active_by_risk_group"] == {"A": 1, "B": 2}
    a_alerts = Alert.objects.filter(course=cohort["a"]).count()
    b_alerts = Alert.objects.filter(course=cohort["b"]).count()
    assert data["open_alerts"] == a_alerts + b_alerts
    assert data["open_alerts_by_severity"] == {
        "low": 0,
        "medium": a_alerts + b_alerts - 1,
        "high": 1,
    }
    assert data["open_alerts_by_kind"]["hsct_referral_missing"] == {"high": 1}
    # One referral (course c): stratified 2026-11-24, referred 2026-12-08 -> 14 days;
    # but c is group B (HSCT not indicated), so the HSCT referral delay counts nothing.
    assert data["delays"]["hsct_referral"]["count"] == 0
    assert data["delays"]["block_delay"]["count"] == 0


def test_summary_range_team_and_isolation(api, clinician, cohort):
    client = api(clinician)
    empty = client.get("/api/v1/dashboard/summary/?started_from=2027-01-01").json()
    assert empty["active_courses"] == 0 and empty["open_alerts"] == 0
    bad = client.get("/api/v1/dashboard/summary/?started_from=2026-12-01&started_to=2026-11-01")
    assert bad.status_code == 400 and "started_to" in bad.json()["error"]["fields"]
    assert (
        client.get(f"/api/v1/dashboard/summary/?team={cohort['y'].patient.team_id}").status_code
        == 404
    )
    with CaptureQueriesContext(connection) as ctx:
        client.get("/api/v1/dashboard/summary/")
    assert len(ctx.captured_queries) == 2 + 3 + 3  # auth, three counts, three delays
