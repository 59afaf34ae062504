"""The worklist: what needs attention now, one row per course with its open alerts and
next due step, read from the per-course attention the sweep keeps
(notifications.models.CourseAttention, see notifications.dashboards): no aggregation
over alerts per request, and an index for each order and team filter.

"Now" is each team's own calendar date (``dates``: {team_id: date}, see
:func:`teams.selectors.team_dates`), as the alert rules judge it: a snooze ends, and
days overdue count, on the team's calendar, never the server's. The rows' order and
counts are those of the course's last refresh; a snooze that ends today is counted
from the first sweep of the day (docs/decisions.md)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from django.db import connections
from django.db.models import Exists, OuterRef, Q, QuerySet

from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert, CourseAttention
from teams.selectors import on_team_date

SEVERITY_BY_RANK = {rank: severity for severity, rank in SEVERITY_RANK.items()}


# What a row shows of its course, read with the page (plain values: no model
# instances for a page of rows).
COURSE_FIELDS = (
    "course_id",
    "course__patient__team_id",
    "course__patient__reference",
    "course__state",
    "course__risk_group",
    "course__protocol_slug",
    "next_step__label",
    "next_step__due_on",
)
COUNTS = ("priority", "severity_rank", "oldest_since", "open_alerts")
# What a row lists of each of its alerts.
ALERT_FIELDS = (
    "id",
    "course_id",
    "kind",
    "severity",
    "state",
    "escalation_level",
    "condition_since",
    "message",
)


def order(include_snoozed: bool) -> tuple[str, str, str]:
    """The row order, most urgent first, then the oldest condition, then the course:
    ascending columns of CourseAttention (one index each, with and without the team)."""
    if include_snoozed:
        return ("all_priority", "all_oldest_since", "course_id")
    return ("priority", "oldest_since", "course_id")


def _attention(dates: Mapping[int, date], include_snoozed: bool) -> Q:
    """Alerts that ask for attention today: unresolved and not snoozed past their
    team's today."""
    q = Q(state__in=UNRESOLVED)
    if not include_snoozed:
        q &= ~Q(snoozed_until__gt=on_team_date(dates, "course__patient__team_id"))
    return q


def matching(
    dates: Mapping[int, date],
    *,
    kind: str | None = None,
    risk_group: str | None = None,
    include_snoozed: bool = False,
) -> QuerySet[CourseAttention]:
    """The attention rows of the courses on the worklist (see :func:`worklist`),
    unordered and without their courses: what the total counts."""
    key = order(include_snoozed)
    rows = CourseAttention.objects.filter(team_id__in=list(dates), **{f"{key[0]}__isnull": False})
    if risk_group:
        rows = rows.filter(risk_group=risk_group)
    if kind:
        rows = rows.filter(
            Exists(
                Alert.objects.filter(
                    _attention(dates, include_snoozed), course_id=OuterRef("course_id"), kind=kind
                )
            )
        )
    return rows


def worklist(
    dates: Mapping[int, date],
    *,
    kind: str | None = None,
    risk_group: str | None = None,
    include_snoozed: bool = False,
) -> QuerySet:
    """Courses with alerts that need attention, most urgent first: by the highest
    urgency among their alerts (severity rank plus escalation level), then by how long
    the oldest condition has held. One row (values) per course, with its course,
    patient and next step; :func:`worklist_rows` shapes a page of them. ``dates``
    names the teams in scope (pass only the requester's) and their today."""
    prefix = "all_" if include_snoozed else ""
    rows = matching(dates, kind=kind, risk_group=risk_group, include_snoozed=include_snoozed)
    return rows.values(*COURSE_FIELDS, *(f"{prefix}{name}" for name in COUNTS)).order_by(
        *order(include_snoozed)
    )


def count(rows: QuerySet, *, exact: bool) -> tuple[int, bool]:
    """How many rows match, and whether that is exact: the COUNT itself when ``exact``
    (one team: an index range), otherwise PostgreSQL's estimate of it (one EXPLAIN,
    whatever the network's size). Elsewhere always exact."""
    rows = rows.order_by()
    if exact or connections[rows.db].vendor != "postgresql":
        return rows.count(), True
    plan = json.loads(rows.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"]), False


def worklist_rows(
    page: Sequence[Mapping[str, Any]], dates: Mapping[int, date], include_snoozed: bool = False
) -> list[dict[str, Any]]:
    """The page's rows (from :func:`worklist`) with their alerts: one query for the
    page's alerts, whatever its length (the courses came with the page)."""
    alerts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for alert in (
        Alert.objects.filter(
            _attention(dates, include_snoozed), course_id__in=[row["course_id"] for row in page]
        )
        .order_by("condition_since", "id")
        .values(*ALERT_FIELDS)
    ):
        alerts[alert.pop("course_id")].append(alert)
    prefix = "all_" if include_snoozed else ""
    rows = []
    for row in page:
        team, oldest = row["course__patient__team_id"], row[f"{prefix}oldest_since"]
        rows.append(
            {
                "course": row["course_id"],
                "team": team,
                "course_reference": row["course__patient__reference"],
                "state": row["course__state"],
                "risk_group": row["course__risk_group"],
                "protocol": row["course__protocol_slug"],
                "severity": SEVERITY_BY_RANK[row[f"{prefix}severity_rank"]],
                "urgency": -row[f"{prefix}priority"],
                "open_alerts": row[f"{prefix}open_alerts"],
                "days_overdue": max(0, (dates[team] - oldest).days),
                "oldest_since": oldest,
                "next_step": row["next_step__label"],
                "next_step_due_on": row["next_step__due_on"],
                "alerts": alerts[row["course_id"]],
            }
        )
    return rows
