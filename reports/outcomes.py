"""Event-free survival by risk group: the selector.

:func:`efs_observations` loads one row per course in ONE query (the dates it needs are
correlated subqueries), turns each into (days, event?) with
:func:`reports.survival.efs_observation`, and :func:`efs_report` fits a Kaplan-Meier
estimate per risk group. The maths is in :mod:`reports.survival`; the picture in
:mod:`reports.plot`.

Definitions (BFM relapse trials; see docs/decisions.md, 2026-11-24):

* cohort: courses of the protocol with a confirmed risk group and a start date;
* time origin: the course start (the day the stratification was confirmed);
* events: second relapse, death, second malignancy (ClinicalEvent), and non-response —
  the course taken off protocol as ``refractory`` (on the day of that transition). A
  course taken off protocol for ``second_relapse`` or ``death`` counts as an event on
  that day too, in case the ClinicalEvent was never recorded; the first event counts;
* censoring: a withdrawal or loss to follow-up (event or off-protocol reason) at its
  date; otherwise the last follow-up — the latest date known for the course (records,
  steps done, transitions), never after the team's today.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import DateField, DateTimeField, Model, OuterRef, QuerySet, Subquery

from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    MrdResult,
    PlannedStep,
    ResponseAssessment,
    TreatmentCourse,
)
from reports.survival import (
    CENSOR_EVENT_KINDS,
    DAYS_PER_YEAR,
    EFS_EVENT_KINDS,
    OFF_PROTOCOL_CENSOR_REASONS,
    OFF_PROTOCOL_EVENT_REASONS,
    REFERENCE_FIGURES,
    KmEstimate,
    efs_observation,
    kaplan_meier,
)
from stratification.selectors import protocol_get

DEFAULT_PROTOCOL = "all-rez-bfm-90"  # the reference figures are for it
ESTIMATE_YEARS: tuple[int, ...] = (5, 10)


@dataclass(frozen=True, slots=True)
class Observation:
    course_id: int
    group: str
    days: int
    event: bool


def _extreme(model: type[Model], field: str, *, last: bool, **filters: Any) -> Subquery:
    """The course's earliest (or latest) non-null ``field`` of ``model``."""
    output = DateTimeField() if field == "at" else DateField()
    rows = (
        model.objects.filter(course=OuterRef("pk"), **{f"{field}__isnull": False}, **filters)
        .order_by(f"-{field}" if last else field)
        .values(field)[:1]
    )
    return Subquery(rows, output_field=output)


def _local_date(value: datetime | None, time_zone: str) -> date | None:
    return value.astimezone(zoneinfo.ZoneInfo(time_zone)).date() if value else None


def efs_rows(courses: QuerySet[TreatmentCourse]) -> QuerySet:
    """One row of dates per eligible course; a single query."""
    return (
        courses.filter(decision_confirmed=True, risk_group__isnull=False, start_date__isnull=False)
        .annotate(
            efs_event_on=_extreme(
                ClinicalEvent, "occurred_on", last=False, kind__in=EFS_EVENT_KINDS
            ),
            censor_event_on=_extreme(
                ClinicalEvent, "occurred_on", last=False, kind__in=CENSOR_EVENT_KINDS
            ),
            last_event_on=_extreme(ClinicalEvent, "occurred_on", last=True),
            last_block_start=_extreme(BlockAdministration, "start_date", last=True),
            last_block_end=_extreme(BlockAdministration, "end_date", last=True),
            last_assessment_on=_extreme(ResponseAssessment, "assessed_on", last=True),
            last_mrd_on=_extreme(MrdResult, "sampled_on", last=True),
            last_step_done_on=_extreme(PlannedStep, "done_on", last=True),
            last_transition_at=_extreme(CourseTransition, "at", last=True),
            off_protocol_at=_extreme(CourseTransition, "at", last=True, name="take_off_protocol"),
        )
        .order_by("pk")
        .values(
            "pk",
            "risk_group",
            "start_date",
            "off_protocol_reason",
            "patient__team__time_zone",
            "hsct_referral__referred_on",
            "hsct_referral__performed_on",
            "efs_event_on",
            "censor_event_on",
            "last_event_on",
            "last_block_start",
            "last_block_end",
            "last_assessment_on",
            "last_mrd_on",
            "last_step_done_on",
            "last_transition_at",
            "off_protocol_at",
        )
    )


def efs_observations(courses: QuerySet[TreatmentCourse], now: datetime) -> list[Observation]:
    observations = []
    todays: dict[str, date] = {}
    for row in efs_rows(courses):
        time_zone = row["patient__team__time_zone"]
        if time_zone not in todays:
            todays[time_zone] = _local_date(now, time_zone)  # type: ignore[assignment]
        off_on = _local_date(row["off_protocol_at"], time_zone)
        reason = row["off_protocol_reason"]
        days, event = efs_observation(
            start=row["start_date"],
            event_dates=[
                row["efs_event_on"],
                off_on if reason in OFF_PROTOCOL_EVENT_REASONS else None,
            ],
            censor_dates=[
                row["censor_event_on"],
                off_on if reason in OFF_PROTOCOL_CENSOR_REASONS else None,
            ],
            seen_dates=[
                row["last_event_on"],
                row["last_block_start"],
                row["last_block_end"],
                row["last_assessment_on"],
                row["last_mrd_on"],
                row["last_step_done_on"],
                row["hsct_referral__referred_on"],
                row["hsct_referral__performed_on"],
                _local_date(row["last_transition_at"], time_zone),
            ],
            today=todays[time_zone],
        )
        observations.append(Observation(row["pk"], row["risk_group"], days, event))
    return observations


def _estimate_at(km: KmEstimate, years: int) -> dict[str, Any]:
    days = years * DAYS_PER_YEAR
    point = km.at(days)
    entry: dict[str, Any] = {"years": years, "time_days": days, "reachable": point is not None}
    values = point.as_dict() if point else {}
    for key in ("survival", "se", "ci_lower", "ci_upper"):
        entry[key] = values.get(key)
    entry["at_risk"] = km.at_risk(days) if km.n else 0
    return entry


def group_outcome(group: str, name: str, observations: list[Observation]) -> dict[str, Any]:
    km = kaplan_meier([o.days for o in observations], [o.event for o in observations])
    return {
        "group": group,
        "name": name,
        "n": km.n,
        "events": km.events,
        "censored": km.n - km.events,
        "median_efs_days": km.median,
        "median_efs_years": round(km.median / DAYS_PER_YEAR, 4) if km.median is not None else None,
        "follow_up_max_days": km.max_time,
        "estimates": [_estimate_at(km, years) for years in ESTIMATE_YEARS],
        "curve": [point.as_dict() for point in km.points],
    }


def efs_report(
    courses: QuerySet[TreatmentCourse],
    *,
    protocol_slug: str = DEFAULT_PROTOCOL,
    team: int | None = None,
    now: datetime,
) -> dict[str, Any]:
    """EFS per risk group of ``protocol_slug`` for ``courses`` (already scoped to the
    requester's teams), with the published reference figures where the project has
    them. One query whatever the number of courses."""
    protocol = protocol_get(protocol_slug)
    if protocol is None:
        raise KeyError(protocol_slug)
    by_group: dict[str, list[Observation]] = {}
    for observation in efs_observations(courses.filter(protocol_slug=protocol.slug), now):
        by_group.setdefault(observation.group, []).append(observation)
    names = {g.id: g.name for g in protocol.groups}
    # The protocol's groups in its order; a group it no longer has (a course pinned to
    # an older version) follows.
    order = [*names, *sorted(set(by_group) - set(names))]
    return {
        "protocol": protocol.slug,
        "team": team,
        "as_of": now.isoformat(),
        "method": {
            "estimator": "Kaplan-Meier (lifelines KaplanMeierFitter)",
            "standard_error": "Greenwood",
            "confidence_interval": "95 %, Greenwood variance on the log(-log) scale",
            "time_origin": "course start (stratification confirmed)",
            "events": [*EFS_EVENT_KINDS, "refractory (taken off protocol)"],
            "censoring": "withdrawal, lost to follow-up, or the last follow-up "
            "(latest date recorded for the course)",
            "days_per_year": DAYS_PER_YEAR,
        },
        "groups": [group_outcome(g, names.get(g, g), by_group.get(g, [])) for g in order],
        "reference": REFERENCE_FIGURES.get(protocol.slug),
    }
