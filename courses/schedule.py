"""Due dates of planned steps: pure functions, no ORM and no clock.

A step is due ``offset_days`` after the actual date of its anchor step (the date it
was done), or after the anchor's own due date while the anchor is still open — so one
late block moves everything after it, anchored to what happened, not to the plan. A
clinician's explicit reschedule pins a step's due date and the steps after it follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol


class StepDates(Protocol):
    key: str
    anchor_key: str
    offset_days: int
    rescheduled_on: date | None
    done_on: date | None
    due_on: date


@dataclass(frozen=True)
class PlanRow:
    key: str
    anchor_key: str
    offset_days: int
    planned_on: date


def plan(steps: Iterable[tuple[str, str, int]], start: date) -> list[PlanRow]:
    """(key, anchor_key, offset_days) in order -> the on-time plan from ``start``."""
    days: dict[str, date] = {}
    rows = []
    for key, anchor_key, offset in steps:
        base = days.get(anchor_key, start) if anchor_key else start
        days[key] = base + timedelta(days=offset)
        rows.append(PlanRow(key, anchor_key, offset, days[key]))
    return rows


def recompute_due_dates(steps: Sequence[StepDates], start: date) -> list[StepDates]:
    """Set ``due_on`` on every step in sequence order; return the ones that changed."""
    actual: dict[str, date] = {}
    changed = []
    for step in steps:
        if step.rescheduled_on is not None:
            due = step.rescheduled_on
        else:
            anchor = actual.get(step.anchor_key) if step.anchor_key else start
            due = (anchor or start) + timedelta(days=step.offset_days)
        if due != step.due_on:
            step.due_on = due
            changed.append(step)
        actual[step.key] = step.done_on or due
    return changed


def recompute_due_dates_for_new(steps: Sequence[Any], start: date) -> None:
    """Give steps that have no due date yet (just created) one, in sequence order,
    anchored like the others. Existing steps keep theirs here."""
    actual: dict[str, date] = {}
    for step in steps:
        if getattr(step, "due_on", None) is None:
            anchor = actual.get(step.anchor_key) if step.anchor_key else start
            step.due_on = (anchor or start) + timedelta(days=step.offset_days)
        actual[step.key] = step.done_on or step.due_on


# --- which record closes which step -----------------------------------------------------


class LinkedStep(Protocol):
    kind: str
    block_type: str
    mrd_time_point: str
    status: str
    done_on: date | None
    done_by: str


@dataclass(frozen=True)
class RecordDate:
    """A valid clinical record as the schedule sees it: the step kind it closes, what
    must match (block type, MRD time point), its clinical date and its reference
    ("block:12"), which the step keeps as ``done_by``."""

    day: date
    ref: str
    kind: str
    match: tuple[tuple[str, str], ...] = ()


RECORD_REF_PREFIXES = ("block:", "assessment:", "mrd:", "referral:", "transplant:")


def closed_by_record(step: LinkedStep) -> bool:
    return step.done_by.startswith(RECORD_REF_PREFIXES)


def link(steps: Sequence[Any], records: Iterable[RecordDate]) -> None:
    """Close ``steps`` (in sequence order) from ``records``, in place, whatever order
    the records were entered in: every step a record had closed is reopened, then the
    records close steps again in clinical-date order, each the first open step of its
    kind (and block type / MRD time point). So an R2 entered for March after the one
    for May still closes the first R2 step, and a voided record (not in ``records``)
    leaves its step open. A step a clinician marked done by hand on the record's very
    date is that record's step (the record adopts it) rather than a reason to close
    the next one. Steps closed by hand otherwise, skipped or cancelled stay as they are.
    """
    for step in steps:
        if closed_by_record(step):
            step.status, step.done_on, step.done_by = "planned", None, ""

    def matches(step: Any, record: RecordDate) -> bool:
        return step.kind == record.kind and all(getattr(step, f) == v for f, v in record.match)

    for record in sorted(records, key=lambda r: (r.day, r.ref)):
        step = next(
            (
                s
                for s in steps
                if s.status == "done"
                and not s.done_by
                and s.done_on == record.day
                and matches(s, record)
            ),
            None,
        ) or next((s for s in steps if s.status == "planned" and matches(s, record)), None)
        if step is not None:
            step.status, step.done_on, step.done_by = "done", record.day, record.ref
