"""Existing rows that break a plausibility bound (courses/bounds.py): the reader behind
``manage.py check_data``. It only reads.

Each finding names the row by model and id, with its team's slug and the patient's
pseudonymous reference; never a value (a date of birth or diagnosis is a
quasi-identifier), only the field and the rule it breaks.

Tables are walked in primary-key chunks (``CHUNK`` rows per query per bound), so a
large table is never read at once and the command can say how far it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import Length

from courses.bounds import (
    BIRTH,
    DATE_BOUNDS,
    HORIZON,
    NUMBER_BOUNDS,
    PLANNED_HORIZON,
    TEXT_FIELDS,
    TODAY,
    DateBound,
    text_max_length,
)
from teams.models import Team

CHUNK = 5000


@dataclass(frozen=True)
class Finding:
    model: str
    pk: int
    field: str
    rule: str
    team: str
    patient: str

    def line(self) -> str:
        return (
            f"{self.model} {self.pk} (team {self.team}, patient {self.patient}): "
            f"{self.field} {self.rule}"
        )


@dataclass(frozen=True)
class Check:
    """One bound as a query: ``where`` selects the breaking rows; ``after`` (optional)
    judges the selected rows in Python (the planning horizon, counted from each row's
    own floor)."""

    model: str
    field: str
    rule: str
    team: str
    patient: str
    where: Callable[[], Q]
    after: Callable[[dict[str, Any]], bool] | None = None
    extra: tuple[str, ...] = ()


def _model(name: str) -> type[models.Model]:
    return apps.get_model("courses", name)


def _team_todays(now: datetime) -> dict[date, list[int]]:
    """Team ids by their today (a few distinct dates: one per time zone's date)."""
    todays: dict[date, list[int]] = {}
    for team in Team.objects.only("pk", "time_zone"):
        todays.setdefault(team.today(now), []).append(team.pk)
    return todays


def _after_today(bound: DateBound, todays: dict[date, list[int]]) -> Q:
    q = Q(pk__in=[])
    for day, team_ids in todays.items():
        q |= Q(**{f"{bound.team}__in": team_ids, f"{bound.field}__gt": day})
    return q


def _before_birth(prefix: str, field: str) -> Q:
    p = f"{prefix}__" if prefix else ""
    return Q(**{f"{field}__year__lt": F(f"{p}birth_year")}) | Q(
        **{
            f"{p}birth_month__isnull": False,
            f"{field}__year": F(f"{p}birth_year"),
            f"{field}__month__lt": F(f"{p}birth_month"),
        }
    )


def checks(now: datetime) -> list[Check]:
    """Every bound as a check, for the team calendars at ``now``."""
    todays = _team_todays(now)
    found: list[Check] = []
    for bound in NUMBER_BOUNDS:
        low = "gt" if bound.low_open else "gte"
        outside = ~Q(**{f"{bound.field}__{low}": bound.low, f"{bound.field}__lte": bound.high})
        where = Q(**{f"{bound.field}__isnull": False}) & outside
        team, patient = _paths(bound.model)
        found.append(
            Check(bound.model, bound.field, bound.message(), team, patient, lambda w=where: w)
        )
    limit = text_max_length()
    for model_name, field in TEXT_FIELDS:
        team, patient = _paths(model_name)
        found.append(
            Check(
                model_name,
                field,
                f"must be at most {limit} characters.",
                team,
                patient,
                lambda f=field: Q(**{f"{f}_length__gt": limit}),
                extra=(f"length:{field}",),
            )
        )
    for bound in DATE_BOUNDS:
        found.extend(_date_checks(bound, todays))
    found.extend(_birth_checks(todays))
    return found


def _paths(model_name: str) -> tuple[str, str]:
    for bound in DATE_BOUNDS:
        if bound.model == model_name:
            return bound.team, bound.patient
    raise LookupError(model_name)


def _date_checks(bound: DateBound, todays: dict[date, list[int]]) -> list[Check]:
    found = []
    if bound.ceiling == TODAY:
        found.append(
            Check(
                bound.model,
                bound.field,
                "must not be in the future (the team's today).",
                bound.team,
                bound.patient,
                lambda: _after_today(bound, todays),
            )
        )
    if bound.floor == BIRTH:
        found.append(
            Check(
                bound.model,
                bound.field,
                "must not be before the patient's birth (year and month).",
                bound.team,
                bound.patient,
                lambda: _before_birth(bound.patient, bound.field),
            )
        )
    elif bound.floor is not None:
        found.append(
            Check(
                bound.model,
                bound.field,
                f"must not be before {bound.floor.replace('__', '.')}.",
                bound.team,
                bound.patient,
                lambda: Q(**{f"{bound.field}__lt": F(bound.floor)}),
            )
        )
    if bound.ceiling == HORIZON and bound.floor not in (None, BIRTH):
        # Date arithmetic in SQL differs between SQLite and PostgreSQL: the rows past
        # the earliest possible limit are selected, and each is judged on its own floor.
        earliest = _model(bound.model)._base_manager.aggregate(first=Min(bound.floor))["first"]
        start = (earliest or date.max - PLANNED_HORIZON) + PLANNED_HORIZON
        found.append(
            Check(
                bound.model,
                bound.field,
                f"must not be later than {PLANNED_HORIZON.days // 365} years after "
                f"{bound.floor.replace('__', '.')} (the planning horizon).",
                bound.team,
                bound.patient,
                lambda: Q(**{f"{bound.field}__gt": start}),
                after=lambda row: row[bound.field] > row["floor"] + PLANNED_HORIZON,
                extra=(f"floor:{bound.floor}",),
            )
        )
    return found


def _birth_checks(todays: dict[date, list[int]]) -> list[Check]:
    """The birth year and month not in the future (the patient's own row)."""
    q = Q(pk__in=[])
    for day, team_ids in todays.items():
        q |= Q(team_id__in=team_ids, birth_year__gt=day.year)
        q |= Q(team_id__in=team_ids, birth_year=day.year, birth_month__gt=day.month)
    return [
        Check(
            "Patient",
            "birth_year",
            "must not be in the future (with birth_month: the month).",
            "team",
            "",
            lambda: q,
        )
    ]


def _rows(check: Check, low: int, high: int) -> Iterator[dict[str, Any]]:
    model = _model(check.model)
    team = f"{check.team}__slug"
    patient = f"{check.patient}__reference" if check.patient else "reference"
    qs = model._base_manager.filter(pk__gte=low, pk__lt=high)
    values: list[str] = ["pk", check.field, team, patient]
    for extra in check.extra:
        kind, name = extra.split(":", 1)
        if kind == "length":
            qs = qs.annotate(**{f"{name}_length": Length(name)})
        elif kind == "floor":
            qs = qs.annotate(floor=F(name))
            values.append("floor")
    for row in qs.filter(check.where()).values(*values).order_by("pk"):
        row["_team"], row["_patient"] = row[team], row[patient]
        yield row


def find(
    now: datetime, progress: Callable[[str, int, int], None] | None = None
) -> Iterator[Finding]:
    """Every finding, model by model, in primary-key order. ``progress(model, done,
    total)`` is called after each chunk of a table larger than one chunk."""
    by_model: dict[str, list[Check]] = {}
    for check in checks(now):
        by_model.setdefault(check.model, []).append(check)
    for model_name, model_checks in by_model.items():
        model = _model(model_name)
        span = model._base_manager.aggregate(total=Count("pk"), low=Min("pk"), high=Max("pk"))
        total = span["total"]
        if total == 0:
            continue
        # Progress is reported for a table larger than one chunk, counted per chunk.
        report = progress is not None and total > CHUNK
        done = 0
        for low in range(span["low"], span["high"] + 1, CHUNK):
            high = low + CHUNK
            for check in model_checks:
                for row in _rows(check, low, high):
                    if check.after is not None and not check.after(row):
                        continue
                    yield Finding(
                        model_name,
                        row["pk"],
                        check.field,
                        check.rule,
                        row["_team"],
                        row["_patient"],
                    )
            if report:
                done += model._base_manager.filter(pk__gte=low, pk__lt=high).count()
                progress(model_name, done, total)
