"""Confirming a risk group lays out that group's schedule template, for every group of
both built-in protocols."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from courses import services
from courses.models import PlannedStep
from stratification.selectors import protocol_get

pytestmark = pytest.mark.django_db

GROUPS = [("all-rez-bfm-90", g) for g in ("A", "B", "C", "PPG")] + [
    ("all-rez-bfm-2002", g) for g in ("S1", "S2", "S3", "S4")
]


@pytest.mark.parametrize(("protocol", "group"), GROUPS)
def test_the_schedule_follows_the_groups_template(team, clinician, make_course, protocol, group):
    course = make_course(team, clinician, protocol=protocol, confirm=False)
    course = services.course_confirm_stratification(
        course, risk_group=group, reason="test: every group", actor=clinician, now=timezone.now()
    )
    definition = protocol_get(protocol)
    template = definition.schedule_for(group)
    expected = template.steps_for(course.hsct_indicated)
    steps = list(PlannedStep.objects.filter(course=course).order_by("sequence"))
    assert [s.key for s in steps] == [s.id for s in expected]
    assert [s.kind for s in steps] == [s.kind for s in expected]
    assert course.start_date == date(2026, 11, 24)
    days = template.planned_days()
    for step in steps:
        assert step.planned_on == course.start_date + timedelta(days=days[step.key]), step.key
        assert step.due_on == step.planned_on
    kinds = {s.kind for s in steps}
    indication = definition.hsct_indication[group].indicated
    if indication is True:
        assert {"hsct_referral", "hsct"} <= kinds
    if indication is False:
        assert "hsct" not in kinds and "maintenance_start" in kinds
    assert "block" in kinds and "response_assessment" in kinds
    if isinstance(indication, bool):
        assert "end_of_therapy" in kinds
    else:  # S2: the branch (and its end) is laid out once the indication is confirmed
        assert "mrd" in kinds


def test_the_pre_hsct_mrd_and_the_transplant_are_planned_after_count_recovery(
    api, team, clinician, make_course
):
    # Issue 22: neither at the nadir of the last block (days 7-14 after its start): the
    # pre-HSCT marrow on its day 21, the transplant a week later (local defaults).
    # Group A under ALL-REZ BFM 90, therapy from 2026-08-03, entered late.
    course = make_course(team, clinician, blocks=(("R2", date(2026, 8, 3)),))
    answer = api(clinician).get(f"/api/v1/courses/{course.pk}/steps/")
    assert answer.status_code == 200, answer.content
    planned = {s["key"]: s["planned_on"] for s in answer.json()["results"]}
    assert planned["block_4"] == "2026-10-05"  # day 63
    assert planned["mrd_pre_hsct"] == "2026-10-26"  # day 21 of block 4
    assert planned["hsct"] == "2026-11-02"  # day 91 of therapy
