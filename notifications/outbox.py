"""The e-mail outbox: write notices in the alert's transaction, claim, send, retry.

Delivery guarantees
-------------------
* Nothing lost: a notice is a row written in the same transaction as the alert change
  it reports. Beat drains pending rows every minute, so a task lost with the broker
  only delays them; a failed send is retried with exponential backoff (covering an
  SMTP outage of several hours) before the row is marked ``failed`` — visible in the
  API and the admin, where a coordinator can retry it.
* Nothing twice: ``idempotency_key`` is unique per (notice, recipient), so the sweep
  or a digest run writing the same notice again is a no-op. A worker claims a row
  with a conditional UPDATE that must touch exactly one row (after a
  ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never send the
  same row.
* The one at-least-once window: a worker that dies after the SMTP server accepted a
  message but before it marked the row ``sent`` leaves it ``sending``; after
  ``REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS`` another worker sends it again. It is narrowed
  by marking the row right after the SMTP transaction, and made harmless for mail
  clients by a Message-ID derived from the idempotency key (the same message twice
  carries the same Message-ID, which clients and archives treat as one).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import smtplib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string

from notifications.models import (
    DEFAULT_DIGEST,
    DEFAULT_IMMEDIATE_MIN_SEVERITY,
    SEVERITY_RANK,
    UNRESOLVED,
    Alert,
    AlertEvent,
    EmailKind,
    EmailStatus,
    OutboundEmail,
)
from teams.models import Membership, Team

logger = logging.getLogger(__name__)

KIND_LABELS = dict(Alert._meta.get_field("kind").choices)


# --- recipients ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    team_id: int
    user_id: int | None
    email: str
    immediate_min_severity: str | None
    digest: bool

    @property
    def ident(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"address:{self.email.lower()}"


def recipients_for(team_ids: Iterable[int]) -> dict[int, list[Recipient]]:
    """Members with an e-mail address (and their preferences, or the defaults), plus
    each team's distribution address. Two queries whatever the number of teams."""
    by_team: dict[int, list[Recipient]] = defaultdict(list)
    memberships = (
        Membership.objects.filter(team_id__in=list(team_ids), user__is_active=True)
        .exclude(user__email="")
        .select_related("user", "notification_preference")
    )
    for m in memberships:
        pref = getattr(m, "notification_preference", None)
        by_team[m.team_id].append(
            Recipient(
                m.team_id,
                m.user_id,
                m.user.email,
                pref.immediate_min_severity if pref else DEFAULT_IMMEDIATE_MIN_SEVERITY,
                pref.digest if pref else DEFAULT_DIGEST,
            )
        )
    for team_id, address in (
        Team.objects.filter(pk__in=list(team_ids))
        .exclude(distribution_email="")
        .values_list("pk", "distribution_email")
    ):
        by_team[team_id].append(
            Recipient(team_id, None, address, DEFAULT_IMMEDIATE_MIN_SEVERITY, DEFAULT_DIGEST)
        )
    return by_team


def _reaches(alert: Alert, recipient: Recipient) -> bool:
    """An alert reaches a recipient at or above their severity; each escalation level
    counts as one step up, so an unacknowledged medium alert reaches the people who
    only hear about high ones once it has escalated."""
    if recipient.immediate_min_severity is None:
        return False
    rank = SEVERITY_RANK[alert.severity] + alert.escalation_level
    return rank >= SEVERITY_RANK[recipient.immediate_min_severity]


# --- writing notices ---------------------------------------------------------------------


def message_id(idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@rezcourse.invalid>"


def _links(alert: Alert) -> dict[str, str]:
    # The web app's course page (web/urls.py "web:course"), opened at the alert or the
    # timeline; the sign-in page comes first when needed and keeps the anchor.
    course = f"{settings.REZCOURSE_BASE_URL.rstrip('/')}/courses/{alert.course_id}/"
    return {"alert_url": f"{course}#alert-{alert.pk}", "timeline_url": f"{course}#timeline"}


def enqueue_alert_notices(
    opened: Sequence[Alert], escalated: Sequence[Alert], now: datetime
) -> int:
    """Outbox rows for newly opened and escalated alerts, in the caller's transaction.
    A constant number of queries: the alerts, the recipients, one INSERT."""
    events = [("opened", a.pk) for a in opened] + [("escalated", a.pk) for a in escalated]
    if not events:
        return 0
    alerts = {
        a.pk: a
        for a in Alert.objects.filter(pk__in=[pk for _, pk in events]).select_related(
            "course__patient"
        )
    }
    recipients = recipients_for({a.course.patient.team_id for a in alerts.values()})
    rows = []
    for event, pk in events:
        alert = alerts[pk]
        team_id = alert.course.patient.team_id
        for recipient in recipients.get(team_id, []):
            if not _reaches(alert, recipient):
                continue
            key = f"alert:{pk}:{event}:{alert.escalation_level}:{recipient.ident}"
            context = {
                "alert": alert,
                "event": event,
                "kind_label": KIND_LABELS[alert.kind],
                "reference": alert.course.patient.reference,
                **_links(alert),
            }
            subject = _subject(alert, event)
            rows.append(
                OutboundEmail(
                    team_id=team_id,
                    user_id=recipient.user_id,
                    recipient=recipient.email,
                    kind=EmailKind.IMMEDIATE,
                    alert=alert,
                    subject=subject,
                    body_text=render_to_string("notifications/email/alert.txt", context),
                    body_html=render_to_string("notifications/email/alert.html", context),
                    idempotency_key=key,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    OutboundEmail.objects.bulk_create(rows, ignore_conflicts=True)
    if rows:
        transaction.on_commit(_kick_drain)
    return len(rows)


def _subject(alert: Alert, event: str) -> str:
    # Only the pseudonymous course reference and the alert kind: subjects travel
    # through mail systems and phone lock screens.
    escalation = f" (escalated, level {alert.escalation_level})" if event == "escalated" else ""
    return (
        f"[rezcourse] {alert.severity.upper()}: {KIND_LABELS[alert.kind]} - course "
        f"{alert.course.patient.reference}{escalation}"
    )


def _kick_drain() -> None:
    from notifications.tasks import drain_outbox

    try:
        drain_outbox.apply_async(retry=False)
    except Exception:  # noqa: BLE001 - beat drains the outbox every minute anyway
        logger.warning("could not queue an outbox drain; beat will pick the rows up", exc_info=True)


# --- claiming and sending -----------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    base = settings.REZCOURSE_EMAIL_RETRY_BASE_SECONDS
    cap = settings.REZCOURSE_EMAIL_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** max(attempts - 1, 0)))


def claim(now: datetime, limit: int) -> list[OutboundEmail]:
    """Claim up to ``limit`` rows that are due: pending ones, and ``sending`` ones
    whose claim lease expired (their worker died). Each claim is a conditional UPDATE
    that must touch exactly one row, so two workers never hold the same row."""
    lease = now - timedelta(seconds=settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS)
    due = Q(status=EmailStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=EmailStatus.SENDING, claimed_at__lte=lease
    )
    claimed_ids = []
    with transaction.atomic():
        candidates = OutboundEmail.objects.filter(due).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            # Rows another worker is claiming right now are skipped, not waited for.
            candidates = candidates.select_for_update(skip_locked=True)
        for pk, status, claimed_at in candidates.values_list("pk", "status", "claimed_at")[:limit]:
            won = OutboundEmail.objects.filter(pk=pk, status=status, claimed_at=claimed_at).update(
                status=EmailStatus.SENDING, claimed_at=now
            )
            if won == 1:
                claimed_ids.append(pk)
    return list(OutboundEmail.objects.filter(pk__in=claimed_ids).order_by("id"))


def _permanent(exc: Exception) -> bool:
    """5xx answers are the server's final word (unknown mailbox, policy); anything
    else — refused connections, timeouts, 4xx — may pass."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return False


def _describe(exc: Exception) -> str:
    # Class and SMTP code/text only: never the message body or other recipients.
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = {code for code, _ in exc.recipients.values()}
        return f"SMTPRecipientsRefused {sorted(codes)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{type(exc).__name__} {exc.smtp_code} {text}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def _finish(email: OutboundEmail, claimed_at: datetime | None, **fields: Any) -> None:
    # Only the holder of the claim records the outcome.
    OutboundEmail.objects.filter(
        pk=email.pk, status=EmailStatus.SENDING, claimed_at=claimed_at
    ).update(**fields)


def send_claimed(emails: Sequence[OutboundEmail], now_fn: Any) -> dict[str, int]:
    """Send claimed rows over one SMTP connection, outside any transaction."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    if not emails:
        return counts
    max_attempts = settings.REZCOURSE_EMAIL_MAX_ATTEMPTS
    conn = get_connection(fail_silently=False)
    opened_error: Exception | None = None
    try:
        conn.open()
    except Exception as exc:  # noqa: BLE001 - SMTP down: every row is retried later
        opened_error = exc
    try:
        for email in emails:
            attempts = email.attempts + 1
            error = opened_error
            if error is None:
                message = EmailMultiAlternatives(
                    email.subject,
                    email.body_text,
                    settings.DEFAULT_FROM_EMAIL,
                    [email.recipient],
                    headers={
                        "Message-ID": message_id(email.idempotency_key),
                        "Auto-Submitted": "auto-generated",
                    },
                    connection=conn,
                )
                if email.body_html:
                    message.attach_alternative(email.body_html, "text/html")
                try:
                    conn.send_messages([message])
                except Exception as exc:  # noqa: BLE001 - classified below
                    error = exc
            now = now_fn()
            if error is None:
                _finish(
                    email,
                    email.claimed_at,
                    status=EmailStatus.SENT,
                    sent_at=now,
                    attempts=attempts,
                    last_error="",
                )
                counts["sent"] += 1
            elif _permanent(error) or attempts >= max_attempts:
                _finish(
                    email,
                    email.claimed_at,
                    status=EmailStatus.FAILED,
                    attempts=attempts,
                    last_error=_describe(error),
                )
                counts["failed"] += 1
                logger.warning(
                    "e-mail %s failed for good after %s attempts: %s",
                    email.pk,
                    attempts,
                    _describe(error),
                )
            else:
                _finish(
                    email,
                    email.claimed_at,
                    status=EmailStatus.PENDING,
                    attempts=attempts,
                    next_attempt_at=now + _backoff(attempts),
                    last_error=_describe(error),
                )
                counts["retry"] += 1
                if opened_error is None and isinstance(error, smtplib.SMTPServerDisconnected):
                    opened_error = error  # the connection is gone: retry the rest later
    finally:
        # Closing a broken connection may fail too; the outcomes are recorded already.
        with contextlib.suppress(Exception):
            conn.close()
    return counts


def drain(now_fn: Any, batch: int = 50, max_batches: int = 20) -> dict[str, int]:
    total = {"sent": 0, "retry": 0, "failed": 0}
    for _ in range(max_batches):
        emails = claim(now_fn(), batch)
        if not emails:
            break
        for key, value in send_claimed(emails, now_fn).items():
            total[key] += value
    return total


@transaction.atomic
def retry_failed(email: OutboundEmail, now: datetime) -> OutboundEmail:
    from config.errors import Refused

    updated = OutboundEmail.objects.filter(pk=email.pk, status=EmailStatus.FAILED).update(
        status=EmailStatus.PENDING, attempts=0, next_attempt_at=now, last_error=""
    )
    if updated != 1:
        email.refresh_from_db()
        raise Refused(
            f"Only failed e-mails can be retried; this one is {email.status}.", code="not_failed"
        )
    transaction.on_commit(_kick_drain)
    email.refresh_from_db()
    return email


# --- digests -----------------------------------------------------------------------------


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


def build_digest(
    recipient: Recipient, team_ids: list[int], local_date: date, now: datetime
) -> Digest:
    """What one recipient would read now: their teams' unresolved alerts grouped by
    severity and course, and what changed since their last digest."""
    last = (
        OutboundEmail.objects.filter(
            kind=EmailKind.DIGEST, recipient=recipient.email, team_id__in=team_ids
        )
        .exclude(status=EmailStatus.FAILED)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    since = last or now - timedelta(days=1)
    alerts = list(
        Alert.objects.filter(state__in=UNRESOLVED, course__patient__team_id__in=team_ids)
        .select_related("course__patient")
        .order_by("course__patient__reference", "kind", "subject")
    )
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
                    "timeline_url": _links(a)["timeline_url"],
                    "alerts": [],
                },
            )
            entry["alerts"].append({"alert": a, "kind_label": KIND_LABELS[a.kind], **_links(a)})
        if courses:
            groups.append({"severity": severity, "courses": list(courses.values())})
    # Who did what, never the free text they typed: notes may hold anything, and
    # e-mails must carry no identifying data.
    changes = [
        {
            "at": e.at,
            "action": e.action,
            "kind_label": KIND_LABELS[e.alert.kind],
            "reference": e.alert.course.patient.reference,
            "by": e.actor.username if e.actor_id else "",
        }
        for e in AlertEvent.objects.filter(
            at__gt=since, at__lte=now, alert__course__patient__team_id__in=team_ids
        )
        .select_related("alert__course__patient", "actor")
        .order_by("at", "id")
    ]
    return Digest(recipient, local_date, team_ids, groups, changes, last)


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
    several teams gets one e-mail covering all of them)."""
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
    digests = []
    for recipient, team_ids in people.values():
        # Only the teams where this person wants the digest and belongs: never
        # another team's course.
        digests.append(build_digest(recipient, sorted(team_ids), due_teams[min(team_ids)], now))
    for r in addresses:
        digests.append(build_digest(r, [r.team_id], due_teams[r.team_id], now))
    return digests


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
            transaction.on_commit(_kick_drain)
    return len(created)
