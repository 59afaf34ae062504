"""The course page shows the HSCT decision before and after confirmation (what the
evidence proposes, on which sample, the samples that do not decide; who decided, when
and why), and a decision under review with its reason and the form to decide again."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from django.utils import timezone

from courses import services

pytestmark = pytest.mark.django_db


def at(time_machine: Any, day: str) -> datetime:
    time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)
    return timezone.now()


def mrd(course: Any, actor: Any, sampled_on: date, value: float, now: datetime) -> Any:
    return services.mrd_record(
        course,
        data={
            "sampled_on": sampled_on,
            "time_point": "end_of_induction",
            "unit": "fraction",
            "value": value,
        },
        actor=actor,
        now=now,
    )


def s2_course(time_machine: Any, team: Any, clinician: Any, make_course: Any) -> Any:
    """An S2 course (ALL-REZ BFM 2002, late isolated marrow relapse) started with F1 on
    2026-09-01."""
    at(time_machine, "2026-09-01")
    course = make_course(
        team,
        clinician,
        protocol="all-rez-bfm-2002",
        relapse_date=date(2026, 8, 3),
        blocks=(("F1", date(2026, 9, 1)),),
    )
    return course


def f2(course: Any, clinician: Any, now: datetime) -> None:
    """F2 given on 2026-09-22: the deciding window opens five days later."""
    services.block_record(
        course, data={"block_type": "F2", "start_date": date(2026, 9, 22)}, actor=clinician, now=now
    )


def test_the_course_page_shows_the_proposal_its_sample_and_a_sample_that_does_not_decide(
    web, parse, time_machine, team, clinician, make_course
):
    course = s2_course(time_machine, team, clinician, make_course)
    now = at(time_machine, "2026-09-10")
    mrd(course, clinician, date(2026, 9, 9), 0.0002, now)  # day 9, before F2
    now = at(time_machine, "2026-10-20")
    f2(course, clinician, now)
    mrd(course, clinician, date(2026, 10, 13), 0.004, now)
    text = parse(web(clinician).get(f"/courses/{course.pk}/")).text
    assert "What the evidence proposes now: HSCT" in text
    assert "Deciding sample: MRD of 2026-10-13" in text
    assert "opened on 2026-09-27" in text
    assert "The MRD of 2026-09-09 (0.0002) is labelled end of induction but does not decide" in text
    assert "Record the HSCT decision" in text


def test_a_decision_under_review_is_shown_with_its_reason_and_the_form_to_decide_again(
    web, parse, time_machine, team, clinician, make_course
):
    course = s2_course(time_machine, team, clinician, make_course)
    now = at(time_machine, "2026-10-20")
    f2(course, clinician, now)
    sample = mrd(course, clinician, date(2026, 10, 13), 0.004, now)
    services.course_confirm_hsct(
        course, hsct_indicated=True, reason="MRD above the cut-off", actor=clinician, now=now
    )
    now = at(time_machine, "2026-10-27")
    services.record_void(sample, reason="sample of another patient", actor=clinician, now=now)
    client = web(clinician)
    page = parse(client.get(f"/courses/{course.pk}/"))
    assert "hsct-review" in page.ids
    assert "Under review since 27 Oct 2026" in page.text and "was voided" in page.text
    assert f"Decided by {clinician.username} on 20 Oct 2026" in page.text
    assert "MRD above the cut-off" in page.text
    assert "Decide HSCT again" in page.text
    # The header says it too.
    assert "under review" in page.text
