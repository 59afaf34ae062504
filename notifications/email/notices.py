"""Immediate notices: the outbox rows an alert change writes, in the alert's own
transaction, so the e-mails exist exactly when the change they report does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string

from notifications.email.delivery import kick_drain
from notifications.email.recipients import notice_rank, reaches, recipients_for
from notifications.models import Alert, EmailKind, OutboundEmail

KIND_LABELS = dict(Alert._meta.get_field("kind").choices)


def links(alert: Alert) -> dict[str, str]:
    # The web app's course page (web/urls.py "web:course"), opened at the alert or the
    # timeline; the sign-in page comes first when needed and keeps the anchor.
    course = f"{settings.REZCOURSE_BASE_URL.rstrip('/')}/courses/{alert.course_id}/"
    return {"alert_url": f"{course}#alert-{alert.pk}", "timeline_url": f"{course}#timeline"}


def enqueue_alert_notices(opened: Sequence[Any], escalated: Sequence[Any], now: datetime) -> int:
    """Outbox rows for newly opened and escalated alerts (anything with a ``pk``, a
    ``severity`` and an ``escalation_level``), in the caller's transaction.

    The recipients come first (every team's: a handful of rows), and only the alerts
    loud enough for the least demanding of them are loaded, of the teams that have
    them: an opening sweep of tens of thousands of alerts that reach nobody loads
    none. A constant number of queries: the recipients, the alerts, one INSERT."""
    events = [("opened", a) for a in opened] + [("escalated", a) for a in escalated]
    if not events:
        return 0
    recipients = recipients_for(None)
    thresholds = [r.threshold for rs in recipients.values() for r in rs if r.threshold]
    if not thresholds:
        return 0
    lowest = min(thresholds)
    heard = [(event, a.pk) for event, a in events if notice_rank(a) >= lowest]
    if not heard:
        return 0
    alerts = {
        a.pk: a
        for a in Alert.objects.filter(
            pk__in_array=[pk for _, pk in heard], course__patient__team_id__in=list(recipients)
        ).select_related("course__patient")
    }
    rows = []
    for event, pk in heard:
        alert = alerts.get(pk)
        if alert is None:  # its team has no recipient
            continue
        team_id = alert.course.patient.team_id
        for recipient in recipients.get(team_id, []):
            if not reaches(alert, recipient):
                continue
            key = f"alert:{pk}:{event}:{alert.escalation_level}:{recipient.ident}"
            context = {
                "alert": alert,
                "event": event,
                "kind_label": KIND_LABELS[alert.kind],
                "reference": alert.course.patient.reference,
                **links(alert),
            }
            rows.append(
                OutboundEmail(
                    team_id=team_id,
                    user_id=recipient.user_id,
                    recipient=recipient.email,
                    kind=EmailKind.IMMEDIATE,
                    alert=alert,
                    subject=_subject(alert, event),
                    body_text=render_to_string("notifications/email/alert.txt", context),
                    body_html=render_to_string("notifications/email/alert.html", context),
                    idempotency_key=key,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    OutboundEmail.objects.bulk_create(rows, ignore_conflicts=True)
    if rows:
        transaction.on_commit(kick_drain)
    return len(rows)


def _subject(alert: Alert, event: str) -> str:
    # Only the pseudonymous course reference and the alert kind: subjects travel
    # through mail systems and phone lock screens.
    escalation = f" (escalated, level {alert.escalation_level})" if event == "escalated" else ""
    return (
        f"[rezcourse] {alert.severity.upper()}: {KIND_LABELS[alert.kind]} - course "
        f"{alert.course.patient.reference}{escalation}"
    )
