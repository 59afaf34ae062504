"""The team summary for the dashboard's header: active courses by state and risk group,
open alerts by kind and severity, and the delay statistics."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Count

from courses.models import ACTIVE_STATES, TreatmentCourse
from notifications.models import SEVERITY_RANK, UNRESOLVED, Alert
from reports.delays import delay_statistics


def summary(
    team_ids: list[int], *, started_from: date | None, started_to: date | None
) -> dict[str, Any]:
    """Counts and delays for the dashboard's header: five queries.

    The date range selects courses by their clinical start (the day therapy began);
    without a range every course counts, registered ones included. Open alerts count
    whether snoozed or not, so no "today" enters the answer."""
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
