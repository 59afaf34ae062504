"""Reading the summary's maintained counters (notifications.models.SummaryCounter,
kept by the sweep: see notifications.dashboards).

One query whatever the number of courses: a team has one counter row per distinct
(name, key, value) — per course start date, and once over every start date — so the
summary sums a few hundred rows per team instead of aggregating its courses, alerts
and blocks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from django.db import connections, transaction
from django.db.models import QuerySet, Sum

from notifications.models import EVERY_START, SummaryCounter
from teams.models import Team


def read_counters(
    teams: QuerySet[Team] | Iterable[int],
    *,
    started_from: date | None = None,
    started_to: date | None = None,
    names: Iterable[str] | None = None,
) -> list[tuple[str, str, int, int]]:
    """(name, key, value, n) summed over ``teams`` (pass only the requester's), for
    the courses whose start date falls in [started_from, started_to] (either end open),
    or for every course (registered ones too) without a range."""
    rows = SummaryCounter.objects.filter(team_id__in=teams)
    if started_from is None and started_to is None:
        rows = rows.filter(start_date=EVERY_START)
    else:
        rows = rows.filter(start_date__gt=EVERY_START)
        if started_from is not None:
            rows = rows.filter(start_date__gte=started_from)
        if started_to is not None:
            rows = rows.filter(start_date__lte=started_to)
    if names is not None:
        rows = rows.filter(name__in=list(names))
    rows = rows.values_list("name", "key", "value").annotate(n=Sum("n")).order_by()
    with transaction.atomic(using=rows.db):
        if connections[rows.db].vendor == "postgresql":
            # A network's range over years can sum hundreds of thousands of counter rows:
            # enough for the planner's cost to pass jit_above_cost, and compiling the
            # query (100 ms and more) would cost more than running it. The hash of the
            # grouped rows holds one entry per distinct (name, key, value), a few
            # hundred, so the default work_mem is ample and is left alone.
            with connections[rows.db].cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        return list(rows)
