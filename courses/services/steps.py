"""Planned steps: add one, reschedule, skip, record the actual date, reopen; and the
two helpers every record uses, completing the matching step and moving the later due
dates (courses/schedule.py does the date arithmetic)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from config.errors import Invalid
from courses import schedule
from courses.models import PlannedStep, StepKind, StepStatus, TreatmentCourse
from courses.services.common import (
    audit,
    lock_course,
    mrd_time_point_errors,
    record_date_errors,
    require_active,
    require_schedule,
    touch,
)
from courses.signals import announce

# A step a clinician added (step_add) has a key with this prefix; every other key is a
# template step id of the course's protocol.
ADDED_STEP_PREFIX = "added_"


def is_added(step: PlannedStep) -> bool:
    return step.key.startswith(ADDED_STEP_PREFIX)


def recompute_due_dates(course: TreatmentCourse) -> None:
    steps = list(course.steps.order_by("sequence"))
    changed = schedule.recompute_due_dates(steps, course.start_date)
    if changed:
        PlannedStep.objects.bulk_update(changed, ["due_on"])


def complete_step(
    course: TreatmentCourse, *, kind: str, on: date, **match: str
) -> PlannedStep | None:
    """Mark the first open step of this kind (and block type / MRD time point) done on
    the record's date and move the later due dates."""
    step = (
        course.steps.filter(kind=kind, status=StepStatus.PLANNED, **match)
        .order_by("sequence")
        .first()
    )
    if step is None:
        return None
    step.done_on = on
    step.status = StepStatus.DONE
    step.save(update_fields=["done_on", "status"])
    recompute_due_dates(course)
    return step


@transaction.atomic
def step_add(
    course: TreatmentCourse, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> PlannedStep:
    """Add a step after an existing one (``after``: its key); later steps keep their
    own anchors."""
    course = lock_course(course)
    require_schedule(course)
    require_active(course)
    steps = list(course.steps.order_by("sequence"))
    after_key = data.get("after") or (steps[-1].key if steps else "")
    after = next((s for s in steps if s.key == after_key), None)
    errors: dict[str, list[str]] = {}
    if after_key and after is None:
        errors["after"] = ["no step with this key in the course."]
    point = data.get("mrd_time_point") or ""
    if data["kind"] == StepKind.MRD:
        errors.update(mrd_time_point_errors(course, "mrd_time_point", point))
    elif point:
        errors["mrd_time_point"] = ["is only for a step of kind mrd."]
    Invalid.raise_if(errors)
    position = (after.sequence + 1) if after else 0
    # Shift the sequence numbers after the insertion point (from the end, so the
    # unique (course, sequence) constraint holds at every row).
    for step in sorted((s for s in steps if s.sequence >= position), key=lambda s: -s.sequence):
        PlannedStep.objects.filter(pk=step.pk).update(sequence=step.sequence + 1)
    key = f"{ADDED_STEP_PREFIX}{len(steps) + 1}"
    while any(s.key == key for s in steps):
        key += "_"
    base = (after.done_on or after.due_on) if after else course.start_date
    due = base + timedelta(days=data["offset_days"])
    step = PlannedStep.objects.create(
        course=course,
        sequence=position,
        key=key,
        anchor_key=after.key if after else "",
        kind=data["kind"],
        label=data.get("label") or str(data["kind"]).replace("_", " "),
        block_type=data.get("block_type", ""),
        mrd_time_point=data.get("mrd_time_point", ""),
        offset_days=data["offset_days"],
        grace_days=data.get("grace_days", 0),
        planned_on=due,
        due_on=due,
        note=data.get("note", ""),
        local_default=False,
    )
    audit(course, actor, now, "step_added", "step", step.pk, {"key": key, **data})
    touch(course, now)
    announce(course.pk)
    return step


@transaction.atomic
def step_update(
    step: PlannedStep, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> PlannedStep:
    """Reschedule (``due_on`` + reason), skip (``status=skipped`` + reason), record
    the actual date (``done_on``), or reopen (``status=planned``)."""
    course = lock_course(step.course_id)
    require_active(course)
    step = PlannedStep.objects.get(pk=step.pk)
    today = course.patient.team.today(now)
    reason = (data.get("reason") or "").strip()
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    if "due_on" in data:
        if not reason:
            errors["reason"] = ["is required to reschedule a step."]
        step.rescheduled_on = data["due_on"]
        changes["due_on"] = data["due_on"]
    if "done_on" in data:
        errors.update(record_date_errors(course, "done_on", data["done_on"], today))
        step.done_on = data["done_on"]
        step.status = StepStatus.DONE if data["done_on"] else StepStatus.PLANNED
        changes["done_on"] = data["done_on"]
    if "status" in data:
        status = data["status"]
        if status == StepStatus.SKIPPED and not reason:
            errors["reason"] = ["is required to skip a step."]
        if status == StepStatus.DONE and not step.done_on:
            errors["done_on"] = ["is required to mark a step done."]
        if status in (StepStatus.PLANNED, StepStatus.SKIPPED, StepStatus.CANCELLED):
            step.done_on = None if status != StepStatus.DONE else step.done_on
        step.status = status
        changes["status"] = status
    Invalid.raise_if(errors)
    if reason:
        step.note = reason
        changes["reason"] = reason
    step.save()
    recompute_due_dates(course)
    audit(course, actor, now, "step_updated", "step", step.pk, changes)
    touch(course, now)
    announce(course.pk)
    step.refresh_from_db()
    return step
