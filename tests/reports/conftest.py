"""The reports' shared cohort: alerts raised by a real sweep on realistic dates."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses import services as course_services
from teams.models import Role
from tests.notifications import conftest as notifications

# The clock and the real sweep, as the notifications tests use them.
clock = notifications.clock
sweep = notifications.sweep


def queries(client: Any, url: str) -> int:
    """How many queries answering ``url`` costs."""
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def read_queries(selects: int) -> int:
    """The queries of a read of the summary's counters (reports.counters) making
    ``selects`` SELECTs: its transaction's savepoint pair (the test's transaction
    encloses it), and on PostgreSQL the SET LOCAL that turns JIT off."""
    return selects + 2 + (connection.vendor == "postgresql")


@pytest.fixture
def cohort(clock, sweep, team, other_team, clinician, member, make_course):
    """Three courses of team X and one of team Y, swept on 2026-12-08:

    * a: group A (HSCT indicated) -> hsct_referral_missing (high) + overdue blocks
    * b: group B (no HSCT)       -> overdue blocks only (medium)
    * c: group B, all on time    -> its first block recorded on the start day, the
         rest still within grace on 2026-11-26 (swept that day: nothing)
    * y: team Y, group A          -> never visible to team X
    """
    a = make_course(team, clinician)
    b = make_course(team, clinician, relapse_date=date(2024, 9, 1))
    c = make_course(team, clinician, relapse_date=date(2024, 9, 1))
    y = make_course(other_team, member(other_team, Role.COORDINATOR))
    clock("2026-12-08")
    course_services.referral_save(
        c, data={"referred_on": date(2026, 12, 8)}, actor=clinician, now=timezone.now()
    )
    for step in c.steps.filter(status="planned"):
        course_services.step_update(
            step, data={"status": "skipped", "reason": "test"}, actor=clinician, now=timezone.now()
        )
    sweep()
    return {"a": a, "b": b, "c": c, "y": y}
