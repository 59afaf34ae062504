"""Reads on courses: scoped querysets, the protocol a course follows and the transitions
possible now. What the dashboards read (the timeline with its alerts, the delay
statistics, the outcomes) lives in the ``reports`` app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, FilteredRelation, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from courses import transitions
from courses.models import Relapse, TreatmentCourse
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
    for transition in transitions.course_transitions():
        if not transitions.leaves(transition, course.state):
            continue
        if not transitions.offered_through_api(transition):
            continue
        needs = transitions.needs(transition, course, today)
        if needs is not None:
            options.append(Option(transition.name, transition.target, needs))
    return sorted(options, key=lambda o: o.name)


def allowed_transitions(course: TreatmentCourse, today: date | None = None) -> list[str]:
    return [o.name for o in transition_options(course, today)]


def with_relapse_number(courses: QuerySet[TreatmentCourse]) -> QuerySet[TreatmentCourse]:
    """Each course annotated with ``relapse_number``: which relapse of the patient its
    relapse is (1 = first), counted from the patient's relapses up to its date. The
    one place the course side derives it; where the relapse states its own number,
    this is where to read it instead."""
    earlier = (
        Relapse.objects.filter(
            patient_id=OuterRef("patient_id"), relapse_date__lte=OuterRef("relapse__relapse_date")
        )
        .order_by()
        .values("patient_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return courses.annotate(relapse_number=Subquery(earlier, output_field=IntegerField()))
