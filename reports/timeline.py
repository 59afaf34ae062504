"""One course's timeline for the team: planned vs actual steps, transitions, clinical
records and the alerts raised on it, in date order
(``GET /api/v1/courses/{id}/timeline/``). It lives here rather than in ``courses``
because it reads the alerts, which ``courses`` does not know exist."""

from __future__ import annotations

from datetime import date
from typing import Any

from courses.models import (
    AuditEntry,
    BlockAdministration,
    ClinicalEvent,
    HsctReferral,
    MrdResult,
    ResponseAssessment,
    TreatmentCourse,
)
from courses.units import fraction_display
from notifications.models import Alert


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


# The stored fractions of an MRD result, read in both units wherever they are shown.
_FRACTIONS = {("MrdResult", "value"), ("MrdResult", "sensitivity")}

Corrections = dict[tuple[str, int], list[dict[str, Any]]]


def _shown(target: str, field: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if (target, field) in _FRACTIONS and isinstance(value, int | float):
        return fraction_display(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _corrections(course: TreatmentCourse) -> Corrections:
    """Each record's amendments, from the course's audit trail (one query): when, who,
    why, and each field's old and new value (as stored, and as a clinician reads it).
    An amendment recorded before reasons were required has an empty reason."""
    found: Corrections = {}
    entries = AuditEntry.objects.filter(course=course, action="amended").select_related("actor")
    for entry in entries.order_by("at", "id"):
        before, after = entry.data.get("before", {}), entry.data.get("after", {})
        found.setdefault((entry.target, entry.target_id), []).append(
            {
                "at": entry.at.isoformat(),
                "actor": entry.actor.username,
                "reason": entry.data.get("reason", ""),
                "changes": [
                    {
                        "field": field,
                        "before": before.get(field),
                        "after": value,
                        "before_display": _shown(entry.target, field, before.get(field)),
                        "after_display": _shown(entry.target, field, value),
                    }
                    for field, value in after.items()
                ],
            }
        )
    return found


def _history(record: Any, corrections: Corrections) -> dict[str, Any]:
    """What every record says about itself besides its facts: its id (for the void and
    amend links), whether it was amended (and each correction: old -> new, who, when,
    why), and whether (and why) it is void. A voided record is listed, marked, and
    ignored by everything that computes."""
    return {
        "id": record.pk,
        "amended_at": record.amended_at.isoformat() if record.amended_at else None,
        "corrections": corrections.get((type(record).__name__, record.pk), []),
        "voided": record.voided_at is not None,
        "voided_at": record.voided_at.isoformat() if record.voided_at else None,
        "void_reason": record.void_reason,
    }


def course_timeline(course: TreatmentCourse) -> dict[str, Any]:
    """Planned vs actual steps, transitions and records of one course, in clinical-date
    order (a transition at its clinical date ``on``; ``at`` is when it was recorded).
    Voided records are listed and marked. A fixed number of queries whatever the
    course's length."""
    steps = list(course.steps.order_by("sequence"))
    corrections = _corrections(course)
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
                "done_on": _iso(step.done_on),
                "done_by": step.done_by,
                "grace_days": step.grace_days,
                "delay_days": step.delay_days,
                "note": step.note,
                "team_reason": step.team_reason,
            }
        )
    for t in course.transitions.select_related("actor"):
        entries.append(
            {
                "date": t.on.isoformat(),
                "type": "transition",
                "name": t.name,
                "from_state": t.from_state,
                "to_state": t.to_state,
                "actor": t.actor.username,
                "reason": t.reason,
                "overridden": t.overridden,
                "recorded_as": t.recorded_as,
                "warnings": t.warnings,
                "on": t.on.isoformat(),
                "at": t.at.isoformat(),
            }
        )
    for b in BlockAdministration.with_voided.filter(course=course):
        entries.append(
            {
                "date": b.start_date.isoformat(),
                "type": "block",
                "block_type": b.block_type,
                "start_date": b.start_date.isoformat(),
                "end_date": _iso(b.end_date),
                "delay_reason": b.delay_reason,
                **_history(b, corrections),
            }
        )
    for a in ResponseAssessment.with_voided.filter(course=course):
        entries.append(
            {
                "date": a.assessed_on.isoformat(),
                "type": "response_assessment",
                "marrow": a.marrow,
                "cr2": a.cr2,
                "em_status": a.em_status,
                **_history(a, corrections),
            }
        )
    for m in MrdResult.with_voided.filter(course=course):
        entries.append(
            {
                "date": m.sampled_on.isoformat(),
                "type": "mrd",
                "time_point": m.time_point,
                "value": m.value,
                "method": m.method,
                "sensitivity": m.sensitivity,
                "value_display": m.value_display,
                "sensitivity_display": m.sensitivity_display,
                **_history(m, corrections),
            }
        )
    for referral in HsctReferral.with_voided.filter(course=course):
        entries.append(
            {
                "date": referral.referred_on.isoformat(),
                "type": "hsct_referral",
                "donor_search_status": referral.donor_search_status,
                "planned_on": _iso(referral.planned_on),
                "performed_on": _iso(referral.performed_on),
                **_history(referral, corrections),
            }
        )
    for e in ClinicalEvent.with_voided.filter(course=course):
        entries.append(
            {
                "date": e.occurred_on.isoformat(),
                "type": "event",
                "kind": e.kind,
                "contact_status": e.contact_status,
                "note": e.note,
                "ended_course": e.ended_course,
                **_history(e, corrections),
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
                "resolution": a.resolution,
            }
        )
    # Stable order: by date, then steps before what happened that day.
    order = {"step": 0, "transition": 2}
    entries.sort(key=lambda e: (e["date"], order.get(e["type"], 1)))
    # How much later than the protocol plan from the clinical start the course runs:
    # the largest delay of a step that still counts (not skipped, not cancelled); a
    # course ahead of its plan is 0 days late, not "minus" late.
    counted = [s.delay_days for s in steps if s.status in ("planned", "done")]
    return {
        "course": course.pk,
        "state": course.state,
        "risk_group": course.risk_group,
        "start_date": _iso(course.start_date),
        "cumulative_delay_days": max([*counted, 0]),
        "entries": entries,
    }
