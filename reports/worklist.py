"""The worklist: what needs attention now, one row per course with its open alerts
and next due step. A fixed number of queries whatever the number of courses.

"Now" is each team's own calendar date (``dates``: {team_id: date}, see
:func:`teams.selectors.team_dates`), as the alert rules judge it: a snooze ends, and
days overdue count, on the team's calendar, never the server's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
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
from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert
from teams.selectors import on_team_date

SEVERITY_BY_RANK = {rank: severity for severity, rank in SEVERITY_RANK.items()}


def _attention(dates: Mapping[int, date], include_snoozed: bool) -> Q:
    """Alerts that ask for attention today: unresolved and not snoozed past their
    team's today."""
    q = Q(state__in=UNRESOLVED)
    if not include_snoozed:
        q &= ~Q(snoozed_until__gt=on_team_date(dates, "course__patient__team_id"))
    return q


def worklist(
    dates: Mapping[int, date],
    *,
    kind: str | None = None,
    risk_group: str | None = None,
    include_snoozed: bool = False,
) -> QuerySet:
    """Courses with alerts that need attention, most urgent first: by the highest
    urgency among their alerts (severity rank plus escalation level), then by how long
    the oldest condition has held. One row per course (``course_id`` and the
    aggregates); :func:`worklist_rows` adds the course, its alerts and next step.
    ``dates`` names the teams in scope (pass only the requester's) and their today.

    Grouped from the alerts' side: the unresolved alerts are far fewer than the
    courses, so this is one pass over a small table rather than a join of every
    course with its alerts."""
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


def worklist_rows(
    groups: Sequence[dict[str, Any]], dates: Mapping[int, date], include_snoozed: bool = False
) -> list[dict[str, Any]]:
    """The page's rows with their course, alerts and next due step: three queries for
    the page, whatever its length."""
    ids = [g["course_id"] for g in groups]
    courses = TreatmentCourse.objects.select_related("patient").in_bulk(ids)
    alerts: dict[int, list[Alert]] = defaultdict(list)
    for alert in Alert.objects.filter(
        _attention(dates, include_snoozed), course_id__in=ids
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
