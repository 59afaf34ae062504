"""The daily digest: per recipient, their teams' unresolved alerts grouped by severity
and course, and what changed since their last digest. Built for every recipient at
once in a constant number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.template.loader import render_to_string

from notifications.email.delivery import kick_drain
from notifications.email.notices import KIND_LABELS, links
from notifications.email.recipients import Recipient, recipients_for
from notifications.models import (
    SEVERITY_RANK,
    UNRESOLVED,
    Alert,
    AlertEvent,
    EmailKind,
    EmailStatus,
    OutboundEmail,
)
from teams.models import Team


@dataclass
class Digest:
    recipient: Recipient
    local_date: date
    team_ids: list[int]
    groups: list[dict[str, Any]]  # by severity, then course
    changes: list[dict[str, Any]]
    since: datetime | None

    @property
    def empty(self) -> bool:
        return not self.groups and not self.changes

    @property
    def idempotency_key(self) -> str:
        teams = "" if self.recipient.user_id else f":team:{self.team_ids[0]}"
        return f"digest:{self.recipient.ident}{teams}:{self.local_date.isoformat()}"

    @property
    def open_count(self) -> int:
        return sum(len(c["alerts"]) for g in self.groups for c in g["courses"])


# One digest to build: who, for which of their teams, and the local day it covers.
DigestRequest = tuple[Recipient, list[int], date]


def build_digests(requests: Sequence[DigestRequest], now: datetime) -> list[Digest]:
    """What each recipient would read now. Three queries whatever the number of
    recipients: their last digests, the unresolved alerts of all their teams, and the
    alert events since the earliest of their last digests; each digest then takes
    its own teams' share, in the database's order."""
    if not requests:
        return []
    team_ids = sorted({t for _, teams, _ in requests for t in teams})
    last_sent: dict[tuple[str, int], datetime] = {
        (row["recipient"], row["team_id"]): row["last"]
        for row in OutboundEmail.objects.filter(
            kind=EmailKind.DIGEST,
            recipient__in={r.email for r, _, _ in requests},
            team_id__in=team_ids,
        )
        .exclude(status=EmailStatus.FAILED)
        .values("recipient", "team_id")
        .annotate(last=Max("created_at"))
    }
    lasts = [
        max((last_sent[(r.email, t)] for t in teams if (r.email, t) in last_sent), default=None)
        for r, teams, _ in requests
    ]
    earliest = min((last or now - timedelta(days=1)) for last in lasts)
    alerts_by_team: dict[int, list[tuple[int, Alert]]] = defaultdict(list)
    for position, a in enumerate(
        Alert.objects.filter(state__in=UNRESOLVED, course__patient__team_id__in=team_ids)
        .select_related("course__patient")
        .order_by("course__patient__reference", "kind", "subject")
    ):
        alerts_by_team[a.course.patient.team_id].append((position, a))
    events_by_team: dict[int, list[tuple[int, AlertEvent]]] = defaultdict(list)
    for position, e in enumerate(
        AlertEvent.objects.filter(
            at__gt=earliest, at__lte=now, alert__course__patient__team_id__in=team_ids
        )
        .select_related("alert__course__patient", "actor")
        .order_by("at", "id")
    ):
        events_by_team[e.alert.course.patient.team_id].append((position, e))

    digests = []
    for (recipient, teams, local_date), last in zip(requests, lasts, strict=True):
        since = last or now - timedelta(days=1)
        alerts = [a for _, a in _merged(alerts_by_team, teams)]
        events = [e for _, e in _merged(events_by_team, teams) if e.at > since]
        digests.append(
            Digest(recipient, local_date, teams, _groups(alerts), _changes(events), last)
        )
    return digests


def _merged(by_team: dict[int, list[tuple[int, Any]]], teams: list[int]) -> list[Any]:
    """The teams' rows, back in the order the database returned them."""
    return sorted((p for t in teams for p in by_team[t]), key=itemgetter(0))


def build_digest(
    recipient: Recipient, team_ids: list[int], local_date: date, now: datetime
) -> Digest:
    """What one recipient would read now (``manage.py preview_digest``)."""
    [digest] = build_digests([(recipient, team_ids, local_date)], now)
    return digest


def _groups(alerts: list[Alert]) -> list[dict[str, Any]]:
    groups = []
    for severity in sorted(SEVERITY_RANK, key=SEVERITY_RANK.get, reverse=True):
        courses: dict[int, dict[str, Any]] = {}
        for a in alerts:
            if a.severity != severity:
                continue
            entry = courses.setdefault(
                a.course_id,
                {
                    "reference": a.course.patient.reference,
                    "course_id": a.course_id,
                    "timeline_url": links(a)["timeline_url"],
                    "alerts": [],
                },
            )
            entry["alerts"].append({"alert": a, "kind_label": KIND_LABELS[a.kind], **links(a)})
        if courses:
            groups.append({"severity": severity, "courses": list(courses.values())})
    return groups


def _changes(events: list[AlertEvent]) -> list[dict[str, Any]]:
    # Who did what, never the free text they typed: notes may hold anything, and
    # e-mails must carry no identifying data.
    return [
        {
            "at": e.at,
            "action": e.action,
            "kind_label": KIND_LABELS[e.alert.kind],
            "reference": e.alert.course.patient.reference,
            "by": e.actor.username if e.actor_id else "",
        }
        for e in events
    ]


def render_digest(digest: Digest) -> tuple[str, str, str]:
    context = {"digest": digest, "base_url": settings.REZCOURSE_BASE_URL.rstrip("/")}
    subject = (
        f"[rezcourse] Daily digest {digest.local_date}: {digest.open_count} open alert"
        f"{'' if digest.open_count == 1 else 's'}"
    )
    return (
        subject,
        render_to_string("notifications/email/digest.txt", context),
        render_to_string("notifications/email/digest.html", context),
    )


def digests_due(now: datetime) -> list[Digest]:
    """For every team whose local clock has passed its digest hour today, the
    digests its recipients are owed (one per recipient per local day; a person in
    several teams gets one e-mail covering all of them). A constant number of
    queries whatever the number of teams and recipients."""
    due_teams: dict[int, date] = {}
    for team in Team.objects.only("pk", "time_zone", "digest_hour"):
        local = now.astimezone(ZoneInfo(team.time_zone))
        if local.hour >= team.digest_hour:
            due_teams[team.pk] = local.date()
    if not due_teams:
        return []
    people: dict[str, tuple[Recipient, list[int]]] = {}
    addresses: list[Recipient] = []
    for team_id, recipients in recipients_for(due_teams).items():
        for r in recipients:
            if not r.digest:
                continue
            if r.user_id is None:
                addresses.append(r)
            else:
                people.setdefault(r.ident, (r, []))[1].append(team_id)
    # Only the teams where this person wants the digest and belongs: never another
    # team's course.
    requests: list[DigestRequest] = [
        (recipient, sorted(team_ids), due_teams[min(team_ids)])
        for recipient, team_ids in people.values()
    ]
    requests += [(r, [r.team_id], due_teams[r.team_id]) for r in addresses]
    return build_digests(requests, now)


def enqueue_digests(now: datetime) -> int:
    """Write the due digests that have something to say. Idempotent per recipient and
    local day: a second run the same day writes nothing."""
    existing = set(
        OutboundEmail.objects.filter(
            kind=EmailKind.DIGEST, created_at__gte=now - timedelta(days=2)
        ).values_list("idempotency_key", flat=True)
    )
    rows = []
    for digest in digests_due(now):
        if digest.idempotency_key in existing or digest.empty:
            continue
        subject, text, html = render_digest(digest)
        rows.append(
            OutboundEmail(
                team_id=digest.team_ids[0],
                user_id=digest.recipient.user_id,
                recipient=digest.recipient.email,
                kind=EmailKind.DIGEST,
                subject=subject,
                body_text=text,
                body_html=html,
                idempotency_key=digest.idempotency_key,
                next_attempt_at=now,
                created_at=now,
            )
        )
    with transaction.atomic():
        created = OutboundEmail.objects.bulk_create(rows, ignore_conflicts=True)
        if rows:
            transaction.on_commit(kick_drain)
    return len(created)
