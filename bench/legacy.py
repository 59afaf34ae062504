"""The dashboards as they were before the precomputed state (issue 16), kept for the
load test as the "old design" baseline, so the gain stays visible in every run: the
worklist grouped every attention alert with its course on each request (twice: the
page and the pagination COUNT), and the summary counted the courses and alerts and
took its percentiles over every delay, the first CR2 a correlated subquery per course.

The same SQL as the old endpoints, served by plain Django views with the same token
authentication and page size (bench/urls.py). Never used by the service."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DateField,
    F,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
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
from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert
from reports.delays import percentile_cont
from teams.selectors import on_team_date

SEVERITY_BY_RANK = {rank: severity for severity, rank in SEVERITY_RANK.items()}


def _attention(dates: dict[int, date]) -> Q:
    today = on_team_date(dates, "course__patient__team_id")
    return Q(state__in=UNRESOLVED) & ~Q(snoozed_until__gt=today)


def worklist_page(dates: dict[int, date], size: int) -> dict[str, Any]:
    """The old endpoint's first page: the grouped alerts counted, then sliced, then the
    page's courses, alerts and next steps."""
    rank = Case(
        *(When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )
    groups = (
        Alert.objects.filter(
            _attention(dates),
            course__patient__team_id__in=list(dates),
            course__state__in=ACTIVE_STATES,
        )
        .values("course_id")
        .annotate(
            open_alerts=Count("id"),
            urgency=Max(rank + F("escalation_level")),
            severity_rank=Max(rank),
            oldest_since=Min("condition_since"),
        )
        .order_by("-urgency", "oldest_since", "course_id")
    )
    total = groups.count()
    page = list(groups[:size])
    ids = [g["course_id"] for g in page]
    courses = TreatmentCourse.objects.select_related("patient").in_bulk(ids)
    alerts: dict[int, list[dict]] = defaultdict(list)
    for alert in Alert.objects.filter(_attention(dates), course_id__in=ids).order_by(
        "condition_since", "id"
    ):
        alerts[alert.course_id].append(
            {"id": alert.pk, "kind": alert.kind, "severity": alert.severity}
        )
    steps: dict[int, PlannedStep] = {}
    for step in PlannedStep.objects.filter(course_id__in=ids, status=StepStatus.PLANNED).order_by(
        "course_id", "due_on", "sequence"
    ):
        steps.setdefault(step.course_id, step)
    rows = []
    for group in page:
        course = courses[group["course_id"]]
        step = steps.get(course.pk)
        rows.append(
            {
                "course": course.pk,
                "course_reference": course.patient.reference,
                "state": course.state,
                "severity": SEVERITY_BY_RANK[group["severity_rank"]],
                "urgency": group["urgency"],
                "open_alerts": group["open_alerts"],
                "oldest_since": group["oldest_since"],
                "next_step": step.label if step else None,
                "alerts": alerts[course.pk],
            }
        )
    return {"count": total, "results": rows}


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
