"""The test oracle: the worklist and the summary computed from scratch, with the
semantics of the code before the precomputed state (issue 16) — every request
aggregating the alerts, courses and delays themselves.

The precomputed answers (reports.worklist, reports.summary) must equal these after
every step of any history (tests/reports/test_precomputed_state.py). The delay values
come from the one definition both sides share (courses.delays.course_delays); the
percentiles here sort every value, as PostgreSQL's percentile_cont did."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)

from courses.delays import MEASURES, course_delays
from courses.models import ACTIVE_STATES, PlannedStep, StepStatus, TreatmentCourse
from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert
from reports.delays import DelayStat, DelayStatistics, percentile_cont
from teams.selectors import on_team_date

SEVERITY_BY_RANK = {rank: severity for severity, rank in SEVERITY_RANK.items()}


def _attention(dates: Mapping[int, date], include_snoozed: bool) -> Q:
    q = Q(state__in=UNRESOLVED)
    if not include_snoozed:
        q &= ~Q(snoozed_until__gt=on_team_date(dates, "course__patient__team_id"))
    return q


def worklist(dates: Mapping[int, date], **filters: Any) -> list[dict[str, Any]]:
    """Every row of the worklist, in order (the API's rows; ``protocol`` and
    ``reference`` are the web app's extra filters)."""
    return rows(list(groups(dates, **filters)), dates, filters.get("include_snoozed", False))


def groups(
    dates: Mapping[int, date],
    *,
    kind: str | None = None,
    risk_group: str | None = None,
    include_snoozed: bool = False,
    protocol: str | None = None,
    reference: str | None = None,
) -> QuerySet:
    """The courses on the worklist with their aggregates, grouped from the alerts on
    every request, in order (also the old design's query in bench/legacy.py)."""
    rank = Case(
        *(When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )
    alerts = Alert.objects.filter(
        _attention(dates, include_snoozed),
        course__patient__team_id__in=list(dates),
        course__state__in=ACTIVE_STATES,
    )
    if risk_group:
        alerts = alerts.filter(course__risk_group=risk_group)
    if protocol:
        alerts = alerts.filter(course__protocol_slug=protocol)
    if reference:
        alerts = alerts.filter(course__patient__reference__icontains=reference)
    if kind:
        alerts = alerts.filter(
            Exists(
                Alert.objects.filter(
                    _attention(dates, include_snoozed), course=OuterRef("course"), kind=kind
                )
            )
        )
    return (
        alerts.values("course_id")
        .annotate(
            open_alerts=Count("id"),
            urgency=Max(rank + F("escalation_level")),
            severity_rank=Max(rank),
            oldest_since=Min("condition_since"),
        )
        .order_by("-urgency", "oldest_since", "course_id")
    )


def rows(
    groups: list[dict[str, Any]], dates: Mapping[int, date], include_snoozed: bool
) -> list[dict[str, Any]]:
    """A page of ``groups`` with its courses, alerts and next steps (three queries)."""
    ids = [g["course_id"] for g in groups]
    courses = TreatmentCourse.objects.select_related("patient").in_bulk(ids)
    alerts: dict[int, list[Alert]] = defaultdict(list)
    for alert in Alert.objects.filter(
        _attention(dates, include_snoozed), course_id__in=ids
    ).order_by("condition_since", "id"):
        alerts[alert.course_id].append(alert)
    next_steps: dict[int, PlannedStep] = {}
    for step in PlannedStep.objects.filter(course_id__in=ids, status=StepStatus.PLANNED).order_by(
        "course_id", "due_on", "sequence"
    ):
        next_steps.setdefault(step.course_id, step)
    rows = []
    for group in groups:
        course = courses[group["course_id"]]
        step = next_steps.get(course.pk)
        rows.append(
            {
                "course": course.pk,
                "team": course.patient.team_id,
                "course_reference": course.patient.reference,
                "state": course.state,
                "risk_group": course.risk_group,
                "protocol": course.protocol_slug,
                "severity": SEVERITY_BY_RANK[group["severity_rank"]],
                "urgency": group["urgency"],
                "open_alerts": group["open_alerts"],
                "days_overdue": max(
                    0, (dates[course.patient.team_id] - group["oldest_since"]).days
                ),
                "oldest_since": group["oldest_since"],
                "next_step": step.label if step else None,
                "next_step_due_on": step.due_on if step else None,
                "alerts": [
                    {
                        "id": a.pk,
                        "kind": a.kind,
                        "severity": a.severity,
                        "state": a.state,
                        "escalation_level": a.escalation_level,
                        "condition_since": a.condition_since,
                        "message": a.message,
                    }
                    for a in alerts[course.pk]
                ],
            }
        )
    return rows


def delay_statistics(
    team_ids: Iterable[int], *, started_from: date | None, started_to: date | None
) -> DelayStatistics:
    stats = {}
    for measure in MEASURES:
        rows = course_delays()[measure].filter(course__patient__team_id__in=list(team_ids))
        if started_from is not None:
            rows = rows.filter(course__start_date__gte=started_from)
        if started_to is not None:
            rows = rows.filter(course__start_date__lte=started_to)
        values = sorted(days for _, days in rows.values_list("course_id", "days"))

        def _r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        stats[measure] = DelayStat(
            count=len(values),
            median_days=_r(percentile_cont(values, 0.5)),
            p90_days=_r(percentile_cont(values, 0.9)),
        )
    return DelayStatistics(**stats)


def summary(
    team_ids: list[int], *, started_from: date | None = None, started_to: date | None = None
) -> dict[str, Any]:
    courses = TreatmentCourse.objects.filter(patient__team_id__in=team_ids)
    if started_from:
        courses = courses.filter(start_date__gte=started_from)
    if started_to:
        courses = courses.filter(start_date__lte=started_to)
    active = courses.filter(state__in=ACTIVE_STATES)
    by_state = dict(active.values_list("state").annotate(n=Count("id")).order_by())
    by_group = {
        group or "unconfirmed": n
        for group, n in active.values_list("risk_group").annotate(n=Count("id")).order_by()
    }
    alerts = Alert.objects.filter(state__in=UNRESOLVED, course__in=courses.values("pk"))
    by_kind: dict[str, dict[str, int]] = {}
    for kind, severity, n in (
        alerts.values_list("kind", "severity").annotate(n=Count("id")).order_by()
    ):
        by_kind.setdefault(kind, {})[severity] = n
    by_severity: dict[str, int] = {}
    for per_kind in by_kind.values():
        for severity, n in per_kind.items():
            by_severity[severity] = by_severity.get(severity, 0) + n
    return {
        "teams": team_ids,
        "started_from": started_from,
        "started_to": started_to,
        "active_courses": sum(by_state.values()),
        "active_by_state": {s: by_state.get(s, 0) for s in ACTIVE_STATES},
        "active_by_risk_group": dict(sorted(by_group.items())),
        "open_alerts": sum(by_severity.values()),
        "open_alerts_by_severity": {s: by_severity.get(s, 0) for s in SEVERITY_RANK},
        "open_alerts_by_kind": by_kind,
        "delays": delay_statistics(
            team_ids, started_from=started_from, started_to=started_to
        ).as_dict(),
    }
