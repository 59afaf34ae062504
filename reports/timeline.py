"""One course's timeline for the team: planned vs actual steps, transitions, clinical
records and the alerts raised on it, in date order
(``GET /api/v1/courses/{id}/timeline/``). It lives here rather than in ``courses``
because it reads the alerts, which ``courses`` does not know exist."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from courses.models import TreatmentCourse
from notifications.models import Alert


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
    # The alerts raised on the course: when each condition began and how it ended.
    for a in Alert.objects.filter(course=course):
        entries.append(
            {
                "date": a.condition_since.isoformat(),
                "type": "alert",
                "kind": a.kind,
                "severity": a.severity,
                "state": a.state,
                "message": a.message,
                "escalation_level": a.escalation_level,
                "opened_at": a.opened_at.isoformat(),
                "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
            }
        )
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
