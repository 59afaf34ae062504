"""Reads for the dashboards: the worklist (what needs attention now) and the team
summary. Each is a fixed number of queries whatever the number of courses."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
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

from courses.models import ACTIVE_STATES, PlannedStep, StepStatus, TreatmentCourse
from courses.selectors import delay_statistics
from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert

SEVERITY_BY_RANK = {rank: severity for severity, rank in SEVERITY_RANK.items()}


def _attention(today: date, include_snoozed: bool, prefix: str = "") -> Q:
    """Alerts that ask for attention today: unresolved and not snoozed past today."""
    q = Q(**{f"{prefix}state__in": UNRESOLVED})
    if not include_snoozed:
        q &= ~Q(**{f"{prefix}snoozed_until__gt": today})
    return q


def worklist(
    team_ids: Iterable[int],
    today: date,
    *,
    kind: str | None = None,
    risk_group: str | None = None,
    include_snoozed: bool = False,
) -> QuerySet:
    """Courses with alerts that need attention, most urgent first: by the highest
    urgency among their alerts (severity rank plus escalation level), then by how long
    the oldest condition has held. One row per course (``course_id`` and the
    aggregates); :func:`worklist_rows` adds the course, its alerts and next step.

    Grouped from the alerts' side: the unresolved alerts are far fewer than the
    courses, so this is one pass over a small table rather than a join of every
    course with its alerts."""
    rank = Case(
        *(When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )
    alerts = Alert.objects.filter(
        _attention(today, include_snoozed),
        course__patient__team_id__in=list(team_ids),
        course__state__in=ACTIVE_STATES,
    )
    if risk_group:
        alerts = alerts.filter(course__risk_group=risk_group)
    if kind:
        alerts = alerts.filter(
            Exists(
                Alert.objects.filter(
                    _attention(today, include_snoozed), course=OuterRef("course"), kind=kind
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


def worklist_rows(
    groups: Sequence[dict[str, Any]], today: date, include_snoozed: bool = False
) -> list[dict[str, Any]]:
    """The page's rows with their course, alerts and next due step: three queries for
    the page, whatever its length."""
    ids = [g["course_id"] for g in groups]
    courses = TreatmentCourse.objects.select_related("patient").in_bulk(ids)
    alerts: dict[int, list[Alert]] = defaultdict(list)
    for alert in Alert.objects.filter(
        _attention(today, include_snoozed), course_id__in=ids
    ).order_by("condition_since", "id"):
        alerts[alert.course_id].append(alert)
    next_steps: dict[int, PlannedStep] = {}
    for step in (
        PlannedStep.objects.filter(course_id__in=ids, status=StepStatus.PLANNED)
        .order_by("course_id", "due_on", "sequence")
        .only("course_id", "label", "due_on")
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
                "days_overdue": max(0, (today - group["oldest_since"]).days),
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


def summary(
    team_ids: list[int], *, started_from: date | None, started_to: date | None, today: date
) -> dict[str, Any]:
    """Counts and delays for the dashboard's header: five queries.

    The date range selects courses by their start (the confirmed stratification);
    without a range every course counts, registered ones included."""
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
    alerts = Alert.objects.filter(
        _attention(today, include_snoozed=True), course__in=courses.values("pk")
    )
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
