"""Scenario tests (issue 13): a team walks a course through the API on realistic
clinical dates, the sweep runs as beat runs it, and each way a child can miss a timely,
well-prepared transplant raises exactly its alert, whose e-mail reaches a clinician but
not a viewer (viewers get the digest only)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.utils import timezone

from notifications.models import AlertKind, AlertState, OutboundEmail
from notifications.services import alerts_sweep

pytestmark = pytest.mark.django_db


class Team:
    """What a team does on a day: the clock moves there, then the requests."""

    def __init__(self, clock: Any, client: Any, course: Any) -> None:
        self.clock, self.client, self.course = clock, client, course

    def on(self, day: str) -> Team:
        self.clock(day)
        return self

    def post(self, path: str, body: dict, status: int = 201) -> Any:
        answer = self.client.post(f"/api/v1/courses/{self.course.pk}/{path}", body, format="json")
        assert answer.status_code == status, answer.content
        return answer

    def block(self, block_type: str, start: str) -> None:
        self.post("blocks/", {"block_type": block_type, "start_date": start})

    def assess(self, on: str, marrow: str = "M1") -> None:
        body = {"assessed_on": on, "marrow": marrow, "cr2": marrow == "M1", "em_status": "none"}
        self.post("assessments/", body)

    def mrd(self, on: str, time_point: str, value: float) -> None:
        body = {"sampled_on": on, "time_point": time_point, "unit": "fraction", "value": value}
        self.post("mrd/", body)

    def referral(self, **body: str) -> None:
        answer = self.client.put(
            f"/api/v1/courses/{self.course.pk}/hsct-referral/", body, format="json"
        )
        assert answer.status_code == 200, answer.content

    def move(self, name: str, status: int = 200, **extra: str) -> Any:
        return self.post("transitions/", {"transition": name, **extra}, status=status)


def sweep() -> None:
    alerts_sweep(timezone.now())


def open_kinds(course: Any) -> set[str]:
    return set(course.alerts.exclude(state=AlertState.RESOLVED).values_list("kind", flat=True))


def heard_at_once(kind: str) -> set[str]:
    rows = OutboundEmail.objects.filter(alert__kind=kind, kind="immediate")
    return set(rows.values_list("recipient", flat=True))


@pytest.fixture
def walk(clock, api, team, clinician, viewer, make_course):  # noqa: ANN001, ANN201
    """walk(protocol=..., **relapse) -> a Team acting on a course confirmed on
    2026-09-01 (therapy starts that day)."""
    assert viewer.email and clinician.email

    def start(**kwargs: Any) -> Team:
        clock("2026-09-01")
        course = make_course(team, clinician, **kwargs)
        return Team(clock, api(clinician), course)

    return start


def assert_heard_by_clinician_not_viewer(kind: str, clinician: Any, viewer: Any) -> None:
    heard = heard_at_once(kind)
    assert clinician.email in heard
    assert viewer.email not in heard


def s2_induction(t: Team) -> None:
    """An S2 course's induction as a team records it: F1 on the start, the referral for
    HLA typing, F2 three weeks later, CR2 at the end of induction."""
    t.move("start_induction")
    t.block("F1", "2026-09-01")
    t.on("2026-09-05").referral(referred_on="2026-09-05", donor_search_status="ongoing")
    t.on("2026-09-22").block("F2", "2026-09-22")
    t.on("2026-10-13").assess("2026-10-13")
    t.move("assess_response")


def test_the_s2_course_that_skipped_its_decision(walk, clinician, viewer):
    t = walk(protocol="all-rez-bfm-2002", relapse_date=date(2024, 9, 1))  # S2, undecided
    c = t.course
    s2_induction(t)
    # No MRD at the end of induction: the tool refuses to leave the decision silently.
    refused = t.on("2026-10-14").move("continue_chemotherapy", status=409)
    assert "undecided" in refused.json()["error"]["message"]
    t.move("continue_chemotherapy", reason="MRD sample lost in transit; repeat requested")
    t.on("2026-10-19")
    sweep()
    assert open_kinds(c) == set()
    # The deciding MRD step was due on 2026-10-13: 7 days later it is missing.
    t.on("2026-10-20")
    sweep()
    assert open_kinds(c) == {AlertKind.MRD_DECISION_MISSING}
    [alert] = c.alerts.filter(kind=AlertKind.MRD_DECISION_MISSING)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 10, 20))
    assert_heard_by_clinician_not_viewer(AlertKind.MRD_DECISION_MISSING, clinician, viewer)


def test_the_unconfirmed_hsct_proposal(walk, clinician, viewer):
    t = walk(protocol="all-rez-bfm-2002", relapse_date=date(2024, 9, 1))
    c = t.course
    s2_induction(t)
    t.mrd("2026-10-13", "end_of_induction", 0.005)  # >= 10^-3: HSCT proposed (Eckert 2013)
    c.refresh_from_db()
    assert (c.hsct_proposed, c.hsct_indicated) == (True, None)
    t.on("2026-10-19")
    sweep()
    assert open_kinds(c) == set()
    t.on("2026-10-20")
    sweep()
    assert open_kinds(c) == {AlertKind.HSCT_DECISION_PENDING}
    assert_heard_by_clinician_not_viewer(AlertKind.HSCT_DECISION_PENDING, clinician, viewer)
    # Confirmed: the alert clears.
    confirmed = t.post("confirm-hsct/", {"hsct_indicated": True}, status=200)
    assert confirmed.json()["hsct_indicated"] is True
    sweep()
    assert AlertKind.HSCT_DECISION_PENDING not in open_kinds(c)


def test_the_non_responder(walk, clinician, viewer):
    t = walk()  # group A under ALL-REZ BFM 90: HSCT indicated
    c = t.course
    t.move("start_induction")
    t.block("R2", "2026-09-01")
    t.on("2026-09-15")
    sweep()
    assert open_kinds(c) == {AlertKind.HSCT_REFERRAL_MISSING}  # no referral after 14 days
    t.on("2026-09-22").block("R1", "2026-09-22")
    t.on("2026-10-13").assess("2026-10-13", marrow="M3")  # M3 after R2: no CR2
    t.move("assess_response")
    assert [
        o["transition"]
        for o in t.client.get(f"/api/v1/courses/{c.pk}/transitions/").json()["allowed"]
    ] == ["take_off_protocol"]
    t.on("2026-10-19")
    sweep()
    assert open_kinds(c) == set()  # the referral alert is not this course's problem now
    t.on("2026-10-20")
    sweep()
    assert open_kinds(c) == {AlertKind.NON_RESPONSE}
    assert_heard_by_clinician_not_viewer(AlertKind.NON_RESPONSE, clinician, viewer)
    # 97 days on, still undecided: no referral-missing, overdue-block or stalled noise.
    t.on("2027-01-18")
    sweep()
    assert open_kinds(c) == {AlertKind.NON_RESPONSE}


def test_the_transplant_with_high_mrd(walk, clinician, viewer):
    t = walk()  # group A
    c = t.course
    t.move("start_induction")
    t.block("R2", "2026-09-01")
    t.on("2026-09-05").referral(referred_on="2026-09-05", donor_search_status="ongoing")
    t.on("2026-09-22").block("R1", "2026-09-22")
    t.on("2026-10-13").assess("2026-10-13")
    t.move("assess_response")
    t.block("R3", "2026-10-13")
    t.on("2026-10-14").move("start_hsct_workup")
    t.on("2026-11-03").block("R2", "2026-11-03")
    t.referral(referred_on="2026-09-05", donor_search_status="donor_found", planned_on="2026-11-27")
    # A first pre-HSCT sample below 10^-3 (the window is 30 days before the transplant).
    t.mrd("2026-11-03", "pre_hsct", 0.0005)
    t.on("2026-11-16")
    sweep()
    assert open_kinds(c) == set()
    # Pre-HSCT MRD of 2x10^-2 with the transplant 10 days away.
    t.on("2026-11-17").mrd("2026-11-17", "pre_hsct", 0.02)
    sweep()
    assert open_kinds(c) == {AlertKind.MRD_HIGH_BEFORE_HSCT}
    [alert] = c.alerts.filter(kind=AlertKind.MRD_HIGH_BEFORE_HSCT)
    assert "0.02" in alert.message and "2026-11-27" in alert.message
    assert_heard_by_clinician_not_viewer(AlertKind.MRD_HIGH_BEFORE_HSCT, clinician, viewer)


def test_the_30_day_cumulative_delay(walk, clinician, viewer):
    t = walk(relapse_date=date(2024, 9, 1))  # group B: chemotherapy, six blocks
    c = t.course
    # Each block starts 5 days after it was due (count recovery). Block 1's grace is 3
    # days, so it is overdue for two days; blocks 2-6 stay inside their 7-day grace, and
    # the delays against the protocol plan add up: 5, 10 ... 30 days.
    t.on("2026-09-05")
    sweep()
    assert open_kinds(c) == {AlertKind.STEP_OVERDUE}
    t.on("2026-09-06").move("start_induction")
    t.block("R2", "2026-09-06")  # due 2026-09-01
    sweep()
    assert open_kinds(c) == set()
    t.on("2026-10-02").block("R1", "2026-10-02")  # due 09-27
    t.on("2026-10-23").assess("2026-10-23")  # on time: due 21 days after block 2
    t.move("assess_response")
    t.move("continue_chemotherapy")
    for block_type, start in [
        ("R2", "2026-10-28"),  # due 10-23: 15 days behind the plan
        ("R1", "2026-11-23"),  # due 11-18: 20
        ("R2", "2026-12-19"),  # due 12-14: 25
    ]:
        t.on(start).block(block_type, start)
        sweep()
        assert open_kinds(c) == set()
    t.on("2027-01-14").block("R1", "2027-01-14")  # due 2027-01-09: 30 days behind
    sweep()
    assert open_kinds(c) == {AlertKind.CUMULATIVE_DELAY}
    [alert] = c.alerts.filter(kind=AlertKind.CUMULATIVE_DELAY)
    assert (alert.severity, alert.condition_since) == ("medium", date(2027, 1, 14))
    # Medium: nobody hears it at once by default; left unacknowledged for a day it
    # escalates, and then reaches the clinician at once, never the viewer.
    assert heard_at_once(AlertKind.CUMULATIVE_DELAY) == set()
    t.on("2027-01-15")
    sweep()
    alert.refresh_from_db()
    assert alert.escalation_level == 1
    assert_heard_by_clinician_not_viewer(AlertKind.CUMULATIVE_DELAY, clinician, viewer)


def test_the_confirmed_decision_whose_deciding_mrd_is_corrected(walk, clinician, viewer):
    # Issue 22: "HSCT indicated" confirmed on MRD 5x10^-3; the lab then corrects the
    # result to 5x10^-4. The decision is not left standing silently.
    t = walk(protocol="all-rez-bfm-2002", relapse_date=date(2024, 9, 1))  # S2
    c = t.course
    s2_induction(t)
    sample = t.post(
        "mrd/",
        {
            "sampled_on": "2026-10-13",
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": 0.005,
        },
    ).json()
    t.on("2026-10-14").post("confirm-hsct/", {"hsct_indicated": True}, status=200)
    t.move("start_hsct_workup")
    sweep()
    assert AlertKind.HSCT_DECISION_REVIEW not in open_kinds(c)
    t.on("2026-10-20")
    corrected = t.client.patch(
        f"/api/v1/courses/{c.pk}/mrd/{sample['id']}/",
        {"value": 0.0005, "unit": "fraction", "reason": "lab report corrected: 5x10^-4"},
        format="json",
    )
    assert corrected.status_code == 200, corrected.content
    sweep()
    [alert] = c.alerts.filter(kind=AlertKind.HSCT_DECISION_REVIEW)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 10, 20))
    assert "from 0.005 to 0.0005" in alert.message
    assert_heard_by_clinician_not_viewer(AlertKind.HSCT_DECISION_REVIEW, clinician, viewer)
    # Deciding again needs a reason; with one, the alert clears.
    t.post("confirm-hsct/", {"hsct_indicated": True}, status=400)
    t.post(
        "confirm-hsct/",
        {"hsct_indicated": True, "reason": "donor found; MRD-positive at 5x10^-4, HSCT stands"},
        status=200,
    )
    sweep()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
