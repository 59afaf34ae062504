"""The dashboards as they were before the precomputed state (issue 16), kept for the
load test as the "old design" baseline, so the gain stays visible in every run: the
worklist grouped every attention alert with its course on each request (twice: the
page and the pagination COUNT), and the summary counted the courses and alerts and
took its percentiles over every delay, the first CR2 a correlated subquery per course.

The same SQL as the old endpoints, served by plain Django views with the same token
authentication and page size (bench/urls.py). Never used by the service."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    Count,
    DateField,
    F,
    FloatField,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Cast

from config.db import DaysBetween
from courses.models import (
    ACTIVE_STATES,
    PlannedStep,
    ResponseAssessment,
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from notifications.models import UNRESOLVED, Alert
from reports.delays import percentile_cont
from tests.reports import oracle


def worklist_page(dates: dict[int, date], size: int) -> dict[str, Any]:
    """The old endpoint's first page: the grouped alerts (the test oracle's query,
    which is the old design's) counted, then sliced, then the page's courses, alerts
    and next steps."""
    groups = oracle.groups(dates)
    return {"count": groups.count(), "results": oracle.rows(list(groups[:size]), dates, False)}


class PercentileCont(Aggregate):
    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(Cast(expression, FloatField()), fraction=repr(float(fraction)), **extra)


def _delay_stat(rows: QuerySet, expression: Any) -> dict[str, Any]:
    rows = rows.annotate(delay=expression).filter(delay__isnull=False)
    if connections[rows.db].vendor == "postgresql":
        result = rows.aggregate(
            count=Count("delay"),
            median=PercentileCont("delay", 0.5),
            p90=PercentileCont("delay", 0.9),
        )
        return {"count": result["count"], "median": result["median"], "p90": result["p90"]}
    values = list(rows.order_by("delay").values_list("delay", flat=True))
    return {
        "count": len(values),
        "median": percentile_cont(values, 0.5),
        "p90": percentile_cont(values, 0.9),
    }


def summary(team_ids: list[int]) -> dict[str, Any]:
    """The old summary without a date range: three counts, three percentile queries."""
    courses = TreatmentCourse.objects.filter(patient__team_id__in=team_ids)
    active = courses.filter(state__in=ACTIVE_STATES)
    started = TreatmentCourse.objects.filter(
        patient__team__in=team_ids, start_date__isnull=False
    ).order_by()
    first_cr2 = Subquery(
        ResponseAssessment.objects.filter(course=OuterRef("pk"), cr2=True)
        .order_by("assessed_on")
        .values("assessed_on")[:1],
        output_field=DateField(),
    )
    return {
        "by_state": list(active.values("state").annotate(n=Count("id")).order_by()),
        "by_group": list(active.values("risk_group").annotate(n=Count("id")).order_by()),
        "alerts": list(
            Alert.objects.filter(state__in=UNRESOLVED, course__in=courses.values("pk"))
            .values("kind", "severity")
            .annotate(n=Count("id"))
            .order_by()
        ),
        "delays": {
            "hsct_referral": _delay_stat(
                started.filter(hsct_indicated=True, hsct_referral__isnull=False),
                DaysBetween(F("hsct_referral__referred_on"), F("start_date")),
            ),
            "cr2_to_transplant": _delay_stat(
                started.filter(hsct_referral__performed_on__isnull=False),
                DaysBetween(F("hsct_referral__performed_on"), first_cr2),
            ),
            "block_delay": _delay_stat(
                PlannedStep.objects.filter(
                    course__in=started,
                    kind=StepKind.BLOCK,
                    status=StepStatus.DONE,
                    done_on__isnull=False,
                ).order_by(),
                DaysBetween(F("done_on"), F("planned_on")),
            ),
        },
    }
