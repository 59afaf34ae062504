"""Writes on alerts: the sweep that derives them from the courses, and the lifecycle
actions of the people who handle them.

The sweep is idempotent and serialized: it locks its SweepRun row for the whole
transaction, so a second sweep (another worker, or a per-course re-evaluation after a
save) waits and then finds nothing to do. The partial unique constraint on Alert is
the database's own guarantee behind it: never two unresolved alerts per condition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q, QuerySet

from config.errors import Invalid, Refused
from courses.models import ACTIVE_STATES
from notifications import rules
from notifications.email import enqueue_alert_notices
from notifications.models import (
    UNRESOLVED,
    Alert,
    AlertEvent,
    AlertState,
    Heartbeat,
    NotificationPreference,
    Resolution,
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


class Existing(NamedTuple):
    pk: int
    since: date


@dataclass
class SweepResult:
    opened: list[Alert] = field(default_factory=list)
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


def _context(now: datetime, course_ids: Sequence[int] | None) -> rules.Context:
    # One row per team (a handful): the rules need each time zone's date once.
    today = {team.time_zone: team.today(now) for team in Team.objects.only("time_zone")}
    thresholds = {
        d.slug: {name: t.value for name, t in d.alert_thresholds.items()}
        for d in protocol_registry()
    }
    return rules.Context(today_by_zone=today, thresholds=thresholds, course_ids=course_ids)


def _lock_sweep(now: datetime) -> SweepRun:
    # The row is created by a migration; the fallback covers a flushed database.
    try:
        return SweepRun.objects.select_for_update().get(name="alerts")
    except SweepRun.DoesNotExist:
        SweepRun.objects.get_or_create(name="alerts")
        return SweepRun.objects.select_for_update().get(name="alerts")


@transaction.atomic
def alerts_sweep(now: datetime, course_ids: Sequence[int] | None = None) -> SweepResult:
    """Evaluate every rule (for every active course, or for ``course_ids``): open
    alerts whose condition holds, resolve those whose condition cleared, escalate
    those left unacknowledged. A constant number of queries whatever the cohort size.
    """
    started = time.monotonic()
    run = _lock_sweep(now)
    ctx = _context(now, course_ids)
    due = {d.key: d for d in rules.evaluate(ctx)}

    existing_qs = Alert.objects.filter(state__in=UNRESOLVED)
    if course_ids is not None:
        existing_qs = existing_qs.filter(course_id__in=course_ids)
    # Plain tuples, not model instances, and only what every sweep needs (timestamps
    # cost more to parse than anything else): the steady sweep reads every open alert.
    rows = existing_qs.values_list("pk", "course_id", "kind", "subject", "condition_since")
    existing = {(c, k, s): Existing(pk, *rest) for pk, c, k, s, *rest in rows}
    result = SweepResult()

    # A condition a person resolved by hand stays resolved while it is the same
    # condition (same start date); only a new occurrence opens a new alert.
    new_keys = [k for k in due if k not in existing]
    dismissed: set[tuple[int, str, str, date]] = set()
    if new_keys:
        dismissed = set(
            Alert.objects.filter(
                resolution=Resolution.MANUAL,
                course_id__in={k[0] for k in new_keys},
            ).values_list("course_id", "kind", "subject", "condition_since")
        )
    to_open = [
        Alert(
            course_id=d.course_id,
            kind=d.kind,
            subject=d.subject,
            severity=rules.BY_KIND[d.kind].severity,
            message=d.message,
            caveat=rules.BY_KIND[d.kind].caveat,
            condition_since=d.since,
            opened_at=now,
        )
        for k in new_keys
        if (d := due[k]) and (*k, d.since) not in dismissed
    ]
    if to_open:
        result.opened = Alert.objects.bulk_create(to_open)

    # The message follows from the condition's dates: rewrite it only when they moved.
    changed = [
        Alert(pk=e.pk, message=d.message, condition_since=d.since)
        for key, e in existing.items()
        if (d := due.get(key)) is not None and e.since != d.since
    ]
    if changed:
        Alert.objects.bulk_update(changed, ["message", "condition_since"])
    result.updated = len(changed)
    result.unchanged = sum(1 for key in existing if key in due) - len(changed)

    cleared = [e.pk for key, e in existing.items() if key not in due]
    # A condition can clear because the course itself ended (completed, or off
    # protocol: a death, a second relapse): those alerts say so ("course ended"), so
    # nobody reads them as a problem that was fixed.
    ended: set[int] = set()
    if cleared:
        ended = set(
            Alert.objects.filter(pk__in=cleared)
            .exclude(course__state__in=ACTIVE_STATES)
            .values_list("pk", flat=True)
        )
        for pks, resolution in (
            ([pk for pk in cleared if pk not in ended], Resolution.CONDITION_CLEARED),
            (sorted(ended), Resolution.COURSE_ENDED),
        ):
            if pks:
                result.resolved += Alert.objects.filter(pk__in=pks, state__in=UNRESOLVED).update(
                    state=AlertState.RESOLVED, resolved_at=now, resolution=resolution
                )

    result.escalated = _escalate(existing_qs, now, ctx)

    events = [AlertEvent(alert=a, at=now, action="opened") for a in result.opened]
    events += [
        AlertEvent(
            alert_id=pk,
            at=now,
            action="resolved",
            note="course ended" if pk in ended else "condition cleared",
        )
        for pk in cleared
    ]
    events += [
        AlertEvent(alert=a, at=now, action="escalated", note=f"level {a.escalation_level}")
        for a in result.escalated
    ]
    if events:
        AlertEvent.objects.bulk_create(events)
    # The e-mails are written in this same transaction: they exist exactly when the
    # alert change they report does.
    enqueue_alert_notices(result.opened, result.escalated, now)

    if course_ids is None:
        run.last_started_at = now
        run.last_duration_ms = int((time.monotonic() - started) * 1000)
        run.last_counts = result.counts()
        run.runs += 1
        run.save()
    return result


def _escalate(unresolved: QuerySet[Alert], now: datetime, ctx: rules.Context) -> list[Alert]:
    """Raise the level of open (unacknowledged) alerts left alone past each threshold.
    A snoozed alert stays quiet until its date. Run after the resolutions, so an alert
    whose condition cleared in this sweep is no longer open."""
    hours = settings.REZCOURSE_ALERT_ESCALATION_HOURS
    if not hours:
        return []
    # Snooze dates are calendar dates; the latest team date is a safe, cheap bound
    # (it can end a snooze a few hours early, never late).
    today = max(ctx.today_by_zone.values(), default=now.date())
    candidates = (
        unresolved.filter(
            state=AlertState.OPEN,
            escalation_level__lt=len(hours),
            opened_at__lte=now - timedelta(hours=min(hours)),
        )
        .filter(Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=today))
        .values_list("pk", "opened_at", "escalation_level")
    )
    by_level: dict[int, list[int]] = {}
    for pk, opened_at, current in candidates:
        # The highest level whose threshold has passed: a sweep that was down for days
        # catches up in one step, not one level per run.
        level = sum(1 for h in hours if now - opened_at >= timedelta(hours=h))
        if level > current:
            by_level.setdefault(level, []).append(pk)
    escalated: list[Alert] = []
    for level, pks in by_level.items():
        Alert.objects.filter(pk__in=pks).update(escalation_level=level, escalated_at=now)
        escalated += [Alert(pk=pk, escalation_level=level, escalated_at=now) for pk in pks]
    return escalated


# --- lifecycle ---------------------------------------------------------------------


def _lock_alert(alert: Alert | int) -> Alert:
    pk = alert if isinstance(alert, int) else alert.pk
    return Alert.objects.select_for_update().select_related("course__patient__team").get(pk=pk)


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
    alert = _lock_alert(alert)
    _refuse(alert, "acknowledge")
    alert.state = AlertState.ACKNOWLEDGED
    alert.acknowledged_by, alert.acknowledged_at, alert.acknowledge_note = actor, now, note
    alert.save(update_fields=["state", "acknowledged_by", "acknowledged_at", "acknowledge_note"])
    AlertEvent.objects.create(alert=alert, at=now, action="acknowledged", actor=actor, note=note)
    return alert


@transaction.atomic
def alert_snooze(
    alert: Alert, *, actor: AbstractBaseUser, until: date, reason: str, now: datetime
) -> Alert:
    alert = _lock_alert(alert)
    _refuse(alert, "snooze")
    today = alert.course.patient.team.today(now)
    errors = {}
    if until <= today:
        errors["until"] = [f"must be after today ({today})."]
    elif until > today + timedelta(days=settings.REZCOURSE_ALERT_MAX_SNOOZE_DAYS):
        errors["until"] = [
            f"must be within {settings.REZCOURSE_ALERT_MAX_SNOOZE_DAYS} days of today."
        ]
    if not reason.strip():
        errors["reason"] = ["is required to snooze an alert."]
    Invalid.raise_if(errors)
    alert.snoozed_until, alert.snooze_reason = until, reason.strip()
    alert.save(update_fields=["snoozed_until", "snooze_reason"])
    AlertEvent.objects.create(
        alert=alert, at=now, action="snoozed", actor=actor, note=f"until {until}: {reason.strip()}"
    )
    return alert


@transaction.atomic
def alert_resolve(alert: Alert, *, actor: AbstractBaseUser, reason: str, now: datetime) -> Alert:
    alert = _lock_alert(alert)
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
