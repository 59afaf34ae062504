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

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from django.apps import apps
from django.db import models

if TYPE_CHECKING:
    from django_fsm import Transition

    from courses.models import TreatmentCourse


class OffProtocolReason(models.TextChoices):
    """Why a course left the protocol: the category a take_off_protocol request names.
    Each one's meaning for event-free survival is in reports/survival.py (refractory:
    an event at time zero; alternative therapy after treatment failure, second relapse,
    death: an event on the date; withdrawal, lost to follow-up: censored; entered in
    error: not counted at all)."""

    REFRACTORY = "refractory", "Refractory (no CR2)"
    TREATMENT_FAILURE_ALTERNATIVE_THERAPY = (
        "treatment_failure_alternative_therapy",
        "Treatment failure, alternative therapy (e.g. CAR-T, blinatumomab)",
    )
    SECOND_RELAPSE = "second_relapse", "Second relapse"
    DEATH = "death", "Death"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up", "Lost to follow-up"
    ENTERED_IN_ERROR = "entered_in_error", "Entered in error"


# Records that end an active course the moment they are recorded (in the same
# transaction), with the off-protocol reason they give: a death (or a follow-up contact
# reporting one) and a second relapse.
ENDING_REASONS: tuple[str, ...] = (OffProtocolReason.DEATH, OffProtocolReason.SECOND_RELAPSE)


@dataclass(frozen=True, slots=True)
class TransitionInput:
    """What a request brings to a transition. Every guard receives it explicitly.
    ``on`` is the transition's clinical date (the day it happened on the team's
    calendar), resolved by the service before any guard runs; None only where no
    transition is being applied (the docs)."""

    reason: str = ""
    off_protocol_reason: str = ""
    on: date | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one guard says about a request: why it is refused (None: it may proceed),
    whether the request's reason overrode a failing test, and a warning the record
    needs said even though the move proceeds."""

    refusal: str | None = None
    overridden: bool = False
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class Guard:
    name: str
    # What the record must show, in the docs' words ("a response assessment with CR2").
    shows: str
    # Why the transition is refused when ``test`` fails, in words a clinician reads.
    refusal: str = ""
    # The record condition, judged on the course and what the request brings (its
    # clinical date ``on`` above all); None: the guard only asks for request fields.
    test: Callable[[TreatmentCourse, TransitionInput], bool] | None = None
    # A reason given with the request overrides a failing test (the clinician takes
    # responsibility, and the reason is kept on the CourseTransition).
    overridable_by_reason: bool = False
    # What a move that overrode this guard is recorded and shown as ("transplant in
    # non-CR"): the override is a clinical decision of its own, not a footnote.
    overridden_as: str = ""
    # Run only when the test passes on a move being applied: a caveat of the record
    # that satisfied it (a pre-HSCT MRD labelled otherwise), kept on the transition.
    warning: Callable[[TreatmentCourse, TransitionInput], str | None] | None = None
    # Request fields the transition always needs, each with its refusal when missing.
    requires: tuple[tuple[str, str], ...] = ()

    def judge(
        self, course: TreatmentCourse, given: TransitionInput, *, warn: bool = True
    ) -> Verdict:
        """The verdict on a move being applied (``warn``: also say the record's caveat).
        The record test runs once."""
        passed = self.test is None or self.test(course, given)
        if not passed and not (self.overridable_by_reason and given.reason.strip()):
            return Verdict(refusal=self.refusal)
        missing = [text for field, text in self.requires if not getattr(given, field).strip()]
        if missing:
            return Verdict(refusal="; ".join(missing))
        warning = self.warning(course, given) if warn and passed and self.warning else None
        return Verdict(overridden=not passed, warning=warning)

    def check(self, course: TreatmentCourse, given: TransitionInput) -> str | None:
        """None if the transition may proceed as far as this guard goes, else why not."""
        return self.judge(course, given, warn=False).refusal

    def needs(self, course: TreatmentCourse, given: TransitionInput) -> tuple[str, ...] | None:
        """The request fields this guard needs on the course as it is now (``given``:
        a request with no fields, dated today); None when nothing a request can bring
        would satisfy it."""
        fields = [field for field, _ in self.requires]
        if self.test is not None and not self.test(course, given):
            if not self.overridable_by_reason:
                return None
            fields.insert(0, "reason")
        return tuple(fields)

    def describe(self) -> str:
        """The docs' wording: what the record (or the request) must show."""
        if not self.overridable_by_reason:
            return self.shows
        recorded = f" (recorded as {self.overridden_as})" if self.overridden_as else ""
        return f"{self.shows}, or a reason given to override{recorded}"


# Guards read the course's records through its related managers, which leave voided
# records out (courses/models.py, RecordManager): a voided record satisfies no guard.


def _transplant_day(course: TreatmentCourse) -> date | None:
    referral = course.hsct_referral
    return referral.performed_on if referral is not None else None


def _end_of_therapy_reached(course: TreatmentCourse, given: TransitionInput) -> bool:
    """The schedule's end-of-therapy step (day +100 after HSCT, or the end of
    maintenance, as the protocol's template places it) is done, or due by ``on``."""
    from courses.models import StepStatus

    step = (
        course.steps.filter(kind="end_of_therapy", status__in=(StepStatus.PLANNED, StepStatus.DONE))
        .order_by("sequence")
        .first()
    )
    if step is None or given.on is None:
        return False
    return (step.done_on or step.due_on) <= given.on


def _after_transplant_day(course: TreatmentCourse, given: TransitionInput) -> bool:
    day = _transplant_day(course)
    return day is None or given.on is None or given.on > day


def _ended_by_a_voided_record(course: TreatmentCourse, given: TransitionInput) -> bool:
    """The course left the protocol when a death or second relapse was recorded, and
    that record is now voided (no valid record that ended it is left)."""
    if course.off_protocol_reason not in ENDING_REASONS:
        return False
    ended = apps.get_model("courses", "ClinicalEvent").with_voided.filter(
        course=course, ended_course=True
    )
    return ended.exists() and not ended.filter(voided_at__isnull=True).exists()


def _latest_assessment(course: TreatmentCourse):  # noqa: ANN202 (a ResponseAssessment)
    """The course's latest valid response assessment by clinical date (a later one
    supersedes an earlier: CR2 lost on a later marrow is lost)."""
    return course.assessments.order_by("-assessed_on", "-id").first()


def _latest_assessment_cr2(course: TreatmentCourse, given: TransitionInput) -> bool:
    latest = _latest_assessment(course)
    return latest is not None and latest.cr2


def _not_a_non_responder(course: TreatmentCourse, given: TransitionInput) -> bool:
    """No assessment yet, or the latest one is CR2."""
    latest = _latest_assessment(course)
    return latest is None or latest.cr2


def pre_hsct_window(course: TreatmentCourse, day: date) -> tuple[date, date]:
    """The protocol's pre-HSCT window for a transplant on ``day``: from
    ``mrd_before_hsct_window_days`` before it to the day itself (the window the
    pre-HSCT alert rules read)."""
    from courses.selectors import protocol_for

    window = protocol_for(course.protocol_slug).alert_days("mrd_before_hsct_window_days")
    return day - timedelta(days=window), day


def pre_hsct_mrd(course: TreatmentCourse, day: date):  # noqa: ANN201 (an MrdResult | None)
    """The pre-HSCT MRD of a transplant on ``day``: the latest valid MRD result by
    sample date (not by entry) inside the pre-HSCT window, whatever its time-point
    label. A sample labelled end of induction but taken within the window before the
    transplant is the one that tells how the child goes into it (a positive result in
    the window is a warning whatever its label: Bader, Blood Adv 2019; clinical notes)."""
    start, end = pre_hsct_window(course, day)
    return (
        course.mrd_results.filter(sampled_on__gte=start, sampled_on__lte=end)
        .order_by("-sampled_on", "-id")
        .first()
    )


def counted_as_pre_hsct(sampled_on: date, time_point: str) -> str | None:
    """The warning a pre-HSCT MRD labelled otherwise carries, wherever it is counted
    (the transplant guard, the pre-HSCT alerts); None for one labelled pre_hsct."""
    if time_point == "pre_hsct":
        return None
    from stratification.definitions import MRD_TIME_POINT_WORDS

    label = MRD_TIME_POINT_WORDS.get(time_point, time_point)
    return f"MRD sampled on {sampled_on}, labelled {label}, counted as the pre-HSCT MRD"


def _mrd_in_pre_hsct_window(course: TreatmentCourse, given: TransitionInput) -> bool:
    """A valid MRD result, whatever its label, sampled on the transplant day or within
    the protocol's pre-HSCT window before it. Without a transplant date there is no
    window: the transplant_date guard refuses that case first."""
    day = _transplant_day(course)
    if day is None:
        return False
    start, end = pre_hsct_window(course, day)
    return course.mrd_results.filter(sampled_on__gte=start, sampled_on__lte=end).exists()


def _pre_hsct_mrd_label_warning(course: TreatmentCourse, given: TransitionInput) -> str | None:
    day = _transplant_day(course)
    mrd = pre_hsct_mrd(course, day) if day is not None else None
    return None if mrd is None else counted_as_pre_hsct(mrd.sampled_on, mrd.time_point)


CONFIRMED_DECISION = Guard(
    "confirmed_decision",
    shows="a clinician confirmed the risk group",
    test=lambda course, given: course.risk_group is not None or course.decision_confirmed,
    refusal="the stratification has not been confirmed by a clinician",
)
BLOCK_RECORDED = Guard(
    "block_recorded",
    shows="at least one chemotherapy block recorded",
    test=lambda course, given: course.blocks.exists(),
    refusal="no chemotherapy block has been recorded",
)
CR2_RECORDED = Guard(
    "cr2_recorded",
    shows="a response assessment with CR2 recorded",
    test=lambda course, given: course.assessments.filter(cr2=True).exists(),
    refusal="no response assessment with CR2 has been recorded",
)
HSCT_INDICATED = Guard(
    "hsct_indicated",
    shows="HSCT indicated",
    test=lambda course, given: course.hsct_indicated is True,
    refusal="HSCT is not indicated for this course; give a reason to override",
    overridable_by_reason=True,
)
HSCT_NOT_INDICATED = Guard(
    "hsct_not_indicated",
    shows="HSCT not indicated",
    test=lambda course, given: course.hsct_indicated is not True,
    refusal="HSCT is indicated for this course; give a reason to continue without it",
    overridable_by_reason=True,
)
# ALL-REZ BFM 2002 S2: the indication waits for MRD at the end of induction (Eckert
# 2013). Moving on to chemotherapy or maintenance without it is a choice a clinician
# makes with a reason (kept on the transition, shown in the timeline), never silently.
HSCT_DECIDED = Guard(
    "hsct_decided",
    shows="the HSCT indication decided (indicated or not)",
    test=lambda course, given: course.hsct_indicated is not None,
    refusal="the HSCT indication is undecided (e.g. ALL-REZ BFM 2002 S2 until MRD at the "
    "end of induction is known and the proposal confirmed); give a reason to go on "
    "without deciding it",
    overridable_by_reason=True,
)
# Remission is judged on the latest assessment: an M3 marrow after an earlier CR2 is
# a loss of CR2 (treatment failure). A transplant in non-CR (refractory disease) is a
# real decision, not a reason to leave the protocol: a reason overrides the guard, the
# move is recorded as "transplant in non-CR", and the course stays on its HSCT path
# (its alerts keep running).
LATEST_ASSESSMENT_CR2 = Guard(
    "latest_assessment_cr2",
    shows="CR2 on the latest response assessment",
    test=_latest_assessment_cr2,
    refusal="the latest response assessment does not show CR2 (no assessment, or a later "
    "non-CR assessment); give a reason to transplant in non-CR (recorded as such), record "
    "a response re-assessment, or take the course off protocol",
    overridable_by_reason=True,
    overridden_as="transplant in non-CR",
)
NOT_NON_RESPONSE = Guard(
    "not_non_response",
    shows="no non-response on the latest response assessment",
    test=_not_a_non_responder,
    refusal="the latest response assessment shows non-response (no CR2): record a "
    "response re-assessment, or take the course off protocol (refractory / treatment "
    "failure, alternative therapy)",
)
# "MRD status before HSCT significantly impacts post-transplant outcomes" (seed caveat).
# Any valid MRD sampled in the window counts, whatever its label; one labelled
# otherwise is said on the transition ("... labelled end of induction, counted as the
# pre-HSCT MRD").
MRD_BEFORE_TRANSPLANT = Guard(
    "mrd_before_transplant",
    shows="an MRD result, whatever its time-point label, sampled within the protocol's "
    "pre-HSCT window (mrd_before_hsct_window_days before the transplant date)",
    test=_mrd_in_pre_hsct_window,
    refusal="no MRD result is recorded within the protocol's pre-HSCT window before the "
    "transplant date; record it, or give a reason to override",
    overridable_by_reason=True,
    overridden_as="transplant without pre-HSCT MRD",
    warning=_pre_hsct_mrd_label_warning,
)
TRANSPLANT_DATE = Guard(
    "transplant_date",
    shows="transplant date recorded on the HSCT referral",
    test=lambda course, given: _transplant_day(course) is not None,
    refusal="no transplant date has been recorded on the HSCT referral",
)
# Completing on the day of the transplant (or before it) is never right: the
# post-transplant phase (engraftment, early toxicity) is part of the course.
AFTER_TRANSPLANT_DAY = Guard(
    "after_transplant_day",
    shows="a date after the day of the transplant",
    test=_after_transplant_day,
    refusal="a course cannot be completed on the day of its transplant or before it",
)
END_OF_THERAPY_REACHED = Guard(
    "end_of_therapy_reached",
    shows="the end-of-therapy step reached (day +100 after HSCT, or the end of "
    "maintenance, where the protocol's template places it)",
    test=_end_of_therapy_reached,
    refusal="the schedule's end-of-therapy step is not reached yet (day +100 after HSCT, "
    "or the end of maintenance); give a reason to complete earlier",
    overridable_by_reason=True,
)
ENDING_RECORD_VOIDED = Guard(
    "ending_record_voided",
    shows="the death or second-relapse record that ended the course voided (only "
    "through voiding that record)",
    test=_ended_by_a_voided_record,
    refusal="the course did not end by a record that is now voided",
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


@dataclass(frozen=True, slots=True)
class Judgement:
    """All the guards of one transition on a move being applied: the first refusal
    (None: it proceeds), the guards the reason overrode, the warnings said."""

    refusal: str | None
    overridden: tuple[Guard, ...] = ()
    warnings: tuple[str, ...] = ()


def judge(transition: Transition, course: TreatmentCourse, given: TransitionInput) -> Judgement:
    """Run the transition's guards, each once, up to the first refusal."""
    overridden: list[Guard] = []
    warnings: list[str] = []
    for guard in guards_of(transition):
        verdict = guard.judge(course, given)
        if verdict.refusal is not None:
            return Judgement(verdict.refusal)
        if verdict.overridden:
            overridden.append(guard)
        if verdict.warning:
            warnings.append(verdict.warning)
    return Judgement(None, tuple(overridden), tuple(warnings))


@functools.cache
def all_guards() -> dict[str, Guard]:
    """Every guard the machine declares, by name (declared once, at import: read per
    transition row shown, so built once)."""
    return {g.name: g for t in course_transitions() for g in guards_of(t)}


def recorded_as(overridden: list[str] | tuple[str, ...]) -> str:
    """What a move is shown as, from the guards its reason overrode ("transplant in
    non-CR"); empty for a move that overrode nothing, or nothing with a name."""
    guards = all_guards()
    names = [guards[n].overridden_as if n in guards else "" for n in overridden]
    return "; ".join(name for name in names if name)


def needs(
    transition: Transition,
    course: TreatmentCourse,
    today: date,
    memo: dict[Guard, tuple[str, ...] | None] | None = None,
) -> tuple[str, ...] | None:
    """What a request must bring for ``transition`` on the course as it is now (dated
    ``today``); None when a guard blocks it whatever the request says.

    ``memo`` keeps each guard's answer across the transitions of one listing: a guard
    shared by several transitions (a non-responder's, the latest assessment's) reads
    the record once, since every transition is asked with the same empty request."""
    fields: list[str] = []
    given = TransitionInput(on=today)
    for guard in guards_of(transition):
        if memo is None:
            needed = guard.needs(course, given)
        elif guard in memo:
            needed = memo[guard]
        else:
            needed = memo[guard] = guard.needs(course, given)
        if needed is None:
            return None
        fields += needed
    return tuple(dict.fromkeys(fields))
