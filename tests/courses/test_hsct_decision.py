"""The HSCT decision stays true to the evidence (issue 22), walked through the API as a
team enters an ALL-REZ BFM 2002 S2 course (a late isolated marrow relapse of BCP-ALL,
HSCT decided by MRD after F2): the right sample decides (after F2, the latest by sample
date), the decision is visible before and after confirmation, and a confirmed decision
whose basis changes is flagged until a clinician decides again with a reason."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from courses.models import MrdResult, PlannedStep

pytestmark = pytest.mark.django_db


class Walk:
    def __init__(self, time_machine: Any, client: Any, course: Any) -> None:
        self.time_machine, self.client, self.course = time_machine, client, course

    def on(self, day: str) -> Walk:
        self.time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)
        return self

    def url(self, path: str = "") -> str:
        return f"/api/v1/courses/{self.course.pk}/{path}"

    def post(self, path: str, body: dict, status: int = 201) -> dict:
        answer = self.client.post(self.url(path), body, format="json")
        assert answer.status_code == status, answer.content
        return answer.json()

    def mrd(self, sampled_on: str, value: float, time_point: str = "end_of_induction") -> dict:
        body = {"sampled_on": sampled_on, "time_point": time_point, "unit": "fraction"}
        return self.post("mrd/", {**body, "value": value})

    def decision(self) -> dict:
        return self.client.get(self.url()).json()["hsct_decision"]

    def course_json(self) -> dict:
        return self.client.get(self.url()).json()


@pytest.fixture
def s2(time_machine, api, team, clinician, make_course) -> Walk:  # noqa: ANN001
    """Relapse 2026-02-02 (late: front-line therapy ended 2024-01-10), F1 given on
    2026-03-02 and the stratification confirmed that day: S2, HSCT undecided."""
    walk = Walk(time_machine, api(clinician), None)
    walk.on("2026-03-02")
    walk.course = make_course(
        team, clinician, protocol="all-rez-bfm-2002", relapse_date=date(2026, 2, 2), confirm=False
    )
    walk.post("blocks/", {"block_type": "F1", "start_date": "2026-03-02"})
    walk.post("confirm-stratification/", {"risk_group": "S2", "reason": ""}, status=200)
    return walk


def test_a_day_8_sample_before_f2_is_kept_and_never_decides(s2):
    # The marrow of day 8 came labelled end of induction; F2 is not given yet.
    s2.on("2026-03-12").mrd("2026-03-10", 0.0002)
    course = s2.course_json()
    assert (course["hsct_proposed"], course["hsct_indicated"]) == (None, None)
    decision = s2.decision()
    assert decision["status"] == "undecided"
    assert decision["evidence"]["sample"] is None
    [warning] = decision["evidence"]["warnings"]
    assert "2026-03-10" in warning and "does not decide" in warning and "F2" in warning
    # The deciding MRD step stays open (and watched): the day-8 sample closes nothing.
    step = PlannedStep.objects.get(course=s2.course, key="mrd_end_of_induction")
    assert step.status == "planned"
    # F2 on 2026-03-23: the window opens on 2026-03-28; the day-8 sample still does not
    # decide, and the real post-F2 sample of 5x10^-3 does.
    s2.on("2026-03-23").post("blocks/", {"block_type": "F2", "start_date": "2026-03-23"})
    assert s2.decision()["evidence"]["window_from"] == "2026-03-28"
    assert s2.course_json()["hsct_proposed"] is None
    s2.on("2026-04-15").mrd("2026-04-13", 0.005)
    course = s2.course_json()
    assert course["hsct_proposed"] is True
    assert course["hsct_proposal_basis"].startswith("Sample of 2026-04-13:")
    decision = course["hsct_decision"]
    assert decision["status"] == "proposed"
    assert decision["evidence"]["sample"]["sampled_on"] == "2026-04-13"
    assert decision["evidence"]["sample"]["value"] == 0.005
    assert decision["evidence"]["rule"] == "hsct_s2_mrd"
    assert len(decision["evidence"]["warnings"]) == 1  # the day-8 sample, still shown
    step.refresh_from_db()
    assert (step.status, step.done_on) == ("done", date(2026, 4, 13))


def test_a_back_entered_older_sample_does_not_flip_the_proposal(s2):
    s2.on("2026-03-23").post("blocks/", {"block_type": "F2", "start_date": "2026-03-23"})
    s2.on("2026-04-15").mrd("2026-04-13", 0.005)
    # A week later the lab's earlier result (after F2 too) is typed in: entered last,
    # sampled first. The latest by sample date decides.
    s2.on("2026-04-22").mrd("2026-04-06", 0.0004)
    course = s2.course_json()
    assert course["hsct_proposed"] is True
    assert course["hsct_decision"]["evidence"]["sample"]["sampled_on"] == "2026-04-13"


def _confirmed_hsct(s2: Walk) -> dict:
    s2.on("2026-03-23").post("blocks/", {"block_type": "F2", "start_date": "2026-03-23"})
    sample = s2.on("2026-04-15").mrd("2026-04-13", 0.005)
    s2.on("2026-04-16").post(
        "confirm-hsct/", {"hsct_indicated": True, "reason": "as proposed"}, status=200
    )
    return sample


def test_the_confirmed_decision_shows_who_when_why_and_its_basis(s2, clinician):
    _confirmed_hsct(s2)
    decision = s2.decision()
    assert (decision["status"], decision["indicated"]) == ("confirmed", True)
    confirmed = decision["confirmed"]
    assert confirmed["by"] == clinician.username
    assert confirmed["at"].startswith("2026-04-16")
    assert confirmed["reason"] == "as proposed"
    assert confirmed["basis"]["sample"]["sampled_on"] == "2026-04-13"
    assert confirmed["basis"]["sample"]["value"] == 0.005
    assert "Eckert" in confirmed["basis"]["source"]
    assert decision["review"] is None


def test_an_amended_deciding_mrd_flags_the_confirmed_decision_until_decided_again(s2):
    sample = _confirmed_hsct(s2)
    # The lab corrects the deciding value: 5x10^-4, below the S2 cut-off.
    amended = s2.on("2026-04-20").client.patch(
        s2.url(f"mrd/{sample['id']}/"),
        {"value": 0.0005, "unit": "fraction", "reason": "lab corrected the report"},
        format="json",
    )
    assert amended.status_code == 200, amended.content
    course = s2.course_json()
    # The decision is not changed behind the clinician's back, and not left silent.
    assert course["hsct_indicated"] is True
    decision = course["hsct_decision"]
    assert decision["status"] == "review"
    assert decision["review"]["since"] == "2026-04-20"
    assert "amended (from 0.005 to 0.0005)" in decision["review"]["reason"]
    assert decision["evidence"]["indicated"] is False  # what the evidence says now
    assert decision["confirmed"]["basis"]["sample"]["value"] == 0.005  # what it said then
    # Deciding again needs a reason, whichever way.
    refused = s2.client.post(s2.url("confirm-hsct/"), {"hsct_indicated": True}, format="json")
    assert refused.status_code == 400
    assert "under review since 2026-04-20" in refused.json()["error"]["fields"]["reason"][0]
    s2.post(
        "confirm-hsct/",
        {"hsct_indicated": False, "reason": "corrected MRD below 10^-3: chemotherapy"},
        status=200,
    )
    decision = s2.decision()
    assert (decision["status"], decision["indicated"], decision["review"]) == (
        "confirmed",
        False,
        None,
    )
    assert decision["confirmed"]["basis"]["sample"]["value"] == 0.0005


def test_a_voided_deciding_mrd_flags_the_confirmed_decision(s2):
    sample = _confirmed_hsct(s2)
    s2.on("2026-04-21").post(
        f"mrd/{sample['id']}/void/", {"reason": "sample of another patient"}, status=200
    )
    review = s2.decision()["review"]
    assert review["since"] == "2026-04-21"
    assert "2026-04-13" in review["reason"] and "was voided" in review["reason"]
    assert MrdResult.with_voided.get(pk=sample["id"]).voided_at is not None


def test_a_later_deciding_sample_that_points_the_other_way_flags_the_decision(s2):
    _confirmed_hsct(s2)
    s2.on("2026-05-06").mrd("2026-05-04", 0.0001)
    decision = s2.decision()
    assert decision["status"] == "review"
    reason = decision["review"]["reason"]
    assert "2026-05-04" in reason and "other way" in reason
    # A later sample that agrees would not have: the flag names the sample that disagrees.
    assert decision["indicated"] is True


def test_a_later_sample_that_agrees_leaves_the_decision_standing(s2):
    _confirmed_hsct(s2)
    s2.on("2026-05-06").mrd("2026-05-04", 0.004)
    assert s2.decision()["status"] == "confirmed"


def test_before_confirmation_the_group_s_rule_is_shown_as_not_yet_confirmed(
    api, team, clinician, make_course
):
    # Group A (ALL-REZ BFM 90, early marrow relapse): HSCT by the group's rule, which a
    # clinician confirms with the group.
    course = make_course(team, clinician, confirm=False)
    client = api(clinician)
    decision = client.get(f"/api/v1/courses/{course.pk}/").json()["hsct_decision"]
    assert (decision["status"], decision["indicated"]) == ("by_group", True)
    assert decision["evidence"]["rule"] == "hsct_a" and decision["confirmed"] is None
    confirmed = client.post(
        f"/api/v1/courses/{course.pk}/confirm-stratification/",
        {"risk_group": "A", "reason": ""},
        format="json",
    )
    assert confirmed.status_code == 200, confirmed.content
    decision = confirmed.json()["hsct_decision"]
    assert decision["status"] == "confirmed"
    assert decision["confirmed"]["by"] == clinician.username
    assert decision["confirmed"]["basis"]["rule"] == "hsct_a"
