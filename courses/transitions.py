"""The guards of the course state machine, declared once.

A guard is data: its name, what the record must show (the docs' wording), the test it
runs on the course, the refusal a clinician reads, whether a reason given with the
request overrides it, and which request fields it needs. The transitions on
``TreatmentCourse`` attach their guards with django-fsm-2's ``custom={"guards": ...}``;
nothing else names them. Everything that asks "may this course move?" reads those
declarations, so the answers agree:

* ``courses.services.course_transition`` runs them once, on what the request brings
  (:class:`TransitionInput`, passed explicitly, never parked on the model instance);
* ``courses.selectors.transition_options`` lists the transitions possible now and what
  each needs (the 409's ``allowed_transitions`` and ``GET .../transitions/``);
* ``courses.states_doc`` writes docs/course-states.md and its state graph.

django-fsm-2's ``conditions=`` are not used: they see the instance only, and the
transition method would run them a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.apps import apps
from django.db import models

if TYPE_CHECKING:
    from django_fsm import Transition

    from courses.models import TreatmentCourse


class OffProtocolReason(models.TextChoices):
    """Why a course left the protocol: the category a take_off_protocol request names."""

    REFRACTORY = "refractory"
    SECOND_RELAPSE = "second_relapse"
    DEATH = "death"
    WITHDRAWAL = "withdrawal"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"


@dataclass(frozen=True, slots=True)
class TransitionInput:
    """What a request brings to a transition. Every guard receives it explicitly."""

    reason: str = ""
    off_protocol_reason: str = ""


@dataclass(frozen=True, slots=True)
class Guard:
    name: str
    # What the record must show, in the docs' words ("a response assessment with CR2").
    shows: str
    # Why the transition is refused when ``test`` fails, in words a clinician reads.
    refusal: str = ""
    # The record condition; None: the guard only asks for request fields.
    test: Callable[[TreatmentCourse], bool] | None = None
    # A reason given with the request overrides a failing test (the clinician takes
    # responsibility, and the reason is kept on the CourseTransition).
    overridable_by_reason: bool = False
    # Request fields the transition always needs, each with its refusal when missing.
    requires: tuple[tuple[str, str], ...] = ()

    def check(self, course: TreatmentCourse, given: TransitionInput) -> str | None:
        """None if the transition may proceed as far as this guard goes, else why not."""
        overridden = self.overridable_by_reason and bool(given.reason.strip())
        if self.test is not None and not overridden and not self.test(course):
            return self.refusal
        missing = [text for field, text in self.requires if not getattr(given, field).strip()]
        return "; ".join(missing) or None

    def needs(self, course: TreatmentCourse) -> tuple[str, ...] | None:
        """The request fields this guard needs on the course as it is now; None when
        nothing a request can bring would satisfy it."""
        fields = [field for field, _ in self.requires]
        if self.test is not None and not self.test(course):
            if not self.overridable_by_reason:
                return None
            fields.insert(0, "reason")
        return tuple(fields)

    def describe(self) -> str:
        """The docs' wording: what the record (or the request) must show."""
        return (
            f"{self.shows}, or a reason given to override"
            if self.overridable_by_reason
            else (self.shows)
        )


def _transplant_recorded(course: TreatmentCourse) -> bool:
    referral = getattr(course, "hsct_referral", None)
    return referral is not None and referral.performed_on is not None


CONFIRMED_DECISION = Guard(
    "confirmed_decision",
    shows="a clinician confirmed the risk group",
    test=lambda course: course.risk_group is not None or course.decision_confirmed,
    refusal="the stratification has not been confirmed by a clinician",
)
BLOCK_RECORDED = Guard(
    "block_recorded",
    shows="at least one chemotherapy block recorded",
    test=lambda course: course.blocks.exists(),
    refusal="no chemotherapy block has been recorded",
)
CR2_RECORDED = Guard(
    "cr2_recorded",
    shows="a response assessment with CR2 recorded",
    test=lambda course: course.assessments.filter(cr2=True).exists(),
    refusal="no response assessment with CR2 has been recorded",
)
HSCT_INDICATED = Guard(
    "hsct_indicated",
    shows="HSCT indicated",
    test=lambda course: course.hsct_indicated is True,
    refusal="HSCT is not indicated for this course; give a reason to override",
    overridable_by_reason=True,
)
HSCT_NOT_INDICATED = Guard(
    "hsct_not_indicated",
    shows="HSCT not indicated",
    test=lambda course: course.hsct_indicated is not True,
    refusal="HSCT is indicated for this course; give a reason to continue without it",
    overridable_by_reason=True,
)
TRANSPLANT_DATE = Guard(
    "transplant_date",
    shows="transplant date recorded on the HSCT referral",
    test=_transplant_recorded,
    refusal="no transplant date has been recorded on the HSCT referral",
)
OFF_PROTOCOL_REASON = Guard(
    "off_protocol_reason",
    shows="off-protocol category and free-text reason",
    requires=(
        ("reason", "a free-text reason is required"),
        (
            "off_protocol_reason",
            "an off-protocol reason is required: " + ", ".join(OffProtocolReason.values),
        ),
    ),
)


# --- reading the declarations -------------------------------------------------------


def course_transitions() -> list[Transition]:
    """Every transition declared on TreatmentCourse (models imports this module for
    the guards, so the model is looked up, not imported)."""
    model = apps.get_model("courses", "TreatmentCourse")
    return list(model._meta.get_field("state").get_all_transitions(model))


def find(name: str, state: str) -> Transition | None:
    """The transition ``name`` out of ``state``, if the machine has one."""
    return next((t for t in course_transitions() if t.name == name and leaves(t, state)), None)


def guards_of(transition: Transition) -> tuple[Guard, ...]:
    return tuple(transition.custom.get("guards", ()))


def offered_through_api(transition: Transition) -> bool:
    """False for transitions that only a dedicated service applies (stratify)."""
    return bool(transition.custom.get("api", True))


def leaves(transition: Transition, state: str) -> bool:
    return transition.source in (state, "*")


def refusal(transition: Transition, course: TreatmentCourse, given: TransitionInput) -> str | None:
    """The first guard's refusal, or None: each guard runs once."""
    for guard in guards_of(transition):
        problem = guard.check(course, given)
        if problem is not None:
            return problem
    return None


def needs(transition: Transition, course: TreatmentCourse) -> tuple[str, ...] | None:
    """What a request must bring for ``transition`` on the course as it is now; None
    when a guard blocks it whatever the request says."""
    fields: list[str] = []
    for guard in guards_of(transition):
        needed = guard.needs(course)
        if needed is None:
            return None
        fields += needed
    return tuple(dict.fromkeys(fields))
