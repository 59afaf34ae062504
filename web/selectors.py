"""Reads for the web app's pages, scoped to the requester's teams.

The pages read through the same selectors as the API. Calls into modules that other
work moves (the worklist and outcomes into ``reports``, ``transition_options`` into
``courses.selectors``, ``team_today`` into ``Team.today``) are made only through the
names bound in the block marked "Calls into modules that move", so repointing them is a
change there alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from courses import selectors as course_selectors
from courses import services as course_services
from courses.models import (
    ACTIVE_STATES,
    Patient,
    PlannedStep,
    Relapse,
    State,
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from notifications.models import UNRESOLVED, Alert, AlertKind
from reports import outcomes as report_outcomes
from reports import plot as report_plot
from reports import timeline as report_timeline
from reports import worklist as report_worklist
from stratification.engine import ON_THERAPY_IMPLAUSIBLE_RULE, Decision, stratify
from stratification.facts import RelapseFacts
from stratification.models import StratificationDecision
from stratification.selectors import protocol_list
from teams.models import WRITE_ROLES, Membership, Team
from teams.selectors import on_team_date, team_roles

# --- Calls into modules that move (see the module docstring) -----------------------
# house-courses: transition_options -> courses.selectors, team_today -> Team.today(now);
# house-reports: dashboard, outcomes, outcomes_plot, course_timeline -> reports/.
DEFAULT_PROTOCOL = report_outcomes.DEFAULT_PROTOCOL
efs_report = report_outcomes.efs_report
render_outcomes = report_plot.render_outcomes
course_timeline = report_timeline.course_timeline
courses_for = course_selectors.courses_for
decision_outdated = course_selectors.decision_outdated
awaiting_confirmation = course_selectors.awaiting_confirmation
protocol_for = course_selectors.protocol_for
relapse_facts = course_services.relapse_facts
transition_options = course_selectors.transition_options
attention_groups = report_worklist.worklist
attention_rows = report_worklist.worklist_rows
# --------------------------------------------------------------------------------------

# The worklist's sections show this many rows each; a longer section says so and the
# filters narrow it (the CSV export has every row).
SECTION_LIMIT = 200
DUE_WITHIN_DAYS = 14


# --- teams ----------------------------------------------------------------------------


def memberships(user: AbstractBaseUser) -> list[Membership]:
    """The user's teams with their role, by team name: one query."""
    return list(Membership.objects.filter(user=user).select_related("team").order_by("team__name"))


def writable_teams(user: AbstractBaseUser) -> list[Team]:
    return [m.team for m in memberships(user) if m.role in WRITE_ROLES]


def can_write(user: AbstractBaseUser, team_id: int) -> bool:
    return team_roles(user).get(team_id) in WRITE_ROLES


def team_in_scope(user: AbstractBaseUser, team_id: int | None) -> list[int]:
    """The requester's team ids, or only ``team_id`` if it is theirs (404 otherwise:
    another team is "not found", like any of its objects)."""
    mine = list(team_roles(user))
    if team_id is None:
        return mine
    if team_id not in mine:
        raise Http404
    return [team_id]


def today_for(teams: Sequence[Team], now: datetime) -> date:
    """The date "today" on the calendar of the (first) team shown: overdue and due are judged on
    the team's date, as the alert rules do."""
    if teams:
        return teams[0].today(now)
    return now.astimezone(UTC).date()


# --- the worklist ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistFilters:
    team: int | None = None
    risk_group: str = ""
    kind: str = ""
    protocol: str = ""
    q: str = ""

    @property
    def narrowed(self) -> bool:
        return bool(self.risk_group or self.kind or self.protocol)

    def as_query(self) -> dict[str, str]:
        values = {
            "team": str(self.team) if self.team else "",
            "risk_group": self.risk_group,
            "kind": self.kind,
            "protocol": self.protocol,
            "q": self.q,
        }
        return {k: v for k, v in values.items() if v}


@dataclass
class Section:
    rows: list[Any]
    truncated: bool = False


@dataclass
class Worklist:
    today: date
    attention: Section
    due: Section
    review: Section
    unfinished: Section = field(default_factory=lambda: Section([]))

    @property
    def review_count(self) -> int:
        """The "needs review" badge: decisions awaiting a clinician and relapses whose
        course was never opened (both listed in that section)."""
        return len(self.review.rows) + len(self.unfinished.rows)


def _filter_courses(
    courses: QuerySet, filters: WorklistFilters, dates: Mapping[int, date], prefix: str = ""
):
    """The filters that narrow courses, on a queryset of courses (prefix "") or of rows
    that point at one (prefix "course__"). An alert snoozed past its own team's date
    does not count, as in the "needs attention" section."""
    q = Q()
    if filters.risk_group:
        q &= Q(**{f"{prefix}risk_group": filters.risk_group})
    if filters.protocol:
        q &= Q(**{f"{prefix}protocol_slug": filters.protocol})
    if filters.q:
        q &= Q(**{f"{prefix}patient__reference__icontains": filters.q})
    courses = courses.filter(q)
    if filters.kind:
        open_alert = Alert.objects.filter(
            course=OuterRef(f"{prefix}pk" if prefix else "pk"),
            kind=filters.kind,
            state__in=UNRESOLVED,
        ).exclude(snoozed_until__gt=on_team_date(dates, "course__patient__team_id"))
        courses = courses.filter(Exists(open_alert))
    return courses


def _limited(rows: QuerySet | list, limit: int | None) -> Section:
    if limit is None:
        return Section(list(rows))
    rows = list(rows[: limit + 1])
    return Section(rows[:limit], truncated=len(rows) > limit)


def worklist(
    team_ids: list[int],
    filters: WorklistFilters,
    today: date,
    *,
    limit: int | None = SECTION_LIMIT,
    dates: Mapping[int, date] | None = None,
) -> Worklist:
    """The morning view in a fixed number of queries (five), whatever the number of
    courses: needs attention (open alerts, most urgent first, from the attention rows
    the sweep keeps), due now and in the next 14 days (every open step, alerted or not;
    overdue ones first), needs review (stratifications awaiting a clinician) and
    relapses whose course was never opened. ``limit`` rows per section (None: all,
    for the CSV export). ``dates``: each team's own date, which decides when its
    snoozes end and how many days its courses are overdue, as in the API (default:
    ``today`` for every team)."""
    # The page shows one "today" (the first team's calendar, see today_for).
    dates = dict(dates) if dates is not None else dict.fromkeys(team_ids, today)
    groups = attention_groups(
        dates, kind=filters.kind or None, risk_group=filters.risk_group or None
    )
    if filters.protocol:
        groups = groups.filter(course__protocol_slug=filters.protocol)
    if filters.q:
        groups = groups.filter(course__patient__reference__icontains=filters.q)
    chosen = _limited(groups, limit)
    attention = Section(attention_rows(chosen.rows, dates), truncated=chosen.truncated)

    steps = PlannedStep.objects.filter(
        status=StepStatus.PLANNED,
        due_on__lte=today + timedelta(days=DUE_WITHIN_DAYS),
        course__state__in=ACTIVE_STATES,
        course__patient__team_id__in=team_ids,
    )
    steps = _filter_courses(steps, filters, dates, prefix="course__")
    due = _limited(
        steps.select_related("course__patient__team").order_by("due_on", "course_id", "sequence"),
        limit,
    )

    pending = TreatmentCourse.objects.filter(
        patient__team_id__in=team_ids, state=State.REGISTERED, decision_confirmed=False
    )
    pending = _filter_courses(pending, filters, dates)
    review = _limited(
        pending.select_related("patient__team", "decision").order_by("created_at", "pk"), limit
    )

    unfinished = Section([])
    if not filters.narrowed:
        relapses = Relapse.objects.filter(
            patient__team_id__in=team_ids, course__isnull=True
        ).select_related("patient__team")
        if filters.q:
            relapses = relapses.filter(patient__reference__icontains=filters.q)
        unfinished = _limited(relapses.order_by("created_at", "pk"), limit)
    return Worklist(today=today, attention=attention, due=due, review=review, unfinished=unfinished)


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """Protocols, their risk groups and the alert kinds, for the filter form (no
    query: the protocols are loaded data)."""
    protocols = protocol_list()
    groups: dict[str, str] = {}
    for protocol in protocols:
        for group in protocol.groups:
            groups.setdefault(group.id, group.id)
    return {
        "protocol": [(p.slug, p.title) for p in protocols],
        "risk_group": sorted(groups.items()),
        "kind": list(AlertKind.choices),
    }


# --- one course ----------------------------------------------------------------------------


def course_or_404(user: AbstractBaseUser, pk: int) -> TreatmentCourse:
    """The course if it belongs to one of the requester's teams; 404 otherwise."""
    try:
        return courses_for(user).select_related(
            "patient__team", "relapse", "decision", "hsct_confirmed_by"
        ).get(pk=pk)
    except TreatmentCourse.DoesNotExist as exc:
        raise Http404 from exc


def course_steps(course: TreatmentCourse) -> list[PlannedStep]:
    return list(course.steps.order_by("sequence"))


def course_alerts(course: TreatmentCourse) -> list[Alert]:
    """Unresolved first (most severe, then oldest), then the resolved ones."""
    alerts = list(course.alerts.select_related("acknowledged_by", "resolved_by"))
    rank = {"high": 0, "medium": 1, "low": 2}

    def order(alert: Alert) -> tuple[Any, ...]:
        resolved = alert.state not in UNRESOLVED
        return (resolved, rank.get(alert.severity, 3), alert.condition_since, alert.pk)

    return sorted(alerts, key=order)


def course_records(course: TreatmentCourse) -> dict[str, list[dict[str, Any]]]:
    """The clinical records and transitions of the course, read through the API's
    timeline selector, grouped by type in date order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in course_timeline(course)["entries"]:
        if entry["type"] in ("step", "alert"):
            continue
        grouped.setdefault(entry["type"], []).append(entry)
    return grouped


def record_vocabulary(steps: Sequence[PlannedStep]) -> dict[str, list[str]]:
    """Block types the course's schedule names (suggestions for the block form; the
    protocol file owns the list). MRD time points are a closed list: see
    mrd_time_point_choices."""
    return {"block_types": sorted({s.block_type for s in steps if s.block_type})}


def mrd_time_point_choices(
    course: TreatmentCourse, steps: list[PlannedStep]
) -> list[tuple[str, str]]:
    """The course's protocol's MRD time points (a closed list), those the schedule
    (``steps``, the page's course_steps) plans first."""
    planned = {s.mrd_time_point for s in steps if s.kind == StepKind.MRD}
    points = protocol_for(course.protocol_slug).mrd_time_points
    ordered = [p for p in points if p in planned] + [p for p in points if p not in planned]
    return [(p.value, f"{p.label} (planned)" if p in planned else p.label) for p in ordered]


def protocol_groups(slug: str) -> list[tuple[str, str]]:
    try:
        protocol = protocol_for(slug)
    except KeyError:
        return []
    return [(g.id, f"{g.id}: {g.name}") for g in protocol.groups]


# --- calendar ------------------------------------------------------------------------------


def open_steps(
    team_ids: list[int], *, due_from: date | None = None, due_to: date | None = None
) -> list[PlannedStep]:
    """Open steps of active courses due in [due_from, due_to] (either end open), by
    date: one query."""
    steps = PlannedStep.objects.filter(
        status=StepStatus.PLANNED,
        course__state__in=ACTIVE_STATES,
        course__patient__team_id__in=team_ids,
    )
    if due_from is not None:
        steps = steps.filter(due_on__gte=due_from)
    if due_to is not None:
        steps = steps.filter(due_on__lte=due_to)
    return list(
        steps.select_related("course__patient__team").order_by(
            "due_on", "course__patient__reference", "sequence"
        )
    )


# --- outcomes ----------------------------------------------------------------------------


def outcomes(user: AbstractBaseUser, *, team: int | None, protocol: str, now: datetime) -> dict:
    """The API's EFS report for the requester's courses (or one of their teams)."""
    courses = courses_for(user)
    if team is not None:
        courses = courses.filter(patient__team_id=team)
    return efs_report(courses, protocol_slug=protocol, team=team, now=now)


# --- registration --------------------------------------------------------------------------


def patient_or_404(user: AbstractBaseUser, pk: int) -> Patient:
    try:
        return Patient.objects.select_related("team").get(pk=pk, team_id__in=team_roles(user))
    except Patient.DoesNotExist as exc:
        raise Http404 from exc


def relapses_recorded(patient: Patient) -> int:
    """How many relapses of ``patient`` are recorded here: the relapse form says whether
    the number can follow them or must be given."""
    return patient.relapses.count()


def relapse_or_404(user: AbstractBaseUser, pk: int) -> Relapse:
    try:
        return Relapse.objects.select_related("patient__team", "course").get(
            pk=pk, patient__team_id__in=team_roles(user)
        )
    except Relapse.DoesNotExist as exc:
        raise Http404 from exc


def stratification_preview(relapse: Relapse, protocol_slug: str) -> Decision | None:
    """What the engine would propose for this relapse under ``protocol_slug`` — the
    same facts the course service gives it, nothing stored (like the API's dry run)."""
    try:
        protocol = protocol_for(protocol_slug)
    except KeyError:
        return None
    facts = RelapseFacts.from_mapping(relapse_facts(relapse.patient, relapse))
    return stratify(facts, protocol)


# The cut-off dates a decision's time point turns on, in the words a clinician reads.
CUT_OFF_WORDS = {
    "very_early_before": "Very early if the relapse is before",
    "late_from": "Late if the relapse is on or after",
    "late_if_frontline_ended_on_or_before": "Late if front-line therapy ended on or before",
    "on_therapy_implausible_after": "\u201cOn front-line therapy\u201d is implausible for a "
    "relapse after",
}


def decision_summary(decision: Decision | StratificationDecision) -> dict[str, Any]:
    """A decision as the pages show it, whether the engine's proposal (the registration
    preview) or a stored one: status, group, time point with its cut-off dates, HSCT,
    warnings and reasons (each with rule, text, source and confidence)."""
    if isinstance(decision, StratificationDecision):
        group, reasons, warnings = (
            decision.proposed_group,
            decision.reason_list,
            decision.warning_list,
        )
        cut_offs = decision.cut_offs
        protocol, version = decision.protocol_slug, decision.protocol_version
    else:
        data = decision.as_dict()
        group, reasons, warnings = data["risk_group"], data["reasons"], data["warnings"]
        cut_offs = data["cut_offs"]
        protocol, version = data["protocol"], data["protocol_version"]
    return {
        "status": decision.status,
        "group": group,
        "time_point": decision.time_point,
        "site": decision.site,
        "hsct_indicated": decision.hsct_indicated,
        "reasons": reasons,
        "warnings": warnings,
        "cut_offs": [
            (CUT_OFF_WORDS[key], date.fromisoformat(value))
            for key, value in (cut_offs or {}).items()
            if value and key in CUT_OFF_WORDS
        ],
        "protocol": protocol,
        "version": version,
    }


def asks_implausible_confirmation(decision: Decision) -> bool:
    """Whether the proposal refuses a fact as implausible until a clinician confirms it
    (front-line therapy still running long after diagnosis)."""
    return any(r.rule == ON_THERAPY_IMPLAUSIBLE_RULE for r in decision.reasons)


def decision_history(course: TreatmentCourse) -> list[StratificationDecision]:
    """Every decision the course had, oldest first: one query."""
    return [
        link.decision
        for link in course.decision_links.select_related("decision__confirmed_by").order_by(
            "at", "id"
        )
    ]


def protocol_choices() -> list[tuple[str, str]]:
    return [(p.slug, f"{p.title} (version {p.version})") for p in protocol_list()]


def transition_names() -> list[str]:
    """Every transition a person may request (the API's list), in name order."""
    field = TreatmentCourse._meta.get_field("state")
    transitions = field.get_all_transitions(TreatmentCourse)
    return sorted({t.name for t in transitions if t.custom.get("api", True)})
