"""Guards are declared once (courses/transitions.py), run once per request on what the
request brings, and every answer about "what is possible now" reads them."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest
from django.utils import timezone

from config.errors import Invalid, Refused
from courses import selectors, services
from courses.models import TreatmentCourse
from courses.states_doc import transitions as documented
from courses.transitions import (
    CR2_RECORDED,
    HSCT_INDICATED,
    NOT_NON_RESPONSE,
    OFF_PROTOCOL_REASON,
    Guard,
    TransitionInput,
    course_transitions,
    guards_of,
)
from tests.conftest import induction_blocks

pytestmark = pytest.mark.django_db


def _move(course: TreatmentCourse, name: str, actor: Any, **given: str) -> TreatmentCourse:
    return services.course_transition(
        course.pk, name=name, actor=actor, now=timezone.now(), **given
    )


def _to_response_assessment(course: TreatmentCourse, actor: Any, *, cr2: bool) -> TreatmentCourse:
    """From a course made with its induction blocks (make_course(blocks=induction_blocks()):
    induction ended 2026-11-08), to response assessment, with a CR2 if asked."""
    now = timezone.now()
    _move(course, "start_induction", actor)
    _move(course, "assess_response", actor)
    if cr2:
        services.assessment_record(
            course,
            data={
                "assessed_on": date(2026, 11, 23),
                "marrow": "M1",
                "cr2": True,
                "em_status": "none",
            },
            actor=actor,
            now=now,
        )
    return TreatmentCourse.objects.get(pk=course.pk)


def test_an_overridable_guard_passes_with_a_reason_and_says_why_without():
    course = TreatmentCourse(hsct_indicated=False)
    assert HSCT_INDICATED.check(course, TransitionInput()) == (
        "HSCT is not indicated for this course; give a reason to override"
    )
    assert HSCT_INDICATED.check(course, TransitionInput(reason="tumour board")) is None
    assert HSCT_INDICATED.check(course, TransitionInput(reason="   ")) is not None
    assert HSCT_INDICATED.needs(course, TransitionInput()) == ("reason",)
    assert HSCT_INDICATED.needs(TreatmentCourse(hsct_indicated=True), TransitionInput()) == ()


def test_a_guard_that_is_not_overridable_blocks_whatever_the_request_says():
    guard = Guard("never", shows="never", test=lambda course, given: False, refusal="no")
    course = TreatmentCourse()
    assert guard.check(course, TransitionInput(reason="please")) == "no"
    assert guard.needs(course, TransitionInput()) is None


def test_the_off_protocol_guard_names_every_missing_field():
    course = TreatmentCourse()
    assert OFF_PROTOCOL_REASON.needs(course, TransitionInput()) == ("reason", "off_protocol_reason")
    both = OFF_PROTOCOL_REASON.check(course, TransitionInput())
    assert "a free-text reason is required" in both
    assert "an off-protocol reason is required: refractory" in both
    only_category = OFF_PROTOCOL_REASON.check(course, TransitionInput(reason="M3 after R2"))
    assert only_category.startswith("an off-protocol reason is required")
    complete = TransitionInput(reason="M3 after R2", off_protocol_reason="refractory")
    assert OFF_PROTOCOL_REASON.check(course, complete) is None


def test_the_course_carries_no_request_state_for_its_guards():
    # What the request brings is passed to the guards, never parked on the instance.
    assert not hasattr(TreatmentCourse, "pending_reason")
    assert not hasattr(TreatmentCourse, "pending_off_protocol_reason")


def test_each_guard_runs_once_per_transition_request(team, clinician, make_course, monkeypatch):
    course = _to_response_assessment(
        make_course(team, clinician, blocks=induction_blocks()), clinician, cr2=True
    )
    calls: Counter[str] = Counter()
    judge = Guard.judge

    def counting(self: Guard, course: TreatmentCourse, given: TransitionInput, **kw: bool):  # noqa: ANN202
        calls[self.name] += 1
        return judge(self, course, given, **kw)

    monkeypatch.setattr(Guard, "judge", counting)
    _move(course, "start_hsct_workup", clinician)
    assert calls == {"cr2_recorded": 1, "not_non_response": 1, "hsct_indicated": 1}


def test_a_refusal_is_a_domain_error_listing_what_is_allowed(team, clinician, make_course):
    course = _to_response_assessment(
        make_course(team, clinician, blocks=induction_blocks()), clinician, cr2=False
    )
    with pytest.raises(Refused) as caught:
        _move(course, "start_hsct_workup", clinician)
    assert caught.value.code == "transition_not_allowed"
    assert "no response assessment with CR2 has been recorded" in caught.value.message
    assert caught.value.extra["allowed_transitions"] == ["take_off_protocol"]
    assert caught.value.extra["state"] == "response_assessment"


def test_an_unknown_transition_is_invalid_input(team, clinician, make_course):
    course = make_course(team, clinician)
    with pytest.raises(Invalid) as caught:
        _move(course, "teleport", clinician)
    assert "transition" in caught.value.fields


def test_the_options_the_409_and_the_docs_read_the_same_declarations(team, clinician, make_course):
    # Group B (late relapse): HSCT not indicated, so the workup needs a reason.
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1), blocks=induction_blocks())
    course = _to_response_assessment(course, clinician, cr2=True)
    options = {o.name: o.requires for o in selectors.transition_options(course)}
    assert options == {
        "continue_chemotherapy": (),
        "start_hsct_workup": ("reason",),
        "take_off_protocol": ("reason", "off_protocol_reason"),
    }
    assert selectors.allowed_transitions(course) == sorted(options)
    by_edge = {(name, source): guards for name, source, _, guards in documented()}
    for transition in course_transitions():
        assert by_edge[(transition.name, transition.source)] == [
            g.describe() for g in guards_of(transition)
        ]
    workup = by_edge[("start_hsct_workup", "response_assessment")]
    assert workup == [
        NOT_NON_RESPONSE.describe(),
        CR2_RECORDED.describe(),
        HSCT_INDICATED.describe(),
    ]
