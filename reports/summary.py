"""The team summary for the dashboard's header: active courses by state and risk group,
open alerts by kind and severity, and the delay statistics — all from the counters the
sweep keeps per team and course start date (reports.counters)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from courses.models import ACTIVE_STATES
from notifications import dashboards
from notifications.models import SEVERITY_RANK
from reports.counters import read_counters
from reports.delays import statistics_of


def summary(
    team_ids: list[int], *, started_from: date | None, started_to: date | None
) -> dict[str, Any]:
    """Counts and delays for the dashboard's header: one query.

    The date range selects courses by their clinical start (the day therapy began);
    without a range every course counts, registered ones included. Open alerts count
    whether snoozed or not, so no "today" enters the answer."""
    by_state: dict[str, int] = defaultdict(int)
    by_group: dict[str, int] = defaultdict(int)
    by_kind: dict[str, dict[str, int]] = defaultdict(dict)
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    for name, key, value, n in read_counters(
        team_ids, started_from=started_from, started_to=started_to
    ):
        if name == dashboards.STATE:
            by_state[key] += n
        elif name == dashboards.GROUP:
            by_group[key or "unconfirmed"] += n
        elif name == dashboards.ALERT:
            kind, severity = key.split(":")
            by_kind[kind][severity] = n
        elif name == dashboards.DELAY:
            histograms[key][value] = n
    by_severity: dict[str, int] = defaultdict(int)
    for per_kind in by_kind.values():
        for severity, n in per_kind.items():
            by_severity[severity] += n
    return {
        "teams": team_ids,
        "started_from": started_from,
        "started_to": started_to,
        "active_courses": sum(by_state.values()),
        "active_by_state": {s: by_state.get(s, 0) for s in ACTIVE_STATES},
        "active_by_risk_group": dict(sorted(by_group.items())),
        "open_alerts": sum(by_severity.values()),
        "open_alerts_by_severity": {s: by_severity.get(s, 0) for s in SEVERITY_RANK},
        "open_alerts_by_kind": dict(by_kind),
        "delays": statistics_of(histograms).as_dict(),
    }
