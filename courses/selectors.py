"""Reads on courses: scoped querysets, the protocol a course follows, the transitions
possible now, the timeline and the delay statistics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.models import (
    Aggregate,
    Count,
    DateField,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Cast

from courses import transitions
from courses.models import (
    PlannedStep,
    ResponseAssessment,
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from stratification.definitions import ProtocolDefinition
from stratification.selectors import protocol_get
from teams.models import Team
from teams.selectors import team_ids_for


def courses_for(user: AbstractBaseUser) -> QuerySet[TreatmentCourse]:
    return TreatmentCourse.objects.filter(patient__team_id__in=team_ids_for(user)).select_related(
        "patient"
    )


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


def transition_options(course: TreatmentCourse) -> list[Option]:
    """Transitions a client may request now (through the API), with what they need."""
    options = []
    for transition in transitions.course_transitions():
        if not transitions.leaves(transition, course.state):
            continue
        if not transitions.offered_through_api(transition):
            continue
        needs = transitions.needs(transition, course)
        if needs is not None:
            options.append(Option(transition.name, transition.target, needs))
    return sorted(options, key=lambda o: o.name)


def allowed_transitions(course: TreatmentCourse) -> list[str]:
    return [o.name for o in transition_options(course)]


def _day(value: date | datetime) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def course_timeline(course: TreatmentCourse) -> dict[str, Any]:
    """Planned vs actual steps, transitions and records of one course, in date order.
    A fixed number of queries whatever the course's length."""
    steps = list(course.steps.order_by("sequence"))
    entries: list[dict[str, Any]] = []
    for step in steps:
        entries.append(
            {
                "date": (step.done_on or step.due_on).isoformat(),
                "type": "step",
                "kind": step.kind,
                "label": step.label,
                "key": step.key,
                "status": step.status,
                "planned_on": step.planned_on.isoformat(),
                "due_on": step.due_on.isoformat(),
                "done_on": step.done_on.isoformat() if step.done_on else None,
                "grace_days": step.grace_days,
                "delay_days": step.delay_days,
            }
        )
    for t in course.transitions.select_related("actor"):
        entries.append(
            {
                "date": _day(t.at),
                "type": "transition",
                "name": t.name,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "actor": t.actor.username,
                "reason": t.reason,
                "at": t.at.isoformat(),
            }
        )
    for b in course.blocks.all():
        entries.append(
            {
                "date": b.start_date.isoformat(),
                "type": "block",
                "block_type": b.block_type,
                "start_date": b.start_date.isoformat(),
                "end_date": b.end_date.isoformat() if b.end_date else None,
                "delay_reason": b.delay_reason,
            }
        )
    for a in course.assessments.all():
        entries.append(
            {
                "date": a.assessed_on.isoformat(),
                "type": "response_assessment",
                "marrow": a.marrow,
                "cr2": a.cr2,
                "em_status": a.em_status,
            }
        )
    for m in course.mrd_results.all():
        entries.append(
            {
                "date": m.sampled_on.isoformat(),
                "type": "mrd",
                "time_point": m.time_point,
                "value": m.value,
                "method": m.method,
                "sensitivity": m.sensitivity,
            }
        )
    referral = getattr(course, "hsct_referral", None)
    if referral is not None:
        entries.append(
            {
                "date": referral.referred_on.isoformat(),
                "type": "hsct_referral",
                "donor_search_status": referral.donor_search_status,
                "planned_on": referral.planned_on.isoformat() if referral.planned_on else None,
                "performed_on": referral.performed_on.isoformat()
                if referral.performed_on
                else None,
            }
        )
    for e in course.events.all():
        entries.append(
            {
                "date": e.occurred_on.isoformat(),
                "type": "event",
                "kind": e.kind,
                "note": e.note,
            }
        )
    # The alerts raised on the course, read through the reverse relation (courses does
    # not import notifications): when each condition began and how it ended.
    for a in course.alerts.all():
        entries.append({
            "date": a.condition_since.isoformat(), "type": "alert", "kind": a.kind,
            "severity": a.severity, "state": a.state, "message": a.message,
            "escalation_level": a.escalation_level, "opened_at": a.opened_at.isoformat(),
            "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
        })
    # Stable order: by date, then steps before what happened that day.
    order = {"step": 0, "transition": 2}
    entries.sort(key=lambda e: (e["date"], order.get(e["type"], 1)))
    cumulative = max((s.delay_days for s in steps if s.status != "skipped"), default=0)
    return {
        "course": course.pk,
        "state": course.state,
        "risk_group": course.risk_group,
        "start_date": course.start_date.isoformat() if course.start_date else None,
        "cumulative_delay_days": cumulative,
        "entries": entries,
    }


# --- Delay statistics (dashboard summary) ---------------------------------------------
#
# Computed in the database, in a constant number of queries (one per measure). On
# PostgreSQL the percentiles are percentile_cont aggregates; SQLite has no percentile
# function, so there each measure fetches just its sorted delay values (one query,
# integers only) and the same percentile_cont interpolation runs in Python.


@dataclass(frozen=True, slots=True)
class DelayStat:
    count: int
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True, slots=True)
class DelayStatistics:
    hsct_referral: DelayStat  # course start -> HsctReferral.referred_on (HSCT indicated)
    cr2_to_transplant: DelayStat  # first assessment with CR2 -> HsctReferral.performed_on
    block_delay: DelayStat  # blocks done: done_on - planned_on (one value per block)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return asdict(self)


class DaysBetween(Func):
    """``end - start`` in whole days (an integer) for two date expressions."""

    arity = 2
    output_field = IntegerField()
    # PostgreSQL: date - date is an integer number of days.
    template = "(%(expressions)s)"
    arg_joiner = " - "

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="CAST(ROUND(julianday(%(expressions)s)) AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``:
    the continuous percentile, interpolating linearly between the two nearest values."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        # A float we formatted ourselves, never user input: safe to inline.
        super().__init__(Cast(expression, FloatField()), fraction=repr(float(fraction)), **extra)


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The same interpolation as PostgreSQL's percentile_cont, on sorted values."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    low, high = sorted_values[lower], sorted_values[upper]
    return float(low + (high - low) * (position - lower))


def _delay_stat(rows: QuerySet, expression: Any) -> DelayStat:
    """count, median and 90th percentile of ``expression`` over ``rows``: one query."""
    rows = rows.annotate(delay=expression).filter(delay__isnull=False)
    if connections[rows.db].vendor == "postgresql":
        result = rows.aggregate(
            count=Count("delay"),
            median=PercentileCont("delay", 0.5),
            p90=PercentileCont("delay", 0.9),
        )
        count, median, p90 = result["count"], result["median"], result["p90"]
    else:
        values = list(rows.order_by("delay").values_list("delay", flat=True))
        count, median, p90 = len(values), percentile_cont(values, 0.5), percentile_cont(values, 0.9)

    def _r(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return DelayStat(count=count, median_days=_r(median), p90_days=_r(p90))


def delay_statistics(
    teams: QuerySet[Team] | Iterable[int],
    *,
    started_from: date | None = None,
    started_to: date | None = None,
) -> DelayStatistics:
    """Delays of the courses of ``teams`` (a Team queryset or team ids — pass only the
    requester's) whose start date falls in [started_from, started_to] (either end
    open). Three queries, whatever the number of courses."""
    courses = TreatmentCourse.objects.filter(
        patient__team__in=teams, start_date__isnull=False
    ).order_by()
    if started_from is not None:
        courses = courses.filter(start_date__gte=started_from)
    if started_to is not None:
        courses = courses.filter(start_date__lte=started_to)
    first_cr2 = Subquery(
        ResponseAssessment.objects.filter(course=OuterRef("pk"), cr2=True)
        .order_by("assessed_on")
        .values("assessed_on")[:1],
        output_field=DateField(),
    )
    return DelayStatistics(
        hsct_referral=_delay_stat(
            courses.filter(hsct_indicated=True, hsct_referral__isnull=False),
            DaysBetween(F("hsct_referral__referred_on"), F("start_date")),
        ),
        cr2_to_transplant=_delay_stat(
            courses.filter(hsct_referral__performed_on__isnull=False),
            DaysBetween(F("hsct_referral__performed_on"), first_cr2),
        ),
        block_delay=_delay_stat(
            PlannedStep.objects.filter(
                course__in=courses,
                kind=StepKind.BLOCK,
                status=StepStatus.DONE,
                done_on__isnull=False,
            ).order_by(),
            DaysBetween(F("done_on"), F("planned_on")),
        ),
    )
