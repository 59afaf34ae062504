"""The HSCT decision path's guards (issue 13): an undecided indication is not left
silently, a transplant needs CR2 on the latest assessment and MRD in the protocol's
pre-HSCT window, and a non-responder is offered only what does not assume remission.
Each guard: refused without the override, allowed with it, the reason in the log."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from courses.models import CourseTransition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def day(time_machine: Any) -> Any:
    """day("2026-10-01") moves the frozen clock there (10:00 UTC); courses open on
    2026-09-01, and each record is entered on its clinical date."""

    def move(iso: str) -> None:
        time_machine.move_to(f"{iso}T10:00:00+00:00", tick=False)

    move("2026-09-01")
    CLOCK[:] = [move]
    return move


CLOCK: list[Any] = []


def post(client: Any, url: str, body: dict) -> Any:
    return client.post(url, body, format="json")


def move(client: Any, course: Any, name: str, **extra: str) -> Any:
    return post(client, f"/api/v1/courses/{course.pk}/transitions/", {"transition": name, **extra})


def assess(client: Any, course: Any, on: str, marrow: str = "M1", cr2: bool = True) -> None:
    CLOCK[0](on)
    made = post(
        client,
        f"/api/v1/courses/{course.pk}/assessments/",
        {"assessed_on": on, "marrow": marrow, "cr2": cr2, "em_status": "none"},
    )
    assert made.status_code == 201, made.content


def to_response_assessment(client: Any, course: Any) -> None:
    assert move(client, course, "start_induction").status_code == 200
    first = "F1" if course.protocol_slug == "all-rez-bfm-2002" else "R2"
    block = post(
        client,
        f"/api/v1/courses/{course.pk}/blocks/",
        {"block_type": first, "start_date": "2026-09-01"},
    )
    assert block.status_code == 201, block.content
    CLOCK[0]("2026-10-01")
    assert move(client, course, "assess_response").status_code == 200


def refused(response: Any, words: str) -> dict:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert words in error["message"]
    return error


def timeline_reasons(client: Any, course: Any) -> dict[str, str]:
    answer = client.get(f"/api/v1/courses/{course.pk}/timeline/")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    entries = body["entries"] if isinstance(body, dict) else body
    return {e["name"]: e["reason"] for e in entries if e["type"] == "transition"}


def test_leaving_the_decision_undecided_needs_a_reason_kept_in_the_log_and_timeline(
    api, clinician, make_course
):
    # S2 under ALL-REZ BFM 2002: the indication waits for MRD at the end of induction.
    course = make_course(
        clinician.memberships.first().team,
        clinician,
        protocol="all-rez-bfm-2002",
        relapse_date=date(2024, 9, 1),
    )
    assert (course.risk_group, course.hsct_indicated) == ("S2", None)
    client = api(clinician)
    to_response_assessment(client, course)
    assess(client, course, "2026-10-01")

    error = refused(move(client, course, "continue_chemotherapy"), "HSCT indication is undecided")
    assert "continue_chemotherapy" in error["allowed_transitions"]
    options = client.get(f"/api/v1/courses/{course.pk}/transitions/").json()["allowed"]
    [chemo] = [o for o in options if o["transition"] == "continue_chemotherapy"]
    assert chemo["requires"] == ["reason"]

    why = "MRD sample lost; tumour board 2026-10-02 decides after the repeat"
    assert move(client, course, "continue_chemotherapy", reason=why).status_code == 200
    CLOCK[0]("2027-03-01")
    refused(move(client, course, "start_maintenance"), "HSCT indication is undecided")
    assert move(client, course, "start_maintenance", reason="still no MRD").status_code == 200

    log = dict(CourseTransition.objects.filter(course=course).values_list("name", "reason"))
    assert log["continue_chemotherapy"] == why
    assert log["start_maintenance"] == "still no MRD"
    shown = timeline_reasons(client, course)
    assert shown["continue_chemotherapy"] == why


def test_a_decided_indication_needs_no_reason(api, clinician, make_course):
    course = make_course(
        clinician.memberships.first().team, clinician, relapse_date=date(2024, 9, 1)
    )  # group B under ALL-REZ BFM 90: HSCT not indicated
    client = api(clinician)
    to_response_assessment(client, course)
    assess(client, course, "2026-10-01")
    assert move(client, course, "continue_chemotherapy").status_code == 200


@pytest.fixture
def in_workup(api: Any, clinician: Any, make_course: Any) -> tuple[Any, Any]:
    """Group A (HSCT indicated), CR2 on 2026-10-01, in HSCT work-up, transplanted on
    2026-11-20 as the referral records."""
    course = make_course(clinician.memberships.first().team, clinician)
    client = api(clinician)
    to_response_assessment(client, course)
    assess(client, course, "2026-10-01")
    CLOCK[0]("2026-10-02")
    assert move(client, course, "start_hsct_workup").status_code == 200
    return client, course


def transplanted_on(client: Any, course: Any, on: str) -> None:
    CLOCK[0](on)
    referral = client.put(
        f"/api/v1/courses/{course.pk}/hsct-referral/",
        {"referred_on": "2026-09-10", "donor_search_status": "donor_found", "performed_on": on},
        format="json",
    )
    assert referral.status_code == 200, referral.content


def mrd(client: Any, course: Any, on: str, value: float = 0.0001) -> None:
    CLOCK[0](on)
    made = post(
        client,
        f"/api/v1/courses/{course.pk}/mrd/",
        {"sampled_on": on, "time_point": "pre_hsct", "unit": "fraction", "value": value},
    )
    assert made.status_code == 201, made.content


def test_a_transplant_without_mrd_in_the_window_is_refused_unless_overridden(in_workup):
    client, course = in_workup
    # 31 days before the transplant: outside the 30-day pre-HSCT window (local default).
    mrd(client, course, "2026-10-20")
    transplanted_on(client, course, "2026-11-20")
    error = refused(move(client, course, "transplant"), "pre-HSCT window")
    assert error["allowed_transitions"] == ["take_off_protocol", "transplant"]
    why = "MRD sample of 2026-11-12 sent abroad, result pending; board agreed"
    done = move(client, course, "transplant", reason=why)
    assert done.status_code == 200 and done.json()["state"] == "transplanted"
    assert CourseTransition.objects.get(course=course, name="transplant").reason == why
    assert timeline_reasons(client, course)["transplant"] == why


def test_a_transplant_with_mrd_on_the_window_edge_needs_no_reason(in_workup):
    client, course = in_workup
    mrd(client, course, "2026-10-21")  # exactly 30 days before 2026-11-20
    transplanted_on(client, course, "2026-11-20")
    assert move(client, course, "transplant").status_code == 200


def test_a_later_non_cr_assessment_blocks_the_transplant_whatever_the_reason(in_workup):
    client, course = in_workup
    mrd(client, course, "2026-11-15")
    assess(client, course, "2026-11-16", marrow="M3", cr2=False)  # loss of CR2
    transplanted_on(client, course, "2026-11-20")
    error = refused(move(client, course, "transplant", reason="go ahead"), "latest response")
    assert error["allowed_transitions"] == ["take_off_protocol"]
    # A re-assessment in CR2 opens the way again.
    assess(client, course, "2026-11-19")
    transplanted_on(client, course, "2026-11-20")
    assert move(client, course, "transplant").status_code == 200


def test_a_non_responder_is_offered_only_what_does_not_assume_remission(
    api, clinician, make_course
):
    course = make_course(clinician.memberships.first().team, clinician)  # group A
    client = api(clinician)
    to_response_assessment(client, course)
    assess(client, course, "2026-10-01", marrow="M3", cr2=False)
    options = client.get(f"/api/v1/courses/{course.pk}/transitions/").json()["allowed"]
    assert [o["transition"] for o in options] == ["take_off_protocol"]
    refused(move(client, course, "start_hsct_workup", reason="anyway"), "non-response")
    refused(move(client, course, "continue_chemotherapy", reason="anyway"), "non-response")
    # The response re-assessment stays possible, and CR2 on it reopens the path.
    assess(client, course, "2026-10-20")
    assert move(client, course, "start_hsct_workup").status_code == 200
    CLOCK[0]("2026-11-01")
    # Taking the course off protocol is always open to a non-responder.
    assess(client, course, "2026-11-01", marrow="M3", cr2=False)
    off = move(
        client, course, "take_off_protocol", reason="refractory", off_protocol_reason="refractory"
    )
    assert off.status_code == 200 and off.json()["state"] == "off_protocol"
