"""The course timeline as a Gantt chart: pure geometry for the SVG template.

One row per planned step. Each row shows the protocol's plan (a hollow diamond on
``planned_on``), what happened or is expected (a filled circle on ``done_on``, a hollow
circle on ``due_on`` while open), the delay between the two as a hatched bar with its
length in days written beside it, and for an open step past its due date and grace a
striped bar up to today with the word "overdue". Alerts follow as rows of their own,
from the day their condition began to the day it ended (or today). A vertical line
marks today and another the course start. Every fact carried by a colour is also
carried by a shape and a word (WCAG 1.4.1), and the page repeats the same data as a
table.

The chart keeps one scale (``PX_PER_DAY``) whatever the course's length, so a course
planned over two years is as legible near today as one of three months: it is wider
than the page and scrolls sideways beside a fixed column of step names (the page opens
it at today).

No ORM and no clock: the steps, alerts and today are arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

LABEL_WIDTH = 230
PX_PER_DAY = 2.5
MIN_CHART_WIDTH = 720
ROW_HEIGHT = 26
AXIS_HEIGHT = 44
PAD_DAYS = 10
# Room after the last date for the last row's words.
RIGHT_PAD = 150


@dataclass(frozen=True)
class Mark:
    x: float
    kind: str  # "planned", "done", "due"


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    kind: str  # "delay", "overdue", "alert-open", "alert-closed"


@dataclass
class Row:
    y: int
    label: str
    status: str  # words shown at the end of the row
    css: str
    marks: list[Mark] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    note_x: float = 0.0
    note_anchor: str = "start"
    anchor: str = ""

    @property
    def text_y(self) -> float:
        return self.y + ROW_HEIGHT / 2 + 4

    @property
    def mid_y(self) -> float:
        return self.y + ROW_HEIGHT / 2


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass
class Gantt:
    width: int  # of the chart (the scrolling part); the names column is LABEL_WIDTH
    height: int
    start: date
    end: date
    rows: list[Row]
    ticks: list[Tick]
    today_x: float | None
    start_x: float | None
    label_width: int = LABEL_WIDTH
    axis_y: int = AXIS_HEIGHT
    row_height: int = ROW_HEIGHT
    summary: str = ""

    @property
    def chart_bottom(self) -> int:
        return self.height - 8


def _months(start: date, end: date) -> list[date]:
    """The first of every month in [start, end]: a tick each (75 px apart)."""
    first = date(start.year, start.month, 1)
    if first < start:
        first = _add_months(first, 1)
    days = []
    while first <= end:
        days.append(first)
        first = _add_months(first, 1)
    return days


def _add_months(day: date, months: int) -> date:
    years, month0 = divmod(day.month - 1 + months, 12)
    return date(day.year + years, month0 + 1, 1)


CHAR_WIDTH = 6.2  # an 11 px sans-serif character, on average


def _place_note(row: Row, width: float) -> None:
    """The status words after the row's last mark, or before its first one when they
    would run off the right edge."""
    right = max([m.x for m in row.marks] + [b.x + b.width for b in row.bars]) + 10
    left = min([m.x for m in row.marks] + [b.x for b in row.bars]) - 10
    words = len(row.status) * CHAR_WIDTH
    if right + words <= width - 4:
        row.note_x, row.note_anchor = right, "start"
    elif left - words >= 0:
        row.note_x, row.note_anchor = left, "end"
    else:
        row.note_x, row.note_anchor = width - 4, "end"


def _day(day: date) -> str:
    return f"{day.day} {day:%b}"


def _days(n: int) -> str:
    return f"{n} day{'' if abs(n) == 1 else 's'}"


def step_status(step: Any, today: date) -> tuple[str, str]:
    """(words, css class) for one step: what a person reads at the end of its row."""
    if step.status == "done":
        delay = (step.done_on - step.planned_on).days
        late = f", {_days(delay)} after plan" if delay > 0 else ""
        early = f", {_days(-delay)} before plan" if delay < 0 else ""
        return f"done {_day(step.done_on)}{late}{early}", "done"
    if step.status in ("skipped", "cancelled"):
        return step.status, step.status
    overdue = (today - step.due_on).days
    if overdue > step.grace_days:
        return f"overdue {_days(overdue)}", "overdue"
    if overdue > 0:
        return f"due {_days(overdue)} ago (within grace)", "due"
    return f"due {_day(step.due_on)}", "planned"


def build(
    steps: Sequence[Any],
    alerts: Iterable[Any],
    *,
    today: date,
    course_start: date | None,
    alert_labels: dict[str, str] | None = None,
) -> Gantt | None:
    """The chart for ``steps`` (objects with label, planned_on, due_on, done_on,
    status, grace_days) and ``alerts`` (kind, state, condition_since, resolved_at),
    or None when the course has no schedule yet."""
    if not steps:
        return None
    alerts = list(alerts)
    alert_labels = alert_labels or {}
    dates = [today]
    for s in steps:
        dates += [s.planned_on, s.due_on] + ([s.done_on] if s.done_on else [])
    if course_start:
        dates.append(course_start)
    dates += [a.condition_since for a in alerts]
    start = min(dates) - timedelta(days=PAD_DAYS)
    end = max(dates) + timedelta(days=PAD_DAYS)
    span = max((end - start).days, 1)
    scale = max(PX_PER_DAY, (MIN_CHART_WIDTH - RIGHT_PAD) / span)
    width = int(span * scale + RIGHT_PAD)

    def x(day: date) -> float:
        return round((day - start).days * scale, 1)

    rows: list[Row] = []
    y = AXIS_HEIGHT
    for s in steps:
        words, css = step_status(s, today)
        row = Row(y=y, label=s.label, status=words, css=css, anchor=f"step-{s.pk}")
        row.marks.append(Mark(x(s.planned_on), "planned"))
        actual = s.done_on if s.status == "done" else s.due_on
        if s.status not in ("skipped", "cancelled"):
            if actual > s.planned_on:
                row.bars.append(Bar(x(s.planned_on), x(actual) - x(s.planned_on), "delay"))
            if css == "overdue":
                row.bars.append(Bar(x(s.due_on), x(today) - x(s.due_on), "overdue"))
            row.marks.append(Mark(x(actual), "done" if s.status == "done" else "due"))
        _place_note(row, width)
        rows.append(row)
        y += ROW_HEIGHT
    for a in alerts:
        ended = a.resolved_at.date() if a.resolved_at else None
        until = min(ended or today, today)
        open_ = a.state != "resolved"
        label = f"Alert: {alert_labels.get(a.kind, a.kind)}"
        words = f"{a.state} since {_day(a.condition_since)}" if open_ else "resolved"
        row = Row(y=y, label=label, status=words, css="alert-open" if open_ else "alert-closed")
        row.anchor = f"alert-{a.pk}"
        left = x(a.condition_since)
        row.bars.append(Bar(left, max(x(until) - left, 2.0), row.css))
        _place_note(row, width)
        rows.append(row)
        y += ROW_HEIGHT

    ticks = [Tick(x(d), d.strftime("%b %Y")) for d in _months(start, end)]
    done = sum(1 for s in steps if s.status == "done")
    overdue = sum(1 for r in rows if r.css == "overdue")
    summary = (
        f"{len(steps)} planned steps from {_day(start + timedelta(days=PAD_DAYS))} "
        f"{(start + timedelta(days=PAD_DAYS)).year}: {done} done, {overdue} overdue; "
        f"today is {_day(today)} {today.year}."
    )
    return Gantt(
        width=width,
        height=y + 12,
        start=start,
        end=end,
        rows=rows,
        ticks=ticks,
        today_x=x(today),
        start_x=x(course_start) if course_start else None,
        summary=summary,
    )
