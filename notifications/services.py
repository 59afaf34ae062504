"""Writes on alerts: the sweep that derives them from the courses, and the lifecycle
actions of the people who handle them.

The sweep is idempotent and serialized: it locks its SweepRun row for the whole
transaction, so a second sweep (another worker, or a per-course re-evaluation after a
save) waits and then finds nothing to do. The partial unique constraint on Alert is
the database's own guarantee behind it: never two unresolved alerts per condition.

The lifecycle actions take the same lock first: every change to alerts, and the
dashboards' rows that follow them (notifications.dashboards), happen one transaction
at a time, each ending with :func:`dashboards.refresh` for the courses it changed.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Max, OuterRef, Q, QuerySet, Subquery

from config.db import insert_rows
from config.errors import Invalid, Refused
from courses.models import ACTIVE_STATES, TreatmentCourse
from notifications import dashboards, rules
from notifications.email import enqueue_alert_notices
from notifications.models import (
    UNRESOLVED,
    Alert,
    AlertEvent,
    AlertState,
    CourseAttention,
    Heartbeat,
    NotificationPreference,
    Resolution,
    SummaryCounter,
    SummaryFact,
    SweepRun,
)
from stratification.selectors import protocol_registry
from teams.models import Membership, Team

logger = logging.getLogger(__name__)


@transaction.atomic
def heartbeat_record(name: str, now: datetime) -> Heartbeat:
    """Upsert the job's heartbeat; concurrent workers each add one run."""
    updated = Heartbeat.objects.filter(name=name).update(last_seen_at=now, runs=F("runs") + 1)
    if not updated:
        Heartbeat.objects.get_or_create(name=name, defaults={"last_seen_at": now, "runs": 1})
    return Heartbeat.objects.get(name=name)


# --- the sweep -------------------------------------------------------------------------


class Opened(NamedTuple):
    """A new alert, as the events, the outbox and the dashboards need it: no model
    instance (an opening sweep writes tens of thousands)."""

    pk: int
    course_id: int
    kind: str
    subject: str
    severity: str
    escalation_level: int = 0


@dataclass
class SweepResult:
    opened: list[Opened] = field(default_factory=list)
    escalated: list[Alert] = field(default_factory=list)
    resolved: int = 0
    updated: int = 0
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "opened": len(self.opened),
            "escalated": len(self.escalated),
            "resolved": self.resolved,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


# A course written this long before a periodic sweep started (its transaction still
# open then) is still refreshed by the next one: see _written_since.
WRITE_MARGIN = timedelta(minutes=10)


def _team_calendars(now: datetime) -> tuple[dict[int, date], dict[int, str]]:
    """{team id: the team's calendar date} and {team id: its time zone}: one row per
    team (a handful)."""
    teams = list(Team.objects.only("time_zone"))
    return {t.pk: t.today(now) for t in teams}, {t.pk: t.time_zone for t in teams}


def _team_dates(now: datetime) -> dict[int, date]:
    """{team id: the team's calendar date}."""
    return _team_calendars(now)[0]


def _context(
    now: datetime, course_ids: Sequence[int] | None
) -> tuple[rules.Context, dict[int, date]]:
    """The rules' context, and {team_id: the team's calendar date} for the dashboards."""
    dates, zones = _team_calendars(now)
    thresholds = {
        d.slug: {name: t.value for name, t in d.alert_thresholds.items()}
        for d in protocol_registry()
    }
    ctx = rules.Context(dates=dates, thresholds=thresholds, course_ids=course_ids, zones=zones)
    return ctx, dates


def _lock_sweep(now: datetime) -> SweepRun:
    # The row is created by a migration; the fallback covers a flushed database.
    try:
        return SweepRun.objects.select_for_update().get(name="alerts")
    except SweepRun.DoesNotExist:
        SweepRun.objects.get_or_create(name="alerts")
        return SweepRun.objects.select_for_update().get(name="alerts")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A sweep builds a few short-lived objects per due condition and unresolved alert
    (rows, keys, conditions: 150,000 for 100k courses), and Python's cyclic garbage
    collector, started by allocation counts, walks every object the process holds
    each time it runs: a third of a steady sweep went there. None of these objects
    forms a cycle, so reference counting frees them as before; the collector is
    paused for the sweep and resumes after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def alerts_sweep(now: datetime, course_ids: Sequence[int] | None = None) -> SweepResult:
    """Evaluate every rule (for every active course, or for ``course_ids``): open
    alerts whose condition holds, resolve those whose condition cleared, escalate
    those left unacknowledged; then refresh the dashboards' rows of the courses
    concerned. A constant number of queries whatever the cohort size.

    What the comparison needs of the unresolved alerts is read as plain values, the
    new alerts are inserted in one statement without model instances, and the outbox
    loads only the alerts that reach someone."""
    with _collector_paused():
        return _sweep(now, course_ids)


@transaction.atomic
def _sweep(now: datetime, course_ids: Sequence[int] | None) -> SweepResult:
    """One sweep, in one transaction (see alerts_sweep)."""
    started = time.monotonic()
    run = _lock_sweep(now)
    ctx, dates = _context(now, course_ids)
    # Keyed by (course, kind, subject): a Due's first three fields (a tuple slice is
    # cheaper than building the key field by field, 50,000 times a steady sweep).
    due = {d[:3]: d for d in rules.evaluate(ctx)}

    existing_qs = Alert.objects.filter(state__in=UNRESOLVED)
    if course_ids is not None:
        existing_qs = existing_qs.filter(course_id__in=course_ids)
    # Plain tuples, not model instances, and only what every sweep needs (timestamps
    # cost more to parse than anything else): the steady sweep reads every open alert.
    rows = existing_qs.order_by().values_list(
        "pk", "course_id", "kind", "subject", "condition_since"
    )
    existing = {(c, k, s): (pk, since) for pk, c, k, s, since in rows}
    result = SweepResult()

    new_keys = [k for k in due if k not in existing]
    result.opened = _open(_not_silenced(new_keys, due, ctx), now)

    # One pass over the unresolved alerts: still due and unchanged (the steady case),
    # due with moved dates (the message follows from them: rewritten only then), or
    # cleared.
    changed: dict[tuple[int, str, str], Alert] = {}
    cleared: dict[tuple[int, str, str], int] = {}
    for key, (pk, since) in existing.items():
        d = due.get(key)
        if d is None:
            cleared[key] = pk
        elif since != d.since:
            changed[key] = Alert(pk=pk, message=d.message, condition_since=d.since)
        else:
            result.unchanged += 1
    if changed:
        Alert.objects.bulk_update(changed.values(), ["message", "condition_since"])
    result.updated = len(changed)
    # A condition can clear because the course itself ended (completed, or off
    # protocol: a death, a second relapse): those alerts say so ("course ended"), so
    # nobody reads them as a problem that was fixed.
    ended: set[int] = set()
    if cleared:
        ended = set(
            Alert.objects.filter(pk__in_array=list(cleared.values()))
            .exclude(course__state__in=ACTIVE_STATES)
            .values_list("pk", flat=True)
        )
        for pks, resolution in (
            ([pk for pk in cleared.values() if pk not in ended], Resolution.CONDITION_CLEARED),
            (sorted(ended), Resolution.COURSE_ENDED),
        ):
            if pks:
                result.resolved += Alert.objects.filter(
                    pk__in_array=pks, state__in=UNRESOLVED
                ).update(state=AlertState.RESOLVED, resolved_at=now, resolution=resolution)

    result.escalated = _escalate(existing_qs, now, ctx)

    events = [(a.pk, now, "opened", "") for a in result.opened]
    events += [
        (pk, now, "resolved", "course ended" if pk in ended else "condition cleared")
        for pk in cleared.values()
    ]
    events += [(a.pk, now, "escalated", f"level {a.escalation_level}") for a in result.escalated]
    insert_rows(AlertEvent, ("alert", "at", "action", "note"), events)
    # The e-mails are written in this same transaction: they exist exactly when the
    # alert change they report does.
    enqueue_alert_notices(result.opened, result.escalated, now)

    if course_ids is not None:
        # Right after a write on these courses: everything about them.
        dashboards.refresh(now, dates, courses=set(course_ids))
        return result
    alerts_changed = {a.course_id for a in result.opened}
    alerts_changed |= {key[0] for key in (*changed, *cleared)}
    alerts_changed |= {a.course_id for a in result.escalated}
    dashboards.refresh(
        now,
        dates,
        courses=_written_since(run, now),
        alerts=alerts_changed,
        woken=dashboards.snoozes_ending(dates),
    )
    run.last_started_at = now
    run.last_duration_ms = int((time.monotonic() - started) * 1000)
    run.last_counts = result.counts()
    run.runs += 1
    run.save()
    return result


class HandResolution(NamedTuple):
    """The latest resolution by hand of one condition (course, kind, subject, start)."""

    on: date  # the team's calendar date of the resolution
    team_id: int
    severity: str
    username: str
    role: str | None  # the resolver's role in the course's team (None: no longer a member)


def _not_silenced(
    new_keys: Sequence[tuple[int, str, str]],
    due: dict[tuple[int, str, str], rules.Due],
    ctx: rules.Context,
) -> list[rules.Due]:
    """The due conditions without an unresolved alert that open one now.

    A condition a person resolved by hand stays resolved while it is the same condition
    (same start date) — but only for as long as an alert of its severity may be snoozed
    (rules.max_snooze_days: high 7 days by default), counted on the team's calendar from
    the day it was resolved. A condition that still holds then opens again, saying who
    resolved it and when: resolving by hand is not a way to silence a transplant at risk
    for good (issue 22: a high hsct_referral_missing resolved with no referral stayed
    quiet for six months). A new occurrence (another start date) opens at once."""
    if not new_keys:
        return []
    by_hand = _hand_resolutions({k[0] for k in new_keys}, ctx)
    opening: list[rules.Due] = []
    for key in new_keys:
        d = due[key]
        resolved = by_hand.get((*key, d.since))
        if resolved is None:
            opening.append(d)
            continue
        longest = rules.max_snooze_days(resolved.severity)
        if resolved.on + timedelta(days=longest) > ctx.dates.get(resolved.team_id, date.min):
            continue  # still within what a snooze could have hidden
        opening.append(d._replace(describe=partial(_reopened, d.describe, resolved, longest)))
    return opening


def _hand_resolutions(
    course_ids: set[int], ctx: rules.Context
) -> dict[tuple[int, str, str, date], HandResolution]:
    """{(course, kind, subject, condition start): its latest resolution by hand} for
    ``course_ids``: one query (the resolver's role read beside it)."""
    role = Membership.objects.filter(
        user=OuterRef("resolved_by"), team=OuterRef("course__patient__team")
    ).values("role")[:1]
    rows = (
        Alert.objects.filter(resolution=Resolution.MANUAL, course_id__in_array=course_ids)
        .annotate(
            role=Subquery(role),
            resolved_on=ctx.team_date("resolved_at", "course__patient__team"),
        )
        .order_by("resolved_at", "pk")
        .values_list(
            "course_id",
            "kind",
            "subject",
            "condition_since",
            "resolved_on",
            "course__patient__team_id",
            "severity",
            "resolved_by__username",
            "role",
        )
    )
    found: dict[tuple[int, str, str, date], HandResolution] = {}
    # Oldest first: the latest resolution of each condition is the one kept.
    for course, kind, subject, since, on, team_id, severity, username, role_name in rows:
        found[(course, kind, subject, since)] = HandResolution(
            on, team_id, severity, username or "", role_name
        )
    return found


def _reopened(describe: Callable[[], str], resolved: HandResolution, longest: int) -> str:
    """The condition's own text, and why it is back: who resolved it by hand (their
    account and role, never a patient's identity) and when."""
    who = resolved.username + (f" ({resolved.role})" if resolved.role else "")
    return (
        f"{describe()} Resolved by hand on {resolved.on} by {who}, and the condition still "
        f"holds after the longest snooze of a {resolved.severity} alert ({longest} days): "
        "opened again."
    )


def _open(dues: Sequence[rules.Due], now: datetime) -> list[Opened]:
    """Insert the new alerts in one statement; their messages are written here, once."""
    rows = [
        (
            d.course_id,
            d.kind,
            d.subject,
            rules.BY_KIND[d.kind].severity,
            d.message,
            rules.BY_KIND[d.kind].caveat,
            d.since,
            now,
        )
        for d in dues
    ]
    columns = ("course", "kind", "subject", "severity", "message", "caveat", "condition_since")
    inserted = insert_rows(
        Alert,
        (*columns, "opened_at"),
        rows,
        returning=("id", "course", "kind", "subject", "severity"),
    )
    return [Opened(*row) for row in inserted]


def _written_since(run: SweepRun, now: datetime) -> dashboards.Ids:
    """The courses written since the previous periodic sweep (their re-evaluation may
    have been lost with the broker) and those new to the dashboards (loaded in bulk,
    without the services); every course the first time. Advances the run's mark."""
    if run.last_started_at is None:
        run.courses_seen_up_to = TreatmentCourse.objects.aggregate(top=Max("pk"))["top"] or 0
        return dashboards.EVERY
    # last_activity_at is the writer's clock at the start of its request: a write still
    # open when the previous sweep read the courses is caught by the margin, and so is
    # a writer whose clock runs a little ahead. (Synthetic cohorts carry activity dates
    # in the future: those wait until their date instead of being refreshed each time.)
    ids = set(
        TreatmentCourse.objects.filter(
            Q(
                last_activity_at__gte=run.last_started_at - WRITE_MARGIN,
                last_activity_at__lte=now + WRITE_MARGIN,
            )
            | Q(pk__gt=run.courses_seen_up_to)
        )
        .order_by()
        .values_list("pk", flat=True)
    )
    run.courses_seen_up_to = max(run.courses_seen_up_to, *ids, 0)
    return ids


def _escalate(unresolved: QuerySet[Alert], now: datetime, ctx: rules.Context) -> list[Alert]:
    """Raise the level of open (unacknowledged) alerts left alone past each threshold.
    A snoozed alert stays quiet until its date. Run after the resolutions, so an alert
    whose condition cleared in this sweep is no longer open."""
    hours = settings.REZCOURSE_ALERT_ESCALATION_HOURS
    if not hours:
        return []
    # Snooze dates are calendar dates; the latest team date is a safe, cheap bound
    # (it can end a snooze a few hours early, never late).
    today = ctx.latest_today if ctx.dates else now.date()
    candidates = (
        unresolved.filter(
            state=AlertState.OPEN,
            escalation_level__lt=len(hours),
            opened_at__lte=now - timedelta(hours=min(hours)),
        )
        .filter(Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=today))
        .order_by()
        .values_list("pk", "course_id", "severity", "opened_at", "escalation_level")
    )
    by_level: dict[int, list[tuple[int, int, str]]] = {}
    for pk, course_id, severity, opened_at, current in candidates:
        # The highest level whose threshold has passed: a sweep that was down for days
        # catches up in one step, not one level per run.
        level = sum(1 for h in hours if now - opened_at >= timedelta(hours=h))
        if level > current:
            by_level.setdefault(level, []).append((pk, course_id, severity))
    escalated: list[Alert] = []
    for level, alerts in by_level.items():
        Alert.objects.filter(pk__in_array=[pk for pk, _, _ in alerts]).update(
            escalation_level=level, escalated_at=now
        )
        escalated += [
            Alert(
                pk=pk,
                course_id=course_id,
                severity=severity,
                escalation_level=level,
                escalated_at=now,
            )
            for pk, course_id, severity in alerts
        ]
    return escalated


@transaction.atomic
def dashboards_rebuild(now: datetime) -> dict[str, int]:
    """The dashboards' state for every course, from scratch, under the sweep lock."""
    _lock_sweep(now)
    dashboards.rebuild(now, _team_dates(now))
    return {
        "attention rows": CourseAttention.objects.count(),
        "summary facts": SummaryFact.objects.count(),
        "summary counters": SummaryCounter.objects.count(),
    }


# --- lifecycle ---------------------------------------------------------------------


def _lock_alert(alert: Alert | int, now: datetime) -> Alert:
    """The alert's row, locked, after the sweep lock: a person's action and a sweep
    (or another action) are applied one after the other, and each refreshes the
    course's dashboard rows from what the one before committed."""
    _lock_sweep(now)
    pk = alert if isinstance(alert, int) else alert.pk
    return Alert.objects.select_for_update().select_related("course__patient__team").get(pk=pk)


def _refresh_course(alert: Alert, now: datetime) -> None:
    team = alert.course.patient.team
    dashboards.refresh(now, {team.pk: team.today(now)}, alerts={alert.course_id})


def _refuse(alert: Alert, action: str) -> None:
    allowed = {
        AlertState.OPEN: ["acknowledge", "snooze", "resolve"],
        AlertState.ACKNOWLEDGED: ["snooze", "resolve"],
        AlertState.RESOLVED: [],
    }[alert.state]
    if action not in allowed:
        raise Refused(
            f"The alert is {alert.state}; '{action}' is not possible now.",
            code="alert_action_not_allowed",
            state=alert.state,
            allowed_actions=allowed,
        )


@transaction.atomic
def alert_acknowledge(alert: Alert, *, actor: AbstractBaseUser, note: str, now: datetime) -> Alert:
    alert = _lock_alert(alert, now)
    _refuse(alert, "acknowledge")
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_by, alert.acknowledged_at, alert.acknowledge_note = actor, now, note
    alert.save(update_fields=["state", "acknowledged_by", "acknowledged_at", "acknowledge_note"])
    AlertEvent.objects.create(alert=alert, at=now, action="acknowledged", actor=actor, note=note)
    _refresh_course(alert, now)
    return alert


@transaction.atomic
def alert_snooze(
    alert: Alert, *, actor: AbstractBaseUser, until: date, reason: str, now: datetime
) -> Alert:
    alert = _lock_alert(alert, now)
    _refuse(alert, "snooze")
    today = alert.course.patient.team.today(now)
    errors = {}
    if until <= today:
        errors["until"] = [f"must be after today ({today})."]
    elif until > today + timedelta(days=(longest := rules.max_snooze_days(alert.severity))):
        # A high alert (a transplant at risk) comes back within a week by default.
        errors["until"] = [
            f"must be within {longest} days of today (the longest snooze for a "
            f"{alert.severity} alert)."
        ]
    if not reason.strip():
        errors["reason"] = ["is required to snooze an alert."]
    Invalid.raise_if(errors)
    alert.snoozed_until, alert.snooze_reason = until, reason.strip()
    alert.save(update_fields=["snoozed_until", "snooze_reason"])
    AlertEvent.objects.create(
        alert=alert, at=now, action="snoozed", actor=actor, note=f"until {until}: {reason.strip()}"
    )
    _refresh_course(alert, now)
    return alert


@transaction.atomic
def alert_resolve(alert: Alert, *, actor: AbstractBaseUser, reason: str, now: datetime) -> Alert:
    alert = _lock_alert(alert, now)
    _refuse(alert, "resolve")
    if not reason.strip():
        raise Invalid({"reason": ["is required to resolve an alert by hand."]})
    alert.state = AlertState.RESOLVED
    alert.resolved_at, alert.resolution = now, Resolution.MANUAL
    alert.resolved_by, alert.resolve_reason = actor, reason.strip()
    alert.save(
        update_fields=["state", "resolved_at", "resolution", "resolved_by", "resolve_reason"]
    )
    AlertEvent.objects.create(
        alert=alert, at=now, action="resolved", actor=actor, note=reason.strip()
    )
    _refresh_course(alert, now)
    return alert


@transaction.atomic
def preference_update(membership: Membership, **changes: object) -> NotificationPreference:
    pref, _ = NotificationPreference.objects.select_for_update().get_or_create(
        membership=membership
    )
    for key, value in changes.items():
        setattr(pref, key, value)
    pref.save()
    return pref
