"""The team summary, against hand-computed values for a small cohort (conftest.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Alert
from tests.reports.conftest import queries, read_queries

pytestmark = pytest.mark.django_db


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
    # auth (token+user, roles), then one read of the counters: counts and delays alike
    assert len(ctx.captured_queries) == 2 + read_queries(1)


def test_the_summary_costs_the_same_queries_for_more_courses(
    api, clinician, cohort, team, make_course, sweep, clock
):
    client = api(clinician)
    url = "/api/v1/dashboard/summary/?started_from=2026-01-01"
    few = queries(client, url)
    for _ in range(4):
        make_course(team, clinician)
    clock("2026-12-20")
    sweep()
    assert client.get("/api/v1/dashboard/summary/").json()["active_courses"] == 7
    assert queries(client, url) == few == 2 + read_queries(1)
