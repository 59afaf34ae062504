"""The dashboards' precomputed state, kept with the alerts: what the worklist and the
summary read instead of aggregating every course and alert on every request.

* ``CourseAttention``: per active course with unresolved alerts, the worklist's sort
  keys and counts, its team and risk group, and its next open step.
* ``SummaryFact`` and ``SummaryCounter``: what each course adds to its team's summary
  (its state and risk group while active, its unresolved alerts, its delays), and the
  sums of those per team, per course start date and over every start date.

One function writes them, :func:`refresh`, and it is called in two places only, both
holding the sweep lock (the SweepRun row) in the transaction of the alert changes:

* at the end of every sweep (``services.alerts_sweep``): the periodic one refreshes the
  courses whose alerts it changed, those whose snooze ends on their team's date, and
  those written since the previous periodic sweep (or new to the dashboards); the
  per-course one, run right after a write is committed (``course_changed``),
  refreshes its course;
* at the end of every alert lifecycle action (acknowledge, snooze, resolve), for the
  alert's course.

So refreshes never overlap, and each computes from the alerts of its own transaction.
A course is shown as of its last evaluation: a record changes the course at once, and
its re-evaluation after commit changes its alerts and its dashboard rows together
(if the broker lost that task, the next periodic sweep catches the course up).

Snoozes end by the calendar, not by a write: a snoozed alert returns to the worklist
with the first periodic sweep on or after its date (at most one beat interval plus a
sweep late; docs/decisions.md).

Every statement is set-based and scoped by an id array, so a refresh costs the same
number of queries for one course as for all of them.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateField,
    DateTimeField,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat

from courses.delays import course_delays
from courses.models import ACTIVE_STATES, PlannedStep, StepStatus, TreatmentCourse
from notifications.models import (
    EVERY_START,
    SEVERITY_RANK,
    UNRESOLVED,
    Alert,
    CourseAttention,
    SummaryCounter,
    SummaryFact,
)
from teams.selectors import on_team_date

logger = logging.getLogger(__name__)

# A scope: a set of course ids, or EVERY course.
EVERY = None
Ids = Collection[int] | None
# Past this many courses one pass over every course costs less than the id array.
EVERY_ABOVE = 10_000

ATTENTION_COLUMNS = (
    "course_id",
    "team_id",
    "risk_group",
    "priority",
    "severity_rank",
    "oldest_since",
    "open_alerts",
    "all_priority",
    "all_severity_rank",
    "all_oldest_since",
    "all_open_alerts",
    "wake_on",
    "next_step_id",
    "changed_at",
)
FACT_COLUMNS = ("course_id", "team_id", "start_date", "name", "key", "value")
COUNTER_KEY = ("team_id", "start_date", "name", "key", "value")
# The names of the facts (and counters): an active course in its state and in its
# risk group ("" when unconfirmed), an unresolved alert ("<kind>:<severity>"), and a
# delay (key: the measure, value: days).
STATE = "state"
GROUP = "risk_group"
ALERT = "alert"
DELAY = "delay"


def severity_rank() -> Case:
    """An alert's severity as its rank (low 1, medium 2, high 3), in SQL."""
    return Case(
        *(When(severity=s, then=Value(r)) for s, r in SEVERITY_RANK.items()),
        output_field=IntegerField(),
    )


def union(*scopes: Ids) -> Ids:
    if any(scope is EVERY for scope in scopes):
        return EVERY
    ids = set().union(*scopes)
    return EVERY if len(ids) > EVERY_ABOVE else ids


def scoped(queryset: QuerySet, ids: Ids, path: str = "course_id") -> QuerySet:
    if ids is EVERY:
        return queryset
    return queryset.filter(**{f"{path}__in_array": sorted(ids)})


def refresh(
    now: datetime,
    dates: Mapping[int, date],
    *,
    courses: Ids = (),
    alerts: Ids = (),
    woken: Ids = (),
) -> None:
    """Bring the dashboards' rows in line with the database for: ``courses`` (written:
    everything about them), ``alerts`` (courses whose alerts changed) and ``woken``
    (courses a snooze of which ended). ``dates``: {team_id: the team's calendar date}
    for every team of those courses. Call with the sweep lock held."""
    alerts = union(alerts, courses)
    courses = union(courses)
    _refresh_attention(union(alerts, woken), courses, now, dates)
    _refresh_facts(alerts=alerts, courses=courses)


def snoozes_ending(dates: Mapping[int, date]) -> list[int]:
    """The courses with a snooze that ends on or before their team's date: their rows
    still hide the alert (one query, on the index of snoozed rows)."""
    return list(
        CourseAttention.objects.filter(wake_on__lte=on_team_date(dates, "team_id")).values_list(
            "course_id", flat=True
        )
    )


def rebuild(now: datetime, dates: Mapping[int, date]) -> None:
    """Everything, from scratch (after a bulk load); under the sweep lock."""
    refresh(now, dates, courses=EVERY)


# --- the worklist's rows -------------------------------------------------------------


def _refresh_attention(ids: Ids, written: Ids, now: datetime, dates: Mapping[int, date]) -> None:
    """The rows of ``ids``; their next step is looked up again for the ``written``
    courses and for new rows only (only a write on the course moves its steps)."""
    if ids is not EVERY and not ids:
        return
    unresolved = scoped(
        Alert.objects.filter(state__in=UNRESOLVED, course__state__in=ACTIVE_STATES), ids
    ).order_by()
    # Each alert's team's date: a constant when the teams share one.
    today = on_team_date(dates, "course__patient__team_id")
    awake = Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=today)
    rank = severity_rank()
    urgency = rank + F("escalation_level")
    next_step = Subquery(
        PlannedStep.objects.filter(course_id=OuterRef("course_id"), status=StepStatus.PLANNED)
        .order_by("due_on", "sequence")
        .values("pk")[:1]
    )
    if written is not EVERY:
        # The row's own next step, joined (one to one), not looked up row by row.
        kept = F("course__attention__next_step_id")
        if written:
            kept = Case(
                When(course_id__in_array=sorted(written), then=Value(None)),
                default=kept,
                output_field=BigIntegerField(),
            )
        next_step = Coalesce(kept, next_step, output_field=BigIntegerField())
    # Annotation names of their own: "severity" and the like would shadow the alert's
    # fields inside the expressions.
    aggregates = {
        "x_team": F("course__patient__team_id"),
        "x_group": F("course__risk_group"),
        "x_priority": Max(urgency, filter=awake) * Value(-1),
        "x_severity": Max(rank, filter=awake),
        "x_oldest": Min("condition_since", filter=awake),
        "x_count": Count("id", filter=awake),
        "x_all_priority": Max(urgency) * Value(-1),
        "x_all_severity": Max(rank),
        "x_all_oldest": Min("condition_since"),
        "x_all_count": Count("id"),
        "x_wake": Min("snoozed_until", filter=Q(snoozed_until__gt=today)),
        "x_step": next_step,
        "x_at": Value(now, output_field=DateTimeField()),
    }
    fresh = (
        unresolved.values("course_id").annotate(**aggregates).values_list("course_id", *aggregates)
    )
    # Rows whose course no longer needs attention (no unresolved alert, or not active).
    scoped(CourseAttention.objects.all(), ids).exclude(
        course_id__in=unresolved.values("course_id")
    ).delete()
    _insert_select(
        CourseAttention,
        ATTENTION_COLUMNS,
        fresh,
        conflict="course_id",
        unchanged_by=("changed_at",),
    )


# --- the summary's facts and counters ---------------------------------------------------


def _fact_scope(alerts: Ids, courses: Ids) -> Q | None:
    """The facts a refresh replaces: the alert facts of ``alerts``, every other fact of
    ``courses`` (None: nothing to do)."""
    parts = []
    if alerts is EVERY:
        parts.append(Q(name=ALERT))
    elif alerts:
        parts.append(Q(name=ALERT, course_id__in_array=sorted(alerts)))
    if courses is EVERY:
        parts.append(~Q(name=ALERT))
    elif courses:
        parts.append(~Q(name=ALERT) & Q(course_id__in_array=sorted(courses)))
    if not parts:
        return None
    q = parts[0]
    for part in parts[1:]:
        q |= part
    return q


def _fact_sources(alerts: Ids, courses: Ids) -> Iterable[QuerySet]:
    """The facts as they are now, one query per source, each in FACT_COLUMNS order."""
    team, start = "course__patient__team_id", "course__start_date"
    if alerts is EVERY or alerts:
        yield scoped(Alert.objects.filter(state__in=UNRESOLVED).order_by(), alerts).values_list(
            "course_id",
            team,
            start,
            Value(ALERT),
            Concat("kind", Value(":"), "severity"),
            Value(0),
        )
    if courses is not EVERY and not courses:
        return
    active = scoped(
        TreatmentCourse.objects.filter(state__in=ACTIVE_STATES).order_by(), courses, "pk"
    )
    yield active.values_list(
        "pk", "patient__team_id", "start_date", Value(STATE), "state", Value(0)
    )
    yield active.values_list(
        "pk",
        "patient__team_id",
        "start_date",
        Value(GROUP),
        Coalesce("risk_group", Value("")),
        Value(0),
    )
    for measure, rows in course_delays().items():
        yield scoped(rows, courses).values_list(
            "course_id", team, start, Value(DELAY), Value(measure), "days"
        )


def _tally(scope: Q) -> Counter:
    rows = (
        SummaryFact.objects.filter(scope)
        .values_list(*COUNTER_KEY)
        .annotate(n=Count("id"))
        .order_by()
    )
    return Counter({tuple(row[:-1]): row[-1] for row in rows})


def _refresh_facts(*, alerts: Ids, courses: Ids) -> None:
    """Replace the facts in scope and move the counters by the difference: the old
    contribution of these courses comes off, the new one goes on. A part refreshed
    for every course (every alert fact, or every other fact) is counted again from
    its facts instead, in SQL: cheaper than a difference over every row."""
    scope = _fact_scope(alerts, courses)
    if scope is None:
        return
    some = _fact_scope(
        alerts if alerts is not EVERY else (), courses if courses is not EVERY else ()
    )
    before = _tally(some) if some is not None else Counter()
    SummaryFact.objects.filter(scope).delete()
    for source in _fact_sources(alerts, courses):
        _insert_select(SummaryFact, FACT_COLUMNS, source)
    if some is not None:
        after = _tally(some)
        after.subtract(before)
        _move_counters(after)
    every = [q for q, part in ((Q(name=ALERT), alerts), (~Q(name=ALERT), courses)) if part is EVERY]
    if every:
        _recount(every[0] if len(every) == 1 else Q())


def _move_counters(delta: Mapping[tuple, int]) -> None:
    """Add ``delta`` ({(team, start, name, key, value): change}) to the counters of its
    start date and to the every-start counters."""
    moves: dict[tuple, int] = defaultdict(int)
    for (team, start, *rest), change in delta.items():
        if change:
            if start is not None:
                moves[(team, start, *rest)] += change
            moves[(team, EVERY_START, *rest)] += change
    moves = {key: change for key, change in moves.items() if change}
    if not moves:
        return
    current = {
        tuple(row[1:-1]): (row[0], row[-1])
        for row in SummaryCounter.objects.filter(
            team_id__in={k[0] for k in moves},
            start_date__in_array=sorted({k[1] for k in moves}),
            name__in={k[2] for k in moves},
        ).values_list("pk", *COUNTER_KEY, "n")
    }
    upserts, emptied = [], []
    for key, change in moves.items():
        pk, n = current.get(key, (None, 0))
        total = n + change
        if total < 0:
            # The counters are the sum of the facts; this can only mean rows edited by
            # hand. Count every team again from the facts rather than store nonsense.
            logger.error("summary counter %s would go negative; recounting from facts", key)
            _recount(Q())
            return
        if total == 0:
            if pk is not None:
                emptied.append(pk)
        else:
            upserts.append(SummaryCounter(**dict(zip(COUNTER_KEY, key, strict=True)), n=total))
    SummaryCounter.objects.bulk_create(
        upserts, update_conflicts=True, unique_fields=list(COUNTER_KEY), update_fields=["n"]
    )
    if emptied:
        SummaryCounter.objects.filter(pk__in_array=emptied).delete()


def _recount(names: Q) -> None:
    """The counters of the facts matching ``names`` (on the fact's name), counted again
    from the facts: per start date, and over every start date."""
    SummaryCounter.objects.filter(names).delete()
    facts = SummaryFact.objects.filter(names).order_by()
    per_day = (
        facts.filter(start_date__isnull=False)
        .values("team_id", "start_date", "name", "key", "value")
        .annotate(x_n=Count("id"))
        .values_list("team_id", "start_date", "name", "key", "value", "x_n")
    )
    overall = (
        facts.values("team_id", "name", "key", "value")
        .annotate(x_n=Count("id"), x_start=Value(EVERY_START, output_field=DateField()))
        .values_list("team_id", "x_start", "name", "key", "value", "x_n")
    )
    for rows in (per_day, overall):
        _insert_select(SummaryCounter, (*COUNTER_KEY, "n"), rows)


# --- SQL ---------------------------------------------------------------------------------


def _insert_select(
    model: type,
    columns: tuple[str, ...],
    source: QuerySet,
    conflict: str | None = None,
    unchanged_by: tuple[str, ...] = (),
) -> None:
    """INSERT INTO model (columns) SELECT <source> — one statement, no rows through
    Python. ``conflict``: the unique column an existing row is updated on, if another
    column than those ``unchanged_by`` differs."""
    quote = connection.ops.quote_name
    names = [model._meta.get_field(c.removesuffix("_id")).column for c in columns]
    select, params = source.query.sql_with_params()
    # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT (its parser).
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, names))}) "
        f"SELECT * FROM ({select}) AS fresh WHERE true"
    )
    if conflict:
        updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n != conflict)
        # A row that is already current is left alone: no new row version, no index
        # entries, no WAL (the steady sweep refreshes thousands of unchanged rows).
        distinct = "IS NOT" if connection.vendor == "sqlite" else "IS DISTINCT FROM"
        table = quote(model._meta.db_table)
        changed = " OR ".join(
            f"{table}.{quote(n)} {distinct} excluded.{quote(n)}"
            for n in names
            if n not in (conflict, *unchanged_by)
        )
        sql += f" ON CONFLICT ({quote(conflict)}) DO UPDATE SET {updates} WHERE {changed}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
