"""EFS by risk group: the dashboard/outcomes endpoint on a small fixed cohort (the
estimator itself is tested in test_survival.py)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses import services
from teams.models import Role

URL = "/api/v1/dashboard/outcomes/"


def at(time_machine, day: str) -> None:
    time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)


def event(course, actor, kind: str, on: str) -> None:
    services.event_record(
        course,
        data={"kind": kind, "occurred_on": date.fromisoformat(on), "note": ""},
        actor=actor,
        now=timezone.now(),
    )


def off_protocol(course, actor, reason: str) -> None:
    services.course_transition(
        course,
        name="take_off_protocol",
        reason="clinical decision",
        off_protocol_reason=reason,
        actor=actor,
        now=timezone.now(),
    )


LATE = {"relapse_date": date(2024, 8, 1)}  # >= 6 months after front-line end: group B


@pytest.fixture
def cohort(time_machine, team, other_team, clinician, member, make_course, make_patient):
    """EFS counts from the relapse date (issue 11), not the course start.

    Group A (relapse 2024-03-01, therapy from 2024-04-01): a second relapse on
    2025-04-01 (day 396, which also ends the course); refractory (taken off protocol on
    2024-10-28: an event at time zero); censored at its last record on 2025-10-18 (day
    596); withdrawn on 2024-07-10 (day 131; the later death does not count). Group B
    (relapse 2024-08-01): taken off protocol for death on 2025-03-01 (day 212, no event
    record); censored at an MRD on 2025-09-01 (day 396). Not counted: an unconfirmed
    course without an event, a course on ALL-REZ BFM 2002, and another team's course."""
    at(time_machine, "2024-04-01")
    a1, a2, a3, a4 = (make_course(team, clinician) for _ in range(4))
    unconfirmed = make_course(team, clinician, confirm=False)
    bfm2002 = make_course(team, clinician, protocol="all-rez-bfm-2002")
    foreign_user = member(other_team, Role.CLINICIAN)
    foreign = make_course(other_team, foreign_user)
    at(time_machine, "2024-07-10")
    event(a4, clinician, "withdrawal", "2024-07-10")
    at(time_machine, "2024-09-01")
    b1, b2 = (make_course(team, clinician, **LATE) for _ in range(2))
    at(time_machine, "2024-09-08")
    event(a4, clinician, "death", "2024-09-08")
    event(foreign, foreign_user, "death", "2024-09-08")
    event(bfm2002, clinician, "death", "2024-09-08")
    at(time_machine, "2024-10-28")
    off_protocol(a2, clinician, "refractory")
    at(time_machine, "2025-03-01")
    off_protocol(b1, clinician, "death")
    at(time_machine, "2025-04-01")
    event(a1, clinician, "second_relapse", "2025-04-01")
    at(time_machine, "2025-09-01")
    services.mrd_record(
        b2,
        data={
            "sampled_on": date(2025, 9, 1),
            "time_point": "follow_up",
            "unit": "fraction",
            "qualitative": "negative",
            "sensitivity": 1e-4,
        },
        actor=clinician,
        now=timezone.now(),
    )
    at(time_machine, "2025-10-18")
    services.block_record(
        a3,
        data={"block_type": "R1", "start_date": date(2025, 10, 18)},
        actor=clinician,
        now=timezone.now(),
    )
    at(time_machine, "2026-11-24")
    assert unconfirmed.risk_group is None
    return {"A": [a1, a2, a3, a4], "B": [b1, b2]}


def _curve(group: dict) -> list[tuple]:
    return [
        (p["time_days"], p["survival"], p["se"], p["at_risk"], p["events"], p["censored"])
        for p in group["curve"]
    ]


def test_outcomes_estimate_efs_per_group_of_the_requesters_courses(api, clinician, cohort):
    response = api(clinician).get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["protocol"] == "all-rez-bfm-90"
    groups = {g["group"]: g for g in body["groups"]}
    assert list(groups) == ["PPG", "A", "B", "C"]  # the protocol's order

    a = groups["A"]
    assert (a["n"], a["events"], a["censored"]) == (4, 2, 2)
    # 0 event (refractory, 4 at risk), 131 censored, 396 event (2 at risk), 596 censored.
    # S(0) = 3/4; S(396) = 3/4 * 1/2. Greenwood: SE(0) = 3/4*sqrt(1/12);
    # SE(396) = 3/8*sqrt(1/12 + 1/2).
    assert _curve(a) == [
        (0, 0.75, 0.216506, 4, 1, 0),
        (131, 0.75, 0.216506, 3, 0, 1),
        (396, 0.375, 0.286411, 2, 1, 0),
        (596, 0.375, 0.286411, 1, 0, 1),
    ]
    assert a["median_efs_days"] == 396
    assert a["median_efs_years"] == pytest.approx(396 / 365.25, abs=1e-4)
    assert a["curve"][2]["time_years"] == pytest.approx(396 / 365.25, abs=1e-4)
    assert 0 < a["curve"][2]["ci_lower"] < 0.375 < a["curve"][2]["ci_upper"] < 1
    # Follow-up is far shorter than 5 years: no 5- or 10-year estimate.
    assert [(e["years"], e["reachable"], e["survival"]) for e in a["estimates"]] == [
        (5, False, None),
        (10, False, None),
    ]

    b = groups["B"]
    assert (b["n"], b["events"]) == (2, 1)
    assert _curve(b) == [
        (0, 1.0, 0.0, 2, 0, 0),
        (212, 0.5, 0.353553, 2, 1, 0),
        (396, 0.5, 0.353553, 1, 0, 1),
    ]
    assert b["median_efs_days"] == 212

    for empty in ("PPG", "C"):
        assert (groups[empty]["n"], groups[empty]["curve"]) == (0, [])
        assert groups[empty]["median_efs_days"] is None


def test_outcomes_carry_the_unverified_reference_figures_with_their_source(api, clinician, cohort):
    reference = api(clinician).get(URL).json()["reference"]
    assert reference["verification"] == "seed article, not verified against the paper's tables"
    assert "Tallen" in reference["source"] and "2339" in reference["source"]
    # The seed gives no time horizon: none is claimed (never "10-year", issue 11).
    assert reference["horizon_years"] is None
    assert reference["horizon"].startswith("not stated by the source")
    assert "10" not in reference["horizon"]
    figures = {r["group"]: (r["efs"], r["efs_se"], r["cr2_rate"]) for r in reference["groups"]}
    assert figures == {
        "A": (0.17, 0.03, 0.83),
        "B": (0.43, 0.04, 0.94),
        "C": (0.54, 0.06, 1.0),
        "PPG": (0.15, 0.03, None),
    }


def test_another_protocol_is_reported_on_request_without_reference_figures(api, clinician, cohort):
    body = api(clinician).get(URL, {"protocol": "all-rez-bfm-2002"}).json()
    assert body["reference"] is None
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["S3"]["n"] == 1 and groups["S3"]["events"] == 1
    assert api(clinician).get(URL, {"protocol": "nope"}).status_code == 400


def test_team_filter_is_one_of_the_requesters_teams(api, team, other_team, clinician, cohort):
    client = api(clinician)
    mine = client.get(URL, {"team": team.pk})
    assert mine.status_code == 200
    assert mine.json()["team"] == team.pk
    assert mine.json()["groups"] == client.get(URL).json()["groups"]
    assert client.get(URL, {"team": other_team.pk}).status_code == 404
    assert client.get(URL, {"team": 999_999}).status_code == 404
    garbage = client.get(URL, {"team": "abc"})
    assert garbage.status_code == 400
    assert garbage.json()["error"]["fields"].keys() == {"team"}


def test_another_teams_courses_are_never_counted(api, other_team, member, cohort):
    outsider = member(other_team, Role.VIEWER)
    groups = {g["group"]: g for g in api(outsider).get(URL).json()["groups"]}
    # Only the other team's one group-A course (a death on day 191 after its relapse).
    assert groups["A"]["n"] == 1 and groups["A"]["events"] == 1
    assert groups["A"]["curve"][-1]["time_days"] == 191
    assert groups["B"]["n"] == 0


def test_anonymous_requests_are_refused(api, cohort):
    assert api(None).get(URL).status_code == 401


def test_outcomes_as_png_and_svg(api, clinician, cohort):
    client = api(clinician)
    png = client.get(URL, {"format": "png"})
    assert png.status_code == 200
    assert png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = client.get(URL, {"format": "svg"})
    assert svg.status_code == 200
    assert svg["Content-Type"] == "image/svg+xml"
    assert b"<svg" in svg.content[:1000]
    # The Accept header works too.
    assert client.get(URL, HTTP_ACCEPT="image/png")["Content-Type"] == "image/png"


def test_a_bad_filter_with_format_png_answers_the_json_error_shape(api, clinician, cohort):
    response = api(clinician).get(URL, {"format": "png", "team": "abc"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "invalid"


def test_an_empty_cohort_still_draws(api, clinician):
    response = api(clinician).get(URL, {"format": "png"})
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")
    assert all(g["n"] == 0 for g in api(clinician).get(URL).json()["groups"])


def test_outcomes_cost_the_same_queries_for_few_or_many_courses(
    api, team, clinician, make_course, time_machine
):
    client = api(clinician)
    counts = []
    for size in (2, 7):
        at(time_machine, "2025-01-06")
        while _count() < size:
            make_course(team, clinician)
        at(time_machine, "2026-11-24")
        with CaptureQueriesContext(connection) as ctx:
            body = client.get(URL).json()
        counts.append(len(ctx.captured_queries))
        assert sum(g["n"] for g in body["groups"]) == size
    # token+user, roles, one row per course
    assert counts == [3, 3]


def _count() -> int:
    from courses.models import TreatmentCourse

    return TreatmentCourse.objects.count()
