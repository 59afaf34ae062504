"""Due-date arithmetic: plan, delay propagation, reschedules (pure, no database)."""

from dataclasses import dataclass
from datetime import date

from courses.schedule import plan, recompute_due_dates


@dataclass
class Row:
    key: str
    anchor_key: str
    offset_days: int
    due_on: date
    rescheduled_on: date | None = None
    done_on: date | None = None


START = date(2026, 1, 5)


def rows() -> list[Row]:
    planned = plan(
        [("r1", "", 0), ("r2", "r1", 21), ("assess", "r2", 21), ("mrd", "r2", 21)], START
    )
    return [Row(p.key, p.anchor_key, p.offset_days, p.planned_on) for p in planned]


def test_plan_counts_each_offset_from_its_anchor():
    assert [r.due_on for r in rows()] == [
        date(2026, 1, 5),
        date(2026, 1, 26),
        date(2026, 2, 16),
        date(2026, 2, 16),
    ]


def test_a_late_block_moves_every_later_due_date_by_its_delay():
    steps = rows()
    steps[0].done_on = date(2026, 1, 9)  # R1 given four days late
    changed = recompute_due_dates(steps, START)
    assert [s.key for s in changed] == ["r2", "assess", "mrd"]
    assert [s.due_on for s in steps[1:]] == [
        date(2026, 1, 30),
        date(2026, 2, 20),
        date(2026, 2, 20),
    ]


def test_an_early_actual_date_pulls_later_steps_forward_too():
    steps = rows()
    steps[0].done_on = date(2026, 1, 5)
    steps[1].done_on = date(2026, 1, 24)
    recompute_due_dates(steps, START)
    assert steps[2].due_on == date(2026, 2, 14)


def test_a_rescheduled_step_pins_its_date_and_the_rest_follow_it():
    steps = rows()
    steps[1].rescheduled_on = date(2026, 2, 2)
    recompute_due_dates(steps, START)
    assert steps[1].due_on == date(2026, 2, 2)
    assert steps[2].due_on == date(2026, 2, 23)


def test_nothing_changes_when_everything_is_on_time():
    steps = rows()
    assert recompute_due_dates(steps, START) == []
