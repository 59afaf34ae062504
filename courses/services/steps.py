"""Planned steps: add one, reschedule, skip, record the actual date, reopen; and what
every record write uses: :func:`link_records`, which closes the steps from the valid
records and moves the later due dates (courses/schedule.py does the matching and the
date arithmetic, without the ORM)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections, router, transaction

from config.errors import Invalid, Refused
from courses import schedule
from courses.bounds import planned_date_errors, text_errors, value_errors
from courses.models import PlannedStep, StepKind, StepStatus, TreatmentCourse
from courses.selectors import protocol_for
from courses.services.common import (
    audit,
    lock_course,
    mrd_time_point_errors,
    record_date_errors,
    require_active,
    require_schedule,
    touch,
)
from courses.services.hsct import deciding_window
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
        _save_fields(changed, ("due_on",))


def record_dates(course: TreatmentCourse) -> list[schedule.RecordDate]:
    """The course's valid records as the schedule sees them (voided ones are left out
    by the related managers). Four queries, read as plain values (every record write
    runs this; model instances cost more than the rows)."""
    blocks = list(course.blocks.values_list("pk", "start_date", "block_type"))
    rows = [
        schedule.RecordDate(day, f"block:{pk}", StepKind.BLOCK, (("block_type", block_type),))
        for pk, day, block_type in blocks
    ]
    rows += [
        schedule.RecordDate(day, f"assessment:{pk}", StepKind.RESPONSE_ASSESSMENT)
        for pk, day in course.assessments.values_list("pk", "assessed_on")
    ]
    # A sample labelled with the deciding time point but taken before the deciding
    # window (ALL-REZ BFM 2002 S2: an "end of induction" marrow before F2) is kept and
    # closes nothing: the deciding MRD step stays open, and watched, until the sample
    # that decides arrives.
    window = deciding_window(course, [(kind, day) for _, day, kind in blocks])
    rows += [
        schedule.RecordDate(day, f"mrd:{pk}", StepKind.MRD, (("mrd_time_point", point),))
        for pk, day, point in course.mrd_results.values_list("pk", "sampled_on", "time_point")
        if window is None or point != window[0] or (window[1] is not None and day >= window[1])
    ]
    referrals = course.hsct_referrals.values_list("pk", "referred_on", "performed_on")
    for pk, referred, performed in referrals:
        rows.append(schedule.RecordDate(referred, f"referral:{pk}", StepKind.HSCT_REFERRAL))
        if performed:
            rows.append(schedule.RecordDate(performed, f"transplant:{pk}", StepKind.HSCT))
    return rows


def _save_fields(steps: Sequence[PlannedStep], fields: Sequence[str]) -> None:
    """Write ``fields`` of ``steps``: one UPDATE by primary key, run for every row
    (executemany; one query). bulk_update's CASE WHEN per row and field cost 8-20 ms to
    build and compile for a course's dozen steps, on every record written, voided or
    amended; this is a fraction of a millisecond, on PostgreSQL and SQLite alike."""
    connection = connections[router.db_for_write(PlannedStep)]
    quote = connection.ops.quote_name
    columns = [PlannedStep._meta.get_field(name) for name in fields]
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(PlannedStep._meta.db_table),
        ", ".join(f"{quote(c.column)} = %s" for c in columns),
        quote(PlannedStep._meta.pk.column),
    )
    rows = [
        [c.get_db_prep_save(getattr(step, c.attname), connection) for c in columns] + [step.pk]
        for step in steps
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def link_records(course: TreatmentCourse) -> None:
    """Close the course's planned steps from its valid records, whatever order they
    were entered in (records entered before the schedule existed included), and move
    the later due dates after them. Run after every record write, void or amendment."""
    if course.start_date is None:
        return
    steps = list(course.steps.order_by("sequence"))
    before = {s.pk: (s.status, s.done_on, s.done_by) for s in steps}
    schedule.link(steps, record_dates(course))
    changed = [s for s in steps if (s.status, s.done_on, s.done_by) != before[s.pk]]
    if changed:
        _save_fields(changed, ("status", "done_on", "done_by"))
    moved = schedule.recompute_due_dates(steps, course.start_date)
    if moved:
        _save_fields(moved, ("due_on",))


def _block_type_errors(course: TreatmentCourse, block_type: str) -> dict[str, list[str]]:
    allowed = protocol_for(course.protocol_slug).block_types
    if block_type and block_type not in allowed:
        return {"block_type": [f"must be one of this protocol's blocks: {', '.join(allowed)}."]}
    return {}


@transaction.atomic
def step_add(
    course: TreatmentCourse, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> PlannedStep:
    """Add a step after an existing one (``after``: its key); later steps keep their
    own anchors."""
    course = lock_course(course)
    require_schedule(course)
    require_active(course)
    Invalid.raise_if(_block_type_errors(course, data.get("block_type", "")))
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
    errors.update(value_errors("PlannedStep", data))
    Invalid.raise_if(errors)
    base = (after.done_on or after.due_on) if after else course.start_date
    due = base + timedelta(days=data["offset_days"])
    # The due date lands within the planning horizon (courses/bounds.py): said under
    # the field the client sent.
    for messages in planned_date_errors("due_on", due, course.relapse.relapse_date).values():
        raise Invalid({"offset_days": [f"the step would be due on {due}, which {messages[0]}"]})
    position = (after.sequence + 1) if after else 0
    # Shift the sequence numbers after the insertion point (from the end, so the
    # unique (course, sequence) constraint holds at every row).
    for step in sorted((s for s in steps if s.sequence >= position), key=lambda s: -s.sequence):
        PlannedStep.objects.filter(pk=step.pk).update(sequence=step.sequence + 1)
    key = f"{ADDED_STEP_PREFIX}{len(steps) + 1}"
    while any(s.key == key for s in steps):
        key += "_"
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
    # A record entered before the step existed may be the one it expects.
    link_records(course)
    touch(course, now)
    announce(course.pk)
    step.refresh_from_db()
    return step


@transaction.atomic
def step_update(
    step: PlannedStep, *, data: Mapping[str, Any], actor: AbstractBaseUser, now: datetime
) -> PlannedStep:
    """Reschedule (``due_on`` + reason), skip (``status=skipped`` + reason), record
    the actual date (``done_on``), or reopen (``status=planned``). The reason is the
    team's and is kept beside the protocol's basis note, never over it."""
    course = lock_course(step.course_id)
    require_active(course)
    step = PlannedStep.objects.get(pk=step.pk)
    step.course = course  # the locked row, its patient joined (the history reads the team)
    if schedule.closed_by_record(step) and ({"done_on", "status"} & data.keys()):
        raise Refused(
            f"{step.label} was closed by a clinical record ({step.done_by}) on "
            f"{step.done_on}; amend or void that record instead.",
            code="closed_by_record",
        )
    today = course.patient.team.today(now)
    reason = (data.get("reason") or "").strip()
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    errors.update(text_errors("reason", reason))
    if "due_on" in data:
        if not reason:
            errors["reason"] = ["is required to reschedule a step."]
        errors.update(planned_date_errors("due_on", data["due_on"], course.relapse.relapse_date))
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
            step.done_on = None
        step.status = status
        changes["status"] = status
    Invalid.raise_if(errors)
    if reason:
        step.team_reason = reason
        changes["reason"] = reason
    if {"done_on", "status"} & data.keys():
        step.done_by = ""  # set by hand now
    step.save()
    link_records(course)
    audit(course, actor, now, "step_updated", "step", step.pk, changes)
    touch(course, now)
    announce(course.pk)
    step.refresh_from_db()
    return step
