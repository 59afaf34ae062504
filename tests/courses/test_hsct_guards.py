"""The HSCT decision path's guards (issue 13): an undecided indication is not left
silently, a transplant needs CR2 on the latest assessment and MRD in the protocol's
pre-HSCT window, and a non-responder is offered only what does not assume remission.
Each guard: refused without the override, allowed with it, the reason in the log."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from courses.models import CourseTransition
from notifications.models import AlertKind, AlertState
from notifications.services import alerts_sweep
from tests.conftest import induction_blocks

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
    """Induction given (the protocol's two blocks from 2026-09-01, the second on
    2026-09-22, so it ends 2026-09-27: CR2 is judged no earlier), then response
    assessment on 2026-10-01."""
    assert move(client, course, "start_induction").status_code == 200
    for block_type, start in induction_blocks(date(2026, 9, 1), course.protocol_slug):
        CLOCK[0](start.isoformat())
        block = post(
            client,
            f"/api/v1/courses/{course.pk}/blocks/",
            {"block_type": block_type, "start_date": start.isoformat()},
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


def test_an_mrd_labelled_otherwise_in_the_window_counts_with_a_warning_on_the_move(in_workup):
    client, course = in_workup
    # Labelled end of induction by the lab, but sampled 12 days before the transplant.
    CLOCK[0]("2026-11-08")
    made = post(
        client,
        f"/api/v1/courses/{course.pk}/mrd/",
        {
            "sampled_on": "2026-11-08",
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": 0.0002,
        },
    )
    assert made.status_code == 201, made.content
    transplanted_on(client, course, "2026-11-20")
    assert move(client, course, "transplant").status_code == 200
    logged = history(client, course)["transplant"]
    assert logged["overridden"] == [] and logged["recorded_as"] == ""
    assert logged["warnings"] == [
        "MRD sampled on 2026-11-08, labelled end of induction, counted as the pre-HSCT MRD"
    ]
    assert timeline_transitions(client, course)["transplant"]["warnings"] == logged["warnings"]


def test_the_latest_sample_in_the_window_by_date_decides_the_warning(in_workup):
    client, course = in_workup
    mrd(client, course, "2026-11-12")  # labelled pre_hsct, the latest sampled
    CLOCK[0]("2026-11-14")
    # Entered later, but sampled earlier, with another label: not the pre-HSCT MRD.
    made = post(
        client,
        f"/api/v1/courses/{course.pk}/mrd/",
        {
            "sampled_on": "2026-11-01",
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": 0.0002,
        },
    )
    assert made.status_code == 201, made.content
    transplanted_on(client, course, "2026-11-20")
    assert move(client, course, "transplant").status_code == 200
    assert history(client, course)["transplant"]["warnings"] == []


def test_a_transplant_with_mrd_on_the_window_edge_needs_no_reason(in_workup):
    client, course = in_workup
    mrd(client, course, "2026-10-21")  # exactly 30 days before 2026-11-20
    transplanted_on(client, course, "2026-11-20")
    assert move(client, course, "transplant").status_code == 200


def test_a_later_non_cr_assessment_refuses_the_transplant_without_a_reason(in_workup):
    # Was "blocks the transplant whatever the reason" (issue 13); since issue 22 a
    # reason allows it, recorded as a transplant in non-CR (see the scenario below).
    client, course = in_workup
    mrd(client, course, "2026-11-15")
    assess(client, course, "2026-11-16", marrow="M3", cr2=False)  # loss of CR2
    transplanted_on(client, course, "2026-11-20")
    error = refused(move(client, course, "transplant"), "latest response")
    assert "give a reason to transplant in non-CR" in error["message"]
    assert error["allowed_transitions"] == ["take_off_protocol", "transplant"]
    # A re-assessment in CR2 opens the way again, with no reason and nothing overridden.
    assess(client, course, "2026-11-19")
    transplanted_on(client, course, "2026-11-20")
    assert move(client, course, "transplant").status_code == 200
    assert CourseTransition.objects.get(course=course, name="transplant").overridden == []


def history(client: Any, course: Any) -> dict[str, dict]:
    answer = client.get(f"/api/v1/courses/{course.pk}/transitions/")
    assert answer.status_code == 200, answer.content
    return {t["name"]: t for t in answer.json()["history"]}


def timeline_transitions(client: Any, course: Any) -> dict[str, dict]:
    body = client.get(f"/api/v1/courses/{course.pk}/timeline/").json()
    entries = body["entries"] if isinstance(body, dict) else body
    return {e["name"]: e for e in entries if e["type"] == "transition"}


def test_a_transplant_in_non_cr_is_allowed_with_a_reason_and_recorded_as_such(in_workup, clinician):
    # Group A, CR2 on 2026-10-01, in work-up; the marrow of 2026-11-10 shows M3
    # (refractory disease), and the team transplants anyway on 2026-11-20.
    client, course = in_workup
    mrd(client, course, "2026-11-05", value=0.3)
    assess(client, course, "2026-11-10", marrow="M3", cr2=False)
    transplanted_on(client, course, "2026-11-20")

    error = refused(move(client, course, "transplant"), "does not show CR2")
    assert "give a reason to transplant in non-CR" in error["message"]
    assert error["allowed_transitions"] == ["take_off_protocol", "transplant"]
    options = client.get(f"/api/v1/courses/{course.pk}/transitions/").json()["allowed"]
    [transplant] = [o for o in options if o["transition"] == "transplant"]
    assert transplant["requires"] == ["reason"]

    why = "refractory disease after R3; tumour board 2026-11-12: transplant in non-CR"
    done = move(client, course, "transplant", reason=why)
    assert done.status_code == 200, done.content
    assert done.json()["state"] == "transplanted"

    logged = history(client, course)["transplant"]
    assert logged["reason"] == why
    assert logged["overridden"] == ["latest_assessment_cr2"]
    assert logged["recorded_as"] == "transplant in non-CR"
    shown = timeline_transitions(client, course)["transplant"]
    assert (shown["recorded_as"], shown["reason"]) == ("transplant in non-CR", why)
    # The web course page's history of moves says it too.
    browser = Client()
    browser.force_login(clinician)
    html = browser.get(f"/courses/{course.pk}/").content.decode()
    assert "Transplant: <strong>transplant in non-CR</strong>" in html


def test_the_hsct_path_alerts_keep_running_on_a_course_transplanted_in_non_cr(in_workup, clinician):
    client, course = in_workup
    assess(client, course, "2026-11-10", marrow="M3", cr2=False)
    transplanted_on(client, course, "2026-11-20")  # no MRD in the window either
    assert move(client, course, "transplant", reason="refractory; board agreed").status_code == 200
    assert CourseTransition.objects.get(course=course, name="transplant").overridden == [
        "latest_assessment_cr2",
        "mrd_before_transplant",
    ]

    def open_kinds() -> set[str]:
        alerts_sweep(timezone.now())
        rows = course.alerts.exclude(state=AlertState.RESOLVED)
        return set(rows.values_list("kind", flat=True))

    CLOCK[0]("2026-11-27")
    # The transplant is the decision non_response waits for; the transplant without
    # pre-HSCT MRD is still said, and the schedule's late steps too (a non-responder's
    # would be silent).
    kinds = open_kinds()
    assert AlertKind.NON_RESPONSE not in kinds
    assert {AlertKind.MRD_MISSING_BEFORE_HSCT, AlertKind.STEP_OVERDUE} <= kinds
    # Nothing recorded for the post-transplant interval (100 days): the course is
    # watched as a transplanted course, not silenced as a non-responder's.
    CLOCK[0]("2027-03-01")
    assert AlertKind.COURSE_STALLED in open_kinds()
    # A non-CR marrow after the transplant is non-response again.
    assess(client, course, "2027-03-01", marrow="M3", cr2=False)
    CLOCK[0]("2027-03-08")
    assert AlertKind.NON_RESPONSE in open_kinds()


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
