"""Event-free survival by risk group: the selector.

:func:`efs_observations` loads one row per course in ONE query (the dates it needs are
correlated subqueries), turns each into (days, event?) with
:func:`reports.survival.efs_observation`, and :func:`efs_report` fits a Kaplan-Meier
estimate per risk group. The maths is in :mod:`reports.survival`; the picture in
:mod:`reports.plot`.

Definitions (the BFM relapse trials' conventions as ../shared/clinical-notes.md
"Outcome conventions" records them: recalled, to verify; docs/decisions.md):

* time origin: the relapse date (the diagnosis of the relapse), not the day therapy
  began nor the day the course was typed in;
* cohort: first-relapse courses of the protocol (a course for a later relapse links to
  an earlier one and is left out: the protocols and their reference figures are for
  first relapses) that were confirmed, and those never confirmed that had an event (a
  child who died before the group was confirmed must not vanish from the figures; it
  counts in its proposed group, or as "not stratified"); a course taken off protocol
  as entered in error counts nowhere (neither event nor censored). Voided records are
  ignored (the records' manager leaves them out);
* events: second relapse, death, second malignancy (ClinicalEvent), a follow-up contact
  finding the patient dead or with disease; non-response — the course taken off
  protocol as refractory — at time zero; treatment failure moved to alternative
  therapy (off protocol) on its date; a course taken off protocol for second relapse
  or death on that date too, in case the event itself was not recorded. The first
  event counts;
* censoring: a withdrawal or loss to follow-up (event or off-protocol reason) at its
  date; otherwise the last contact — the latest clinical date on the course's record
  (follow-up contacts included, so EFS follows the patient after therapy), never after
  the team's today.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db.models import (
    DateField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, NullIf

from courses.models import ClinicalEvent, CourseTransition, TreatmentCourse
from reports.survival import (
    CENSOR_EVENT_KINDS,
    DAYS_PER_YEAR,
    EFS_EVENT_KINDS,
    EVENT_CONTACT_STATUSES,
    OFF_PROTOCOL_CENSOR_REASONS,
    OFF_PROTOCOL_EVENT_REASONS,
    OFF_PROTOCOL_EXCLUDED_REASONS,
    OFF_PROTOCOL_TIME_ZERO_REASONS,
    REFERENCE_FIGURES,
    KmEstimate,
    efs_observation,
    kaplan_meier,
)
from stratification.selectors import protocol_get

DEFAULT_PROTOCOL = "all-rez-bfm-90"  # the reference figures are for it
ESTIMATE_YEARS: tuple[int, ...] = (5, 10)
# The group of a course never confirmed and with no proposed group.
NOT_STRATIFIED = ""

EVENTS = Q(kind__in=EFS_EVENT_KINDS) | Q(
    kind="follow_up_contact", contact_status__in=EVENT_CONTACT_STATUSES
)


@dataclass(frozen=True, slots=True)
class Observation:
    course_id: int
    group: str
    days: int
    event: bool


def _first_event(condition: Q) -> Subquery:
    """The course's earliest valid event matching ``condition`` (voided ones are left
    out by the records' manager)."""
    rows = (
        ClinicalEvent.objects.filter(condition, course=OuterRef("pk"))
        .order_by("occurred_on")
        .values("occurred_on")[:1]
    )
    return Subquery(rows, output_field=DateField())


def _local_date(value: datetime, time_zone: str) -> date:
    return value.astimezone(zoneinfo.ZoneInfo(time_zone)).date()


def efs_rows(courses: QuerySet[TreatmentCourse]) -> QuerySet:
    """One row of dates per course in the cohort (see the module docstring); a single
    query."""
    off_protocol_on = Subquery(
        CourseTransition.objects.filter(course=OuterRef("pk"), name="take_off_protocol")
        .order_by("-on", "-at", "-id")
        .values("on")[:1],
        output_field=DateField(),
    )
    confirmed = Q(decision_confirmed=True, risk_group__isnull=False, start_date__isnull=False)
    had_event = Q(
        off_protocol_reason__in=OFF_PROTOCOL_TIME_ZERO_REASONS + OFF_PROTOCOL_EVENT_REASONS
    ) | Exists(ClinicalEvent.objects.filter(EVENTS, course=OuterRef("pk")))
    return (
        courses.filter(previous_course__isnull=True)
        .exclude(off_protocol_reason__in=OFF_PROTOCOL_EXCLUDED_REASONS)
        .filter(confirmed | had_event)
        .annotate(
            group=Coalesce(F("risk_group"), NullIf(F("proposed_group"), Value(""))),
            efs_event_on=_first_event(EVENTS),
            censor_event_on=_first_event(Q(kind__in=CENSOR_EVENT_KINDS)),
            off_protocol_on=off_protocol_on,
        )
        .order_by("pk")
        .values(
            "pk",
            "group",
            "relapse__relapse_date",
            "off_protocol_reason",
            "patient__team__time_zone",
            "efs_event_on",
            "censor_event_on",
            "off_protocol_on",
            "last_clinical_on",
        )
    )


def efs_observations(courses: QuerySet[TreatmentCourse], now: datetime) -> list[Observation]:
    observations = []
    todays: dict[str, date] = {}
    for row in efs_rows(courses):
        time_zone = row["patient__team__time_zone"]
        if time_zone not in todays:
            todays[time_zone] = _local_date(now, time_zone)
        relapse = row["relapse__relapse_date"]
        reason, off_on = row["off_protocol_reason"], row["off_protocol_on"]
        days, event = efs_observation(
            start=relapse,
            event_dates=[
                row["efs_event_on"],
                relapse if reason in OFF_PROTOCOL_TIME_ZERO_REASONS else None,
                off_on if reason in OFF_PROTOCOL_EVENT_REASONS else None,
            ],
            censor_dates=[
                row["censor_event_on"],
                off_on if reason in OFF_PROTOCOL_CENSOR_REASONS else None,
            ],
            seen_dates=[row["last_clinical_on"]],
            today=todays[time_zone],
        )
        observations.append(Observation(row["pk"], row["group"] or NOT_STRATIFIED, days, event))
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


METHOD = {
    "estimator": "Kaplan-Meier (lifelines KaplanMeierFitter)",
    "standard_error": "Greenwood",
    "confidence_interval": "95 %, Greenwood variance on the log(-log) scale",
    "time_origin": "the relapse date (BFM convention, recalled: see the clinical notes' "
    "outcome conventions)",
    "cohort": "first-relapse courses of the protocol with a confirmed risk group, and "
    "those never confirmed that had an event (in their proposed group, else 'not "
    "stratified'); courses entered in error and voided records are not counted",
    "events": [
        *EFS_EVENT_KINDS,
        "follow-up contact: dead or alive with disease",
        "refractory (no CR2; taken off protocol) at time zero",
        "treatment failure, alternative therapy (taken off protocol) on its date",
    ],
    "censoring": "withdrawal or lost to follow-up at its date; otherwise the last contact "
    "(the latest clinical date on the course's record, follow-up contacts included)",
    "days_per_year": DAYS_PER_YEAR,
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
    # an older version) follows, and courses with no group at all come last.
    extra = sorted(set(by_group) - set(names) - {NOT_STRATIFIED})
    order = [*names, *extra, *([NOT_STRATIFIED] if NOT_STRATIFIED in by_group else [])]
    names[NOT_STRATIFIED] = "Not stratified (no group proposed)"
    return {
        "protocol": protocol.slug,
        "team": team,
        "as_of": now.isoformat(),
        "method": METHOD,
        "groups": [group_outcome(g, names.get(g, g), by_group.get(g, [])) for g in order],
        "reference": REFERENCE_FIGURES.get(protocol.slug),
    }
