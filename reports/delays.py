"""Delay statistics for the dashboard summary: how long HSCT referrals, transplants and
blocks take, as counts, medians and 90th percentiles.

Computed in the database, in a constant number of queries (one per measure). On
PostgreSQL the percentiles are percentile_cont aggregates; SQLite has no percentile
function, so there each measure fetches just its sorted delay values (one query,
integers only) and the same percentile_cont interpolation runs in Python."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

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

from courses.models import PlannedStep, ResponseAssessment, StepKind, StepStatus, TreatmentCourse
from courses.selectors import valid_referral
from teams.models import Team


@dataclass(frozen=True, slots=True)
class DelayStat:
    count: int
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True, slots=True)
class DelayStatistics:
    hsct_referral: DelayStat  # clinical start -> HsctReferral.referred_on (HSCT indicated)
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
    courses = (
        TreatmentCourse.objects.filter(patient__team__in=teams, start_date__isnull=False)
        .annotate(referral=valid_referral())
        .order_by()
    )
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
            courses.filter(hsct_indicated=True, referral__isnull=False),
            DaysBetween(F("referral__referred_on"), F("start_date")),
        ),
        cr2_to_transplant=_delay_stat(
            courses.filter(referral__performed_on__isnull=False),
            DaysBetween(F("referral__performed_on"), first_cr2),
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
