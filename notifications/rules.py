"""The alert rules: each one set-based query over the database.

Every rule answers, for all active courses at once (or for one course after a save),
which conditions hold *today* — today being each team's own calendar date — with the
date each condition began. Thresholds come from the course's pinned protocol
definition (``alert_thresholds``), falling back to settings.REZCOURSE_ALERT_DEFAULTS;
they are local defaults a centre confirms (see docs/alerts.md).

Boundaries: a rule whose threshold is N days fires on day N (the day the condition's
"due" date is reached), not the day after; the day before, it is silent.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import (
    Case,
    DateField,
    Exists,
    F,
    Field,
    FloatField,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate

from config.db import AddDays
from courses.models import (
    ACTIVE_STATES,
    CourseTransition,
    DonorSearch,
    MrdResult,
    PlannedStep,
    ResponseAssessment,
    State,
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from courses.selectors import valid_referral
from courses.transitions import counted_as_pre_hsct
from notifications.models import AlertKind, Severity
from stratification.selectors import protocol_registry
from teams.selectors import on_team_date

# The qualitative MRD result that counts as positive before HSCT: measurable disease
# below the assay's quantitative range is still disease (clinical notes, Bader 2019).
POSITIVE_NOT_QUANTIFIABLE = "positive_not_quantifiable"

# Steps watched by step_overdue; the HSCT referral and the transplant have rules of
# their own with clinical thresholds.
WATCHED_STEP_KINDS = (
    StepKind.BLOCK,
    StepKind.RESPONSE_ASSESSMENT,
    StepKind.MRD,
    StepKind.IRRADIATION,
    StepKind.MAINTENANCE_START,
)
# A registered course has no schedule yet: only the stalled rule watches it.
SCHEDULED_STATES = tuple(s for s in ACTIVE_STATES if s != State.REGISTERED)
# Response is judged no earlier than the end of induction (Buchmann et al., Blood 2022,
# Ponte-di-Legno consensus): a marrow during induction that is not yet CR is not
# non-response.
AFTER_INDUCTION_STATES = tuple(
    s for s in ACTIVE_STATES if s not in (State.REGISTERED, State.STRATIFIED, State.INDUCTION)
)


class Due(NamedTuple):
    """A condition that holds today. The message is only written when an alert is
    opened or its condition moved: a steady sweep over 100k courses must not format
    tens of thousands of sentences it will throw away. (A named tuple: as immutable
    as a frozen dataclass, and a quarter of its cost to build, tens of thousands a
    sweep.)"""

    course_id: int
    kind: str
    subject: str
    since: date
    describe: Callable[[], str]

    @property
    def message(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Context:
    # {team id: the team's calendar date}
    dates: dict[int, date]
    # {protocol slug: {threshold name: days}}
    thresholds: dict[str, dict[str, int]]
    course_ids: Sequence[int] | None = None
    # {team id: its IANA time zone}: for a moment (a datetime) read as a team's date.
    zones: dict[int, str] = field(default_factory=dict)

    def today(self, team_path: str) -> Case | Value:
        """Each row's team's calendar date, as one SQL expression by team id (a
        constant when every team has the same date: the usual case)."""
        return on_team_date(self.dates, f"{team_path}_id")

    def team_date(self, path: str, team_path: str) -> Case | TruncDate:
        """The calendar date, in each row's team's time zone, of the moment at ``path``
        (e.g. when a decision was made), as one SQL expression: one branch per distinct
        time zone (a single conversion when the teams share one, the usual case)."""
        teams_by_zone: dict[str, list[int]] = defaultdict(list)
        for team_id, zone in self.zones.items():
            teams_by_zone[zone].append(team_id)
        if len(teams_by_zone) <= 1:
            zone = next(iter(teams_by_zone), settings.TIME_ZONE)
            return TruncDate(path, tzinfo=zoneinfo.ZoneInfo(zone))
        return Case(
            *(
                When(
                    **{f"{team_path}_id__in": sorted(ids)},
                    then=TruncDate(path, tzinfo=zoneinfo.ZoneInfo(zone)),
                )
                for zone, ids in sorted(teams_by_zone.items())
            ),
            default=TruncDate(path),
            output_field=DateField(),
        )

    @property
    def latest_today(self) -> date:
        """The latest of the teams' dates: a bound no team's "today" passes."""
        return max(self.dates.values(), default=date.min)

    def days(self, name: str, protocol_path: str) -> Case | Value:
        """Each row's protocol's threshold, as one SQL expression (a constant when
        every protocol and the settings default agree)."""
        return self._per_protocol(name, protocol_path, IntegerField())

    def fraction(self, name: str, protocol_path: str) -> Case | Value:
        """As :meth:`days`, for a threshold that is a fraction of cells (MRD)."""
        return self._per_protocol(name, protocol_path, FloatField())

    def _per_protocol(self, name: str, protocol_path: str, field: Field) -> Case | Value:
        default = settings.REZCOURSE_ALERT_DEFAULTS[name]
        values = {slug: t.get(name, default) for slug, t in self.thresholds.items()}
        if set(values.values()) <= {default}:
            return Value(default, output_field=field)
        return Case(
            *(When(**{protocol_path: slug}, then=Value(v)) for slug, v in values.items()),
            default=Value(default),
            output_field=field,
        )

    def days_for(self, slug: str, name: str) -> int:
        return self.thresholds.get(slug, {}).get(name, settings.REZCOURSE_ALERT_DEFAULTS[name])

    def scope(self, queryset: QuerySet, course_path: str = "pk") -> QuerySet:
        # Unordered: the sweep keys what it reads, and a sort of every row is waste.
        queryset = queryset.order_by()
        if self.course_ids is None:
            return queryset
        return queryset.filter(**{f"{course_path}__in": self.course_ids})


def _non_responders() -> QuerySet:
    """The ids of the courses past induction whose latest valid response assessment
    (by clinical date) is not CR: non-response, or CR2 lost on a later marrow (during
    induction a marrow not yet in CR is not non-response), and no transplant (in
    non-CR, with a reason) on or after that assessment. One subquery the rules exclude
    with: the non_response rule speaks for these courses, and the
    referral, overdue-step and stalled rules would only add noise (a non-responder
    is not on the road to a transplant in CR2)."""
    latest = (
        ResponseAssessment.objects.filter(course=OuterRef("course"))
        .order_by("-assessed_on", "-id")
        .values("pk")[:1]
    )
    # A transplant in non-CR (refractory disease, with a reason) on or after the
    # assessment is the decision non_response asks for: the transplanted course keeps
    # its HSCT-path rules, and only a later non-CR assessment makes it a non-responder.
    transplanted_after = CourseTransition.objects.filter(
        course=OuterRef("course"), name="transplant", on__gte=OuterRef("assessed_on")
    )
    return (
        ResponseAssessment.objects.order_by()
        .filter(cr2=False, pk=Subquery(latest), course__state__in=AFTER_INDUCTION_STATES)
        .exclude(Exists(transplanted_after))
        .values("course_id")
    )


def _hsct_indicated_or_proposed(path: str = "") -> Q:
    """HSCT confirmed, or proposed (e.g. S2 MRD >= 10^-3) and not yet decided: a
    proposal waiting for its confirmation must not wait for the referral too."""
    return Q(**{f"{path}hsct_indicated": True}) | Q(
        **{f"{path}hsct_indicated__isnull": True, f"{path}hsct_proposed": True}
    )


def _deciding_mrd_steps(path: str = "course__") -> Q:
    """The MRD steps that decide a course's HSCT indication, from the protocol files
    (ALL-REZ BFM 2002 S2: end of induction, Eckert 2013), while it is undecided."""
    deciding = Q(pk__in=[])
    for protocol in protocol_registry():
        for group, rule in protocol.hsct_indication.items():
            if rule.indicated == "mrd_threshold":
                deciding |= Q(
                    **{
                        f"{path}protocol_slug": protocol.slug,
                        f"{path}risk_group": group,
                        "mrd_time_point": rule.mrd_time_point,
                    }
                )
    return Q(kind=StepKind.MRD, **{f"{path}hsct_indicated__isnull": True}) & deciding


def _latest_due(ctx: Context, name: str) -> date:
    """The latest date a thing may fall due on and be N days late today for some team
    and protocol (N the threshold ``name``): a bound implied by the rule's own
    condition, for an index to range-scan."""
    latest = ctx.latest_today
    shortest = min(
        [settings.REZCOURSE_ALERT_DEFAULTS[name]]
        + [ctx.days_for(slug, name) for slug in ctx.thresholds]
    )
    if latest == date.min:
        return latest
    return latest - timedelta(days=shortest)


def hsct_referral_missing(ctx: Context) -> list[Due]:
    """HSCT indicated (confirmed, or proposed and not yet decided), therapy started N
    days ago (default 14; the course's clinical start date), no referral; or the
    schedule's HSCT referral / donor search step (e.g. S2's HLA typing while MRD is
    awaited) past its due date plus grace, no referral, HSCT not declined. Not for a
    course whose latest assessment is non-response."""
    base = (
        ctx.scope(
            TreatmentCourse.objects.annotate(referral=valid_referral()).filter(
                state__in=SCHEDULED_STATES, referral__isnull=True
            )
        )
        .exclude(pk__in=_non_responders())
        .annotate(today=ctx.today("patient__team"))
    )
    by_start = (
        base.filter(_hsct_indicated_or_proposed(), start_date__isnull=False)
        .annotate(
            due=AddDays(F("start_date"), ctx.days("hsct_referral_missing_days", "protocol_slug"))
        )
        .filter(due__lte=F("today"))
        .values_list("pk", "due", "start_date", "risk_group", "protocol_slug", "hsct_indicated")
    )
    by_step = (
        ctx.scope(
            PlannedStep.objects.annotate(referral=valid_referral("course__hsct_referrals")).filter(
                kind=StepKind.HSCT_REFERRAL,
                status=StepStatus.PLANNED,
                referral__isnull=True,
                course__state__in=SCHEDULED_STATES,
            ),
            "course_id",
        )
        .exclude(course__hsct_indicated=False)
        .exclude(course_id__in=_non_responders())
        .annotate(
            today=ctx.today("course__patient__team"),
            due=AddDays(F("due_on"), F("grace_days") + 1),
        )
        .filter(due__lte=F("today"))
        .values_list("course_id", "due", "label", "due_on")
    )

    def text(due: date, start: date, group: str, slug: str, indicated: bool | None) -> str:
        what = "indicated" if indicated else "proposed (not yet confirmed)"
        return (
            f"HSCT is {what} (group {group}) but no HSCT referral is recorded "
            f"{ctx.days_for(slug, 'hsct_referral_missing_days')} days after the start of "
            f"therapy ({start}); referral due since {due}."
        )

    def step_text(due: date, label: str, step_due: date) -> str:
        return f"{label} was due {step_due} and no HSCT referral is recorded; overdue since {due}."

    found: dict[int, Due] = {}
    for pk, due, label, step_due in by_step:
        found[pk] = Due(
            pk,
            AlertKind.HSCT_REFERRAL_MISSING,
            "course",
            due,
            partial(step_text, due, label, step_due),
        )
    # The earlier of the two dates is when the referral became missing.
    for pk, due, start, group, slug, indicated in by_start:
        if pk not in found or due <= found[pk].since:
            found[pk] = Due(
                pk,
                AlertKind.HSCT_REFERRAL_MISSING,
                "course",
                due,
                partial(text, due, start, group, slug, indicated),
            )
    return list(found.values())


def hsct_delayed(ctx: Context) -> list[Due]:
    """HSCT indicated (or proposed, not yet decided), CR2 first recorded N days ago
    (default 90), no transplant. Not for a course whose latest assessment is
    non-response."""
    # Grouped from the assessments' side (one row per course with a CR2), not a
    # correlated subquery per course: the planner hashes it in one pass.
    rows = (
        ctx.scope(
            ResponseAssessment.objects.annotate(referral=valid_referral("course__hsct_referrals"))
            .filter(cr2=True, course__state__in=SCHEDULED_STATES)
            .filter(_hsct_indicated_or_proposed("course__"))
            .filter(Q(referral__isnull=True) | Q(referral__performed_on__isnull=True))
            .exclude(course_id__in=_non_responders()),
            "course_id",
        )
        .values("course_id", "course__protocol_slug")
        .annotate(first_cr2=Min("assessed_on"))
        .annotate(
            today=ctx.today("course__patient__team"),
            due=AddDays(F("first_cr2"), ctx.days("hsct_delayed_days", "course__protocol_slug")),
        )
        .filter(due__lte=F("today"))
        .values_list("course_id", "due", "first_cr2", "course__protocol_slug")
    )

    def text(due: date, cr2: date, slug: str) -> str:
        return (
            f"HSCT is indicated and CR2 was recorded on {cr2}, but no transplant is recorded "
            f"{ctx.days_for(slug, 'hsct_delayed_days')} days later; overdue since {due}."
        )

    return [
        Due(pk, AlertKind.HSCT_DELAYED, "course", due, partial(text, due, cr2, slug))
        for pk, due, cr2, slug in rows
    ]


def mrd_missing_before_hsct(ctx: Context) -> list[Due]:
    """A transplant planned within N days (default 21) or performed, with no valid MRD
    result, whatever its time-point label, sampled in the M days before it (default
    30)."""
    hsct_day = Coalesce("referral__performed_on", "referral__planned_on")
    within = ctx.days("mrd_transplant_planned_within_days", "protocol_slug")
    window = ctx.days("mrd_before_hsct_window_days", "protocol_slug")
    mrd_in_window = MrdResult.objects.filter(
        course=OuterRef("pk"),
        sampled_on__lte=OuterRef("hsct_day"),
        sampled_on__gte=OuterRef("window_start"),
    )
    rows = (
        ctx.scope(
            TreatmentCourse.objects.annotate(referral=valid_referral()).filter(
                state__in=SCHEDULED_STATES
            )
        )
        .filter(Q(referral__performed_on__isnull=False) | Q(referral__planned_on__isnull=False))
        .annotate(
            hsct_day=hsct_day,
            today=ctx.today("patient__team"),
            alert_from=AddDays(hsct_day, -within),
            window_start=AddDays(hsct_day, -window),
        )
        .filter(Q(referral__performed_on__isnull=False) | Q(alert_from__lte=F("today")))
        .filter(~Exists(mrd_in_window))
        .values_list("pk", "hsct_day", "alert_from", "referral__performed_on", "protocol_slug")
    )

    def text(day: date, performed: date | None, slug: str) -> str:
        window_days = ctx.days_for(slug, "mrd_before_hsct_window_days")
        what = f"HSCT performed on {day}" if performed else f"HSCT planned for {day}"
        return f"{what}, with no MRD result in the {window_days} days before it."

    return [
        Due(
            pk,
            AlertKind.MRD_MISSING_BEFORE_HSCT,
            "course",
            min(alert_from, day),
            partial(text, day, performed, slug),
        )
        for pk, day, alert_from, performed, slug in rows
    ]


def step_overdue(ctx: Context) -> list[Due]:
    """A planned step past its due date plus grace, neither done nor skipped (not the
    MRD that decides an undecided HSCT indication, which mrd_decision_missing watches;
    not on a course whose latest assessment is non-response)."""
    rows = (
        ctx.scope(
            PlannedStep.objects.filter(
                status=StepStatus.PLANNED,
                kind__in=WATCHED_STEP_KINDS,
                course__state__in=SCHEDULED_STATES,
            ),
            "course_id",
        )
        # mrd_decision_missing watches the deciding MRD (high: it gates the transplant
        # decision), and non_response speaks for a non-responder's course.
        .exclude(_deciding_mrd_steps())
        .exclude(course_id__in=_non_responders())
        .annotate(
            today=ctx.today("course__patient__team"),
            overdue_from=AddDays(F("due_on"), F("grace_days") + 1),
        )
        .filter(overdue_from__lte=F("today"))
        # Implied by the line above (grace is never negative), and in the form the
        # partial index of open steps by due date (step_planned_due) range-scans.
        .filter(due_on__lt=ctx.latest_today)
        .values_list(
            "pk",
            "course_id",
            "label",
            "planned_on",
            "due_on",
            "rescheduled_on",
            "grace_days",
            "overdue_from",
        )
    )

    def text(
        label: str, planned: date, due: date, rescheduled: date | None, grace: int, since: date
    ) -> str:
        return (
            f"{label} was due {due}{_plan_words(planned, due, rescheduled)} (grace {grace} "
            f"days) and is not recorded; overdue since {since}."
        )

    return [
        Due(
            course_id,
            AlertKind.STEP_OVERDUE,
            f"step:{pk}",
            overdue_from,
            partial(text, label, planned, due, rescheduled, grace, overdue_from),
        )
        for pk, course_id, label, planned, due, rescheduled, grace, overdue_from in rows
    ]


def _plan_words(planned: date, due: date, rescheduled: date | None) -> str:
    """Why the due date is not the protocol's plan, when it is not: a date shown next
    to another always says which is which and why they differ."""
    if due == planned:
        return ""
    if rescheduled is not None:
        return f" (rescheduled by the team; the protocol plan from the start was {planned})"
    days = abs((due - planned).days)
    side = "after" if due > planned else "before"
    return (
        f" ({days} day{'' if days == 1 else 's'} {side} the protocol plan from the start, "
        f"{planned}, following the actual or rescheduled dates of earlier steps)"
    )


def course_stalled(ctx: Context) -> list[Due]:
    """An active course whose record says nothing for N days (default 45; during
    maintenance and after the transplant the phase's own contact interval, defaults 90
    and 100): counted from its latest clinical date (the start, any valid record's
    date, a step done, a transition's date) — what is known of the patient, whenever
    it was typed in; a course with no clinical date yet and no stratification decision
    (loaded without the services) counts from the day it was last written on. Not for
    a course whose latest assessment is non-response, nor for a registered course with
    a decision awaiting confirmation (hsct_proposal_unconfirmed and
    stratification_unconfirmed speak for it)."""
    # Clinical dates, not typing dates: a course back-entered today whose last record
    # is 60 days old has a 60-day gap in what the team knows, however fresh the typing.
    # Maintenance is outpatient therapy and the post-transplant phase follows up to day
    # +100: neither expects a record every 45 days.
    interval = Case(
        When(
            state=State.MAINTENANCE,
            then=ctx.days("course_stalled_maintenance_days", "protocol_slug"),
        ),
        When(
            state=State.TRANSPLANTED,
            then=ctx.days("course_stalled_post_transplant_days", "protocol_slug"),
        ),
        default=ctx.days("course_stalled_days", "protocol_slug"),
        output_field=IntegerField(),
    )
    rows = (
        ctx.scope(TreatmentCourse.objects.filter(state__in=ACTIVE_STATES))
        .exclude(pk__in=_non_responders())
        # Nothing is recorded on a registered course before its confirmation: "stalled"
        # would only repeat, later and lower, what the unconfirmed rules already say.
        .exclude(state=State.REGISTERED, decision__isnull=False)
        .annotate(
            last=Coalesce("last_clinical_on", TruncDate("last_activity_at")),
            today=ctx.today("patient__team"),
        )
        .annotate(due=AddDays(F("last"), interval))
        .filter(due__lte=F("today"))
        .values_list("pk", "last", "due", "state")
    )

    def text(last: date, due: date, state: str) -> str:
        phase = {State.MAINTENANCE: " (maintenance)", State.TRANSPLANTED: " (after HSCT)"}
        return (
            f"Nothing has been recorded on this course{phase.get(state, '')} since {last}; "
            f"stalled since {due}."
        )

    return [
        Due(pk, AlertKind.COURSE_STALLED, "course", due, partial(text, last, due, state))
        for pk, last, due, state in rows
    ]


def stratification_stale(ctx: Context) -> list[Due]:
    """An active course that follows a confirmed group whose decision is in doubt: a
    fact the decision read was changed since (patient or relapse), or a
    re-stratification awaits a clinician's confirmation. Holds from the day it became
    so until the group is confirmed again."""
    rows = (
        ctx.scope(
            TreatmentCourse.objects.filter(
                state__in=ACTIVE_STATES,
                risk_group__isnull=False,
                decision_stale_since__isnull=False,
            )
        )
        .annotate(today=ctx.today("patient__team"))
        .filter(decision_stale_since__lte=F("today"))
        .values_list(
            "pk",
            "decision_stale_since",
            "decision_stale_fields",
            "risk_group",
            "decision__confirmed_at",
            "decision__proposed_group",
        )
    )

    def text(since: date, fields: list[str], group: str, proposed: str | None) -> str:
        if fields:
            return (
                f"The stratification the course follows (group {group}) read facts that have "
                f"changed since {since}: {', '.join(fields)}. Re-stratify and confirm the "
                "group again."
            )
        proposal = f"group {proposed}" if proposed else "no group (needs review)"
        return (
            f"The course was re-stratified ({proposal} proposed) and still follows group "
            f"{group}: a clinician confirms the new proposal (in doubt since {since})."
        )

    # Two conditions, each its own alert: "re-stratify" clears once a new decision is
    # made, and "confirm" opens then (an alert's text is written when it opens).
    return [
        Due(
            pk,
            AlertKind.STRATIFICATION_STALE,
            "decision:stale" if fields else "decision:unconfirmed",
            since,
            partial(text, since, list(fields or []), group, proposed),
        )
        for pk, since, fields, group, confirmed_at, proposed in rows
        if fields or confirmed_at is None
    ]


def hsct_decision_pending(ctx: Context) -> list[Due]:
    """An HSCT proposal from the protocol (e.g. ALL-REZ BFM 2002 S2: MRD at the end
    of induction >= 10^-3 proposes HSCT, below it proposes none) that no clinician has
    confirmed or declined N days (default 7) after the deciding sample (a proposal
    from before its date was kept: N days after the course was last written on)."""
    rows = (
        ctx.scope(
            TreatmentCourse.objects.filter(
                state__in=SCHEDULED_STATES,
                hsct_indicated__isnull=True,
                hsct_proposed__isnull=False,
            )
        )
        .annotate(
            since=Coalesce("hsct_proposed_on", TruncDate("last_activity_at")),
            today=ctx.today("patient__team"),
        )
        .annotate(due=AddDays(F("since"), ctx.days("hsct_decision_pending_days", "protocol_slug")))
        .filter(due__lte=F("today"))
        .values_list("pk", "due", "since", "hsct_proposed", "risk_group")
    )

    def text(due: date, since: date, proposed: bool, group: str) -> str:
        what = "HSCT" if proposed else "no HSCT"
        return (
            f"The protocol proposes {what} for this course (group {group}, deciding sample "
            f"of {since}), and no clinician has confirmed or declined it; undecided since "
            f"{due}. Confirm the HSCT indication."
        )

    return [
        Due(pk, AlertKind.HSCT_DECISION_PENDING, "course", due, partial(text, due, s, p, g))
        for pk, due, s, p, g in rows
    ]


def _proposes_hsct() -> Q:
    """The current decision proposes HSCT: the engine stores its group's indication on
    it (a fixed one, ALL-REZ BFM 90 A and PPG, BFM 2002 S3 and S4; or one MRD already
    decided)."""
    return Q(decision__hsct_indicated=True)


def _unconfirmed(ctx: Context, threshold: str, proposes_hsct: bool) -> Iterable[tuple]:
    """The registered courses whose current decision awaits a clinician's confirmation
    (proposing HSCT, or not) ``threshold`` days after it was made, counted on the
    team's calendar from the decision's creation: (course, due, made on, group,
    protocol); no group means needs review."""
    proposing = _proposes_hsct()
    return (
        ctx.scope(
            TreatmentCourse.objects.filter(
                state=State.REGISTERED,
                decision__isnull=False,
                decision__confirmed_at__isnull=True,
            ).filter(proposing if proposes_hsct else ~proposing)
        )
        .annotate(
            made_on=ctx.team_date("decision__created_at", "patient__team"),
            today=ctx.today("patient__team"),
        )
        .annotate(due=AddDays(F("made_on"), ctx.days(threshold, "protocol_slug")))
        .filter(due__lte=F("today"))
        .values_list(
            "pk",
            "due",
            "made_on",
            "decision__proposed_group",
            "protocol_slug",
        )
    )


def hsct_proposal_unconfirmed(ctx: Context) -> list[Due]:
    """A registered course whose stratification proposes HSCT (the decision's HSCT
    indication, or its group's fixed one: ALL-REZ BFM 90 A and PPG, ALL-REZ BFM 2002 S3
    and S4) and which no clinician has confirmed N days (default 3) after the decision
    was made (its creation, on the team's calendar)."""

    def text(due: date, made: date, group: str, slug: str) -> str:
        days = ctx.days_for(slug, "hsct_proposal_unconfirmed_days")
        return (
            f"The stratification of {made} proposes group {group} with HSCT indicated, and "
            f"no clinician has confirmed it {days} days later (unconfirmed since {due}). "
            "Confirm the stratification: the HSCT referral and the schedule follow from it."
        )

    return [
        Due(pk, AlertKind.HSCT_PROPOSAL_UNCONFIRMED, "course", due, partial(text, due, m, g, s))
        for pk, due, m, g, s in _unconfirmed(ctx, "hsct_proposal_unconfirmed_days", True)
    ]


def stratification_unconfirmed(ctx: Context) -> list[Due]:
    """A registered course whose stratification proposes no HSCT (a group without it, a
    group whose indication waits for MRD, or needs review with no group) and which no
    clinician has confirmed N days (default 7) after the decision was made (its
    creation, on the team's calendar)."""

    def text(due: date, made: date, group: str | None, slug: str) -> str:
        days = ctx.days_for(slug, "stratification_unconfirmed_days")
        proposal = (
            f"proposes group {group}"
            if group
            else "proposes no group (needs review: a clinician assigns one with a reason)"
        )
        return (
            f"The stratification of {made} {proposal}, and no clinician has confirmed it "
            f"{days} days later (unconfirmed since {due}). Confirm the stratification."
        )

    return [
        Due(pk, AlertKind.STRATIFICATION_UNCONFIRMED, "course", due, partial(text, due, m, g, s))
        for pk, due, m, g, s in _unconfirmed(ctx, "stratification_unconfirmed_days", False)
    ]


def hsct_decision_review(ctx: Context) -> list[Due]:
    """An active course whose confirmed HSCT decision is in doubt: its deciding MRD
    amended or voided, a later deciding sample pointing the other way, or the group
    changed (courses.services.hsct sets hsct_review_since, a team date, with the
    reason). Holds from that date until a clinician re-confirms or changes the HSCT
    decision, with a reason."""
    rows = (
        ctx.scope(
            TreatmentCourse.objects.filter(state__in=ACTIVE_STATES, hsct_review_since__isnull=False)
        )
        .annotate(today=ctx.today("patient__team"))
        .filter(hsct_review_since__lte=F("today"))
        .values_list("pk", "hsct_review_since", "hsct_review_reason", "hsct_indicated")
    )

    def text(since: date, reason: str, indicated: bool | None) -> str:
        decision = {True: "HSCT indicated", False: "HSCT not indicated"}.get(
            indicated, "the HSCT indication"
        )
        why = f": {reason.strip().rstrip('.')}." if reason.strip() else "."
        return (
            f"The confirmed HSCT decision ({decision}) is in doubt since {since}{why} "
            "A clinician re-confirms or changes the HSCT decision, with a reason."
        )

    return [
        Due(pk, AlertKind.HSCT_DECISION_REVIEW, "course", since, partial(text, since, r, i))
        for pk, since, r, i in rows
    ]


def mrd_decision_missing(ctx: Context) -> list[Due]:
    """The MRD result that decides the HSCT indication (ALL-REZ BFM 2002 S2: the end
    of induction, Eckert 2013) is not recorded N days (default 7) after its planned
    step is due, and the indication is undecided. Not for a course whose latest
    assessment is non-response."""
    rows = (
        ctx.scope(
            PlannedStep.objects.filter(
                status=StepStatus.PLANNED, course__state__in=SCHEDULED_STATES
            ).filter(_deciding_mrd_steps()),
            "course_id",
        )
        .exclude(course_id__in=_non_responders())
        .annotate(
            today=ctx.today("course__patient__team"),
            due=AddDays(
                F("due_on"), ctx.days("mrd_decision_missing_days", "course__protocol_slug")
            ),
        )
        .filter(due__lte=F("today"))
        # Implied by the line above, in the form the partial index of open MRD steps
        # (step_planned_mrd_due) range-scans: the latest team date less the shortest
        # threshold of any protocol.
        .filter(due_on__lte=_latest_due(ctx, "mrd_decision_missing_days"))
        .values_list("pk", "course_id", "label", "due_on", "due")
    )

    def text(label: str, step_due: date, due: date) -> str:
        return (
            f"{label} decides the HSCT indication and is not recorded: due {step_due}, "
            f"missing since {due}. Without it the HSCT decision cannot be made."
        )

    return [
        Due(
            course_id,
            AlertKind.MRD_DECISION_MISSING,
            f"step:{pk}",
            due,
            partial(text, label, step_due, due),
        )
        for pk, course_id, label, step_due, due in rows
    ]


def non_response(ctx: Context) -> list[Due]:
    """The latest valid response assessment of an active course past induction is not
    CR (non-response, or CR2 lost on a later marrow), and neither a re-assessment, an
    off-protocol decision nor a transplant (in non-CR, with a reason) on or after it
    followed within N days (default 7)."""
    rows = (
        ctx.scope(
            ResponseAssessment.objects.filter(pk__in=_non_responders().values("pk")),
            "course_id",
        )
        .annotate(
            today=ctx.today("course__patient__team"),
            due=AddDays(
                F("assessed_on"),
                ctx.days("non_response_decision_days", "course__protocol_slug"),
            ),
        )
        .filter(due__lte=F("today"))
        .values_list("course_id", "due", "assessed_on", "marrow", "em_status")
    )

    def text(due: date, on: date, marrow: str, em: str) -> str:
        return (
            f"The latest response assessment ({on}: marrow {marrow}, EM {em}) shows no "
            f"CR2, and no re-assessment or off-protocol decision is recorded; since {due}."
        )

    return [
        Due(pk, AlertKind.NON_RESPONSE, "course", due, partial(text, due, on, marrow, em))
        for pk, due, on, marrow, em in rows
    ]


def mrd_high_before_hsct(ctx: Context) -> list[Due]:
    """A transplant is planned (a date on the HSCT referral, not yet performed) and
    the pre-HSCT MRD -- the latest valid MRD result by sample date within the M days
    before the planned date (default 30), whatever its time-point label -- is at or
    above the protocol's threshold (default 10^-3) or positive, not quantifiable; from
    the day it was sampled. A result labelled otherwise is said in the alert."""
    window = ctx.days("mrd_before_hsct_window_days", "course__protocol_slug")
    latest = (
        MrdResult.objects.filter(
            course=OuterRef("course"),
            sampled_on__lte=OuterRef("hsct_day"),
            sampled_on__gte=OuterRef("window_start"),
        )
        .order_by("-sampled_on", "-id")
        .values("pk")[:1]
    )
    rows = (
        ctx.scope(
            MrdResult.objects.annotate(referral=valid_referral("course__hsct_referrals")).filter(
                course__state__in=SCHEDULED_STATES,
                referral__planned_on__isnull=False,
                referral__performed_on__isnull=True,
            ),
            "course_id",
        )
        .annotate(
            hsct_day=F("referral__planned_on"),
            window_start=AddDays(F("referral__planned_on"), -window),
            threshold=ctx.fraction("mrd_high_before_hsct_threshold", "course__protocol_slug"),
            today=ctx.today("course__patient__team"),
        )
        .filter(sampled_on__lte=F("hsct_day"), sampled_on__gte=F("window_start"))
        .filter(pk=Subquery(latest))
        .filter(Q(value__gte=F("threshold")) | Q(qualitative=POSITIVE_NOT_QUANTIFIABLE))
        .filter(sampled_on__lte=F("today"))
        .values_list(
            "course_id", "sampled_on", "value", "time_point", "referral__planned_on", "threshold"
        )
    )

    def text(on: date, value: float | None, label: str, planned: date, threshold: float) -> str:
        result = (
            "positive, not quantifiable (counted as positive)"
            if value is None
            else f"{value:g}, at or above {threshold:g}"
        )
        warning = counted_as_pre_hsct(on, label)
        return (
            f"The latest pre-HSCT MRD ({on}) is {result}, with the transplant planned for "
            f"{planned}." + (f" {warning}." if warning else "")
        )

    return [
        Due(
            pk,
            AlertKind.MRD_HIGH_BEFORE_HSCT,
            "course",
            on,
            partial(text, on, v, label, planned, t),
        )
        for pk, on, v, label, planned, t in rows
    ]


def donor_search_stalled(ctx: Context) -> list[Due]:
    """An HSCT referral recorded N days ago (default 14) with the donor search still
    not started, or with no donor found and no transplant date (no alternative donor
    decided), no transplant yet, HSCT not declined. Not for a course whose latest
    assessment is non-response."""
    rows = (
        ctx.scope(
            TreatmentCourse.objects.annotate(referral=valid_referral()).filter(
                state__in=SCHEDULED_STATES,
                referral__isnull=False,
                referral__performed_on__isnull=True,
            )
        )
        .filter(
            Q(referral__donor_search_status=DonorSearch.NOT_STARTED)
            | Q(
                referral__donor_search_status=DonorSearch.NO_DONOR,
                referral__planned_on__isnull=True,
            )
        )
        .exclude(hsct_indicated=False)
        .exclude(pk__in=_non_responders())
        .annotate(
            today=ctx.today("patient__team"),
            due=AddDays(
                F("referral__referred_on"),
                ctx.days("donor_search_stalled_days", "protocol_slug"),
            ),
        )
        .filter(due__lte=F("today"))
        .values_list("pk", "due", "referral__referred_on", "referral__donor_search_status")
    )

    def text(due: date, referred: date, status: str) -> str:
        if status == DonorSearch.NO_DONOR:
            what = "no donor was found and no alternative donor or transplant date is recorded"
        else:
            what = "the donor search has not started"
        return f"HSCT referral of {referred}: {what}; stalled since {due}."

    return [
        Due(pk, AlertKind.DONOR_SEARCH_STALLED, "course", due, partial(text, due, ref, st))
        for pk, due, ref, st in rows
    ]


def cumulative_delay(ctx: Context) -> list[Due]:
    """The course's steps done so far run N days (default 28) or more behind the
    protocol plan from its start (a step done N days after its planned date: delays
    inside each step's grace add up), from the first day a step was done that late."""
    rows = (
        ctx.scope(
            PlannedStep.objects.filter(
                status=StepStatus.DONE,
                done_on__isnull=False,
                course__state__in=SCHEDULED_STATES,
            ),
            "course_id",
        )
        .annotate(
            late_from=AddDays(
                F("planned_on"), ctx.days("cumulative_delay_days", "course__protocol_slug")
            ),
        )
        .filter(done_on__gte=F("late_from"))
        .values("course_id", "course__protocol_slug")
        .annotate(since=Min("done_on"), today=ctx.today("course__patient__team"))
        .filter(since__lte=F("today"))
        .values_list("course_id", "since", "course__protocol_slug")
    )

    def text(since: date, slug: str) -> str:
        return (
            f"The course runs {ctx.days_for(slug, 'cumulative_delay_days')} days or more "
            f"behind the protocol plan from its start (a step done that late on {since}); "
            "review the cause (toxicity, count recovery) and the plan."
        )

    return [
        Due(pk, AlertKind.CUMULATIVE_DELAY, "course", since, partial(text, since, slug))
        for pk, since, slug in rows
    ]


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule, declared once: what it is, how serious, why it matters, which
    protocol thresholds it reads, and its query (whose docstring states the condition
    in docs/alerts.md)."""

    kind: str
    severity: str
    caveat: str
    thresholds: tuple[str, ...]
    query: Callable[[Context], list[Due]]

    @property
    def condition(self) -> str:
        return " ".join((self.query.__doc__ or "").split())

    @property
    def max_snooze_days(self) -> int:
        return max_snooze_days(self.severity)


def max_snooze_days(severity: str) -> int:
    """How long an alert of ``severity`` may be snoozed: per severity in settings
    (high: 7 days by default), else the general maximum (90)."""
    return settings.REZCOURSE_ALERT_MAX_SNOOZE_DAYS_BY_SEVERITY.get(
        severity, settings.REZCOURSE_ALERT_MAX_SNOOZE_DAYS
    )


RULES: tuple[Rule, ...] = (
    Rule(
        AlertKind.HSCT_REFERRAL_MISSING,
        Severity.HIGH,
        "Early identification of high-risk features is critical for timely HSCT referral.",
        ("hsct_referral_missing_days",),
        hsct_referral_missing,
    ),
    Rule(
        AlertKind.HSCT_DELAYED,
        Severity.HIGH,
        "Delayed HSCT can result in poor outcomes (progression, cumulative toxicity).",
        ("hsct_delayed_days",),
        hsct_delayed,
    ),
    Rule(
        AlertKind.MRD_MISSING_BEFORE_HSCT,
        Severity.HIGH,
        "MRD status before HSCT significantly impacts post-transplant outcomes.",
        ("mrd_transplant_planned_within_days", "mrd_before_hsct_window_days"),
        mrd_missing_before_hsct,
    ),
    # The seed's caveats cover the three HSCT rules; these two are local rationale.
    Rule(
        AlertKind.STEP_OVERDUE,
        Severity.MEDIUM,
        "(Local rationale) Blocks, response and MRD assessments on time keep high-risk "
        "features from being found late (timely HSCT referral).",
        (),  # each step carries its own grace days from the protocol's template
        step_overdue,
    ),
    # High: the group decides the HSCT indication. A phenotype corrected to T-lineage
    # can make a course without HSCT a PPG/S4 course, and a wrong indication either way
    # costs (timely referral; transplant-related mortality, Borgmann et al., Blood 2003).
    Rule(
        AlertKind.STRATIFICATION_STALE,
        Severity.HIGH,
        "(Local rationale) A risk group confirmed on facts that have since changed may give "
        "the wrong HSCT indication; early identification of high-risk features is critical "
        "for timely HSCT referral.",
        (),
        stratification_stale,
    ),
    Rule(
        AlertKind.HSCT_DECISION_PENDING,
        Severity.HIGH,
        "Early identification of high-risk features is critical for timely HSCT referral.",
        ("hsct_decision_pending_days",),
        hsct_decision_pending,
    ),
    # High: a wrong HSCT decision costs either way (a missed transplant; transplant-
    # related mortality of one not needed, Borgmann et al., Blood 2003).
    Rule(
        AlertKind.HSCT_DECISION_REVIEW,
        Severity.HIGH,
        "(Local rationale) An HSCT decision whose basis changed may be wrong either way: a "
        "missed indication delays the transplant, an unneeded one risks treatment-related "
        "death (Borgmann, Blood 2003).",
        (),
        hsct_decision_review,
    ),
    # High: the proposal holds the HSCT indication, and nothing else runs (no schedule,
    # no referral rule) until a clinician confirms it.
    Rule(
        AlertKind.HSCT_PROPOSAL_UNCONFIRMED,
        Severity.HIGH,
        "Early identification of high-risk features is critical for timely HSCT referral.",
        ("hsct_proposal_unconfirmed_days",),
        hsct_proposal_unconfirmed,
    ),
    Rule(
        AlertKind.STRATIFICATION_UNCONFIRMED,
        Severity.MEDIUM,
        "(Local rationale) Until a clinician confirms the stratification, the course has no "
        "schedule and no rule watches its steps; a wrong group may hide an HSCT indication.",
        ("stratification_unconfirmed_days",),
        stratification_unconfirmed,
    ),
    # High, unlike an ordinary late step: it gates the transplant decision.
    Rule(
        AlertKind.MRD_DECISION_MISSING,
        Severity.HIGH,
        "Early identification of high-risk features is critical for timely HSCT referral.",
        ("mrd_decision_missing_days",),
        mrd_decision_missing,
    ),
    Rule(
        AlertKind.NON_RESPONSE,
        Severity.HIGH,
        "(Local rationale) Treatment failure (no CR2 by a pre-specified time point, "
        "Buchmann et al., Blood 2022) needs an alternative-therapy decision without delay.",
        ("non_response_decision_days",),
        non_response,
    ),
    Rule(
        AlertKind.MRD_HIGH_BEFORE_HSCT,
        Severity.HIGH,
        "MRD status before HSCT significantly impacts post-transplant outcomes.",
        # Also reads mrd_before_hsct_window_days, declared by mrd_missing_before_hsct
        # (each threshold is listed by one rule).
        ("mrd_high_before_hsct_threshold",),
        mrd_high_before_hsct,
    ),
    Rule(
        AlertKind.DONOR_SEARCH_STALLED,
        Severity.HIGH,
        "Delayed HSCT can result in poor outcomes (progression, cumulative toxicity).",
        ("donor_search_stalled_days",),
        donor_search_stalled,
    ),
    Rule(
        AlertKind.CUMULATIVE_DELAY,
        Severity.MEDIUM,
        "Delayed HSCT can result in poor outcomes (progression, cumulative toxicity); "
        "(local rationale) delays inside each block's grace add up to the same.",
        ("cumulative_delay_days",),
        cumulative_delay,
    ),
    Rule(
        AlertKind.COURSE_STALLED,
        Severity.LOW,
        "(Local rationale) A course with nothing recorded for weeks may have missed "
        "events the protocol depends on (toxicity, response, relapse).",
        (
            "course_stalled_days",
            "course_stalled_maintenance_days",
            "course_stalled_post_transplant_days",
        ),
        course_stalled,
    ),
)
BY_KIND: dict[str, Rule] = {rule.kind: rule for rule in RULES}


def evaluate(ctx: Context, kinds: Iterable[str] | None = None) -> list[Due]:
    due: list[Any] = []
    for rule in RULES:
        if kinds is None or rule.kind in kinds:
            due += rule.query(ctx)
    return due
