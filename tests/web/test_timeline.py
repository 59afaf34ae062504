"""The Gantt chart's geometry (web/timeline.py): pure, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from web.timeline import PX_PER_DAY, build, step_status

TODAY = date(2026, 11, 24)


@dataclass
class Step:
    pk: int
    label: str
    planned_on: date
    due_on: date
    done_on: date | None = None
    status: str = "planned"
    grace_days: int = 3


@dataclass
class AlertRow:
    pk: int
    kind: str
    state: str
    condition_since: date
    resolved_at: datetime | None = None


def test_no_schedule_no_chart():
    assert build([], [], today=TODAY, course_start=None) is None


def test_a_step_done_late_shows_the_plan_the_delay_and_the_actual_date():
    late = Step(1, "Block R2", date(2026, 11, 1), date(2026, 11, 1), date(2026, 11, 9), "done")
    gantt = build([late], [], today=TODAY, course_start=date(2026, 11, 1))
    (row,) = gantt.rows
    planned, done = row.marks
    assert (planned.kind, done.kind) == ("planned", "done")
    (delay,) = row.bars
    assert delay.kind == "delay"
    assert delay.x == planned.x and round(delay.x + delay.width, 1) == done.x
    assert row.status == "done 9 Nov, 8 days after plan"
    assert gantt.start_x == planned.x


def test_an_open_step_past_due_and_grace_is_overdue_up_to_today():
    step = Step(1, "Block R1", date(2026, 11, 10), date(2026, 11, 10))
    gantt = build([step], [], today=TODAY, course_start=date(2026, 11, 10))
    (row,) = gantt.rows
    (overdue,) = row.bars
    assert overdue.kind == "overdue"
    assert round(overdue.x + overdue.width, 1) == gantt.today_x
    assert row.status == "overdue 14 days" and row.css == "overdue"


def test_within_grace_is_not_yet_overdue_and_skipped_steps_draw_only_their_plan():
    grace = Step(1, "MRD", date(2026, 11, 22), date(2026, 11, 22), grace_days=7)
    skipped = Step(2, "Irradiation", date(2026, 12, 1), date(2026, 12, 1), status="skipped")
    assert step_status(grace, TODAY) == ("due 2 days ago (within grace)", "due")
    gantt = build([grace, skipped], [], today=TODAY, course_start=None)
    assert [m.kind for m in gantt.rows[1].marks] == ["planned"]
    assert gantt.rows[1].status == "skipped"


def test_today_and_every_date_fall_inside_the_chart_and_rows_stack():
    steps = [
        Step(i, f"S{i}", date(2026, 9, 1 + i), date(2026, 9, 1 + i), date(2026, 9, 1 + i), "done")
        for i in range(5)
    ] + [Step(9, "End", date(2028, 9, 1), date(2028, 9, 1))]
    gantt = build(steps, [], today=TODAY, course_start=date(2026, 9, 1))
    xs = [m.x for r in gantt.rows for m in r.marks] + [gantt.today_x]
    assert all(0 < x < gantt.width for x in xs)
    # One scale for every course: two years are wide, and a day is a day.
    assert gantt.width > 730 * PX_PER_DAY
    assert gantt.rows[1].marks[0].x - gantt.rows[0].marks[0].x == PX_PER_DAY
    assert [r.y for r in gantt.rows] == sorted({r.y for r in gantt.rows})
    assert gantt.ticks and all(t.label.endswith(("2026", "2027", "2028")) for t in gantt.ticks)
    # Status words never run off the right edge.
    for row in gantt.rows:
        if row.note_anchor == "start":
            assert row.note_x + len(row.status) * 6.2 <= gantt.width


def test_alerts_are_rows_from_their_condition_to_today_or_their_end():
    step = Step(1, "Block", date(2026, 11, 1), date(2026, 11, 1))
    open_ = AlertRow(5, "step_overdue", "open", date(2026, 11, 4))
    closed = AlertRow(
        6, "hsct_delayed", "resolved", date(2026, 11, 2), datetime(2026, 11, 10, tzinfo=UTC)
    )
    gantt = build(
        [step],
        [open_, closed],
        today=TODAY,
        course_start=None,
        alert_labels={"step_overdue": "Overdue"},
    )
    alert_open, alert_closed = gantt.rows[1:]
    assert alert_open.label == "Alert: Overdue" and alert_open.status == "open since 4 Nov"
    assert round(alert_open.bars[0].x + alert_open.bars[0].width, 1) == gantt.today_x
    assert alert_closed.css == "alert-closed" and alert_closed.anchor == "alert-6"
