"""Reads on courses: scoped querysets, the protocol a course follows and the transitions
possible now. What the dashboards read (the timeline with its alerts, the delay
statistics, the outcomes) lives in the ``reports`` app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import FilteredRelation, Q, QuerySet
from django.utils import timezone

from courses import transitions
from courses.models import TreatmentCourse
from stratification.definitions import ProtocolDefinition
from stratification.selectors import protocol_get
from teams.selectors import team_ids_for


def courses_for(user: AbstractBaseUser) -> QuerySet[TreatmentCourse]:
    return TreatmentCourse.objects.filter(patient__team_id__in=team_ids_for(user)).select_related(
        "patient"
    )


def valid_referral(path: str = "hsct_referrals") -> FilteredRelation:
    """A course's valid HSCT referral as a join (``annotate(referral=valid_referral())``,
    then ``referral__performed_on`` ...): at most one row, by a partial unique
    constraint. Joins bypass the records' manager, so the void is filtered here."""
    return FilteredRelation(path, condition=Q(**{f"{path}__voided_at__isnull": True}))


def protocol_for(slug: str) -> ProtocolDefinition:
    """The loaded definition; KeyError for an unknown slug."""
    protocol = protocol_get(slug)
    if protocol is None:
        raise KeyError(slug)
    return protocol


def awaiting_confirmation(course: TreatmentCourse) -> bool:
    """The course follows a confirmed group, and its current decision (a
    re-stratification) is not confirmed yet."""
    decision = course.decision
    return course.risk_group is not None and decision is not None and not decision.is_confirmed


def decision_outdated(course: TreatmentCourse) -> bool:
    """The course's current decision was made with a protocol version other than the
    loaded one (re-stratify to decide with it). No query: definitions are loaded data."""
    protocol = protocol_get(course.protocol_slug)
    decision = course.decision
    return (
        protocol is not None
        and decision is not None
        and decision.protocol_version != (protocol.version)
    )


def block_starts(course: TreatmentCourse) -> list[tuple[str, date]]:
    """The course's valid blocks as (block type, start date), in start order: what the
    protocol's block-anchored days (the end of induction, a deciding window) count
    from. One query (voided blocks are left out by the records' manager)."""
    return list(
        course.blocks.order_by("start_date", "pk").values_list("block_type", "start_date")
    )


@dataclass(frozen=True)
class Option:
    """A transition a client may request now, and the request fields it needs."""

    name: str
    target: str
    requires: tuple[str, ...]


def transition_options(course: TreatmentCourse, today: date | None = None) -> list[Option]:
    """Transitions a client may request now (through the API), dated ``today`` (by
    default the course's team's today), with what they need."""
    if today is None:
        today = course.patient.team.today(timezone.now())
    options = []
    memo: dict = {}  # each guard's answer once for all the transitions (transitions.needs)
    for transition in transitions.course_transitions():
        if not transitions.leaves(transition, course.state):
            continue
        if not transitions.offered_through_api(transition):
            continue
        needs = transitions.needs(transition, course, today, memo)
        if needs is not None:
            options.append(Option(transition.name, transition.target, needs))
    return sorted(options, key=lambda o: o.name)


def allowed_transitions(course: TreatmentCourse, today: date | None = None) -> list[str]:
    return [o.name for o in transition_options(course, today)]
