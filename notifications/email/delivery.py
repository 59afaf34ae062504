"""Delivery: claim due outbox rows, send them outside any transaction, record the
outcome, retry with backoff.

Delivery guarantees
-------------------
* Nothing lost: a notice is a row written in the same transaction as the alert change
  it reports. Beat drains pending rows every minute, so a task lost with the broker
  only delays them; a failed send is retried with exponential backoff (covering an
  SMTP outage of several hours) before the row is marked ``failed`` — visible in the
  API and the admin, where a coordinator can retry it.
* Nothing twice: ``idempotency_key`` is unique per (notice, recipient), so the sweep
  or a digest run writing the same notice again is a no-op. A worker claims due rows
  with a conditional UPDATE (after a ``SELECT ... FOR UPDATE SKIP LOCKED`` on
  PostgreSQL) that stamps them with a new claim token. A claim is per message and is
  checked at the moment of sending: right before each message the worker renews its
  claim with an UPDATE that must touch that row with its own token, and it records
  the outcome the same way. A worker that lost its claim (another worker took the row
  over after the lease) skips the row: it neither sends it nor overwrites the new
  holder's outcome.
* Bounded I/O, so a claim is never outlived: the renewal gives each message a whole
  lease, and the SMTP connect and per-operation timeout (``EMAIL_TIMEOUT``, lowered to
  a tenth of the lease if it is longer) bounds its SMTP exchange to half of it. A
  batch is sized by time as well as by count: it starts no message after a quarter of
  the lease and hands the rows it did not reach back at once, and the drain's next
  claim takes only as many as fitted. A drain task stops starting messages in time
  for its soft time limit (``drain_seconds``); cut off all the same, it hands back the
  rows it had not reached. So a slow or stalled server (tarpitting, greylisting, a
  network hang) delays mail but never makes two workers send it.
* The one at-least-once window lies between the end of a message's data and the
  row's update: a worker that dies after the SMTP server accepted a message (its 250)
  but before it marked the row ``sent`` leaves it ``sending``, and after
  ``REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS`` another worker sends it again; a server
  whose 250 does not arrive within the timeout may have accepted the message too, and
  the row is retried. The window is narrowed by marking the row right after the SMTP
  transaction, and made harmless for mail clients by a Message-ID derived from the
  idempotency key (the same message twice carries the same Message-ID, which clients
  and archives treat as one). Nothing else resends. The lease arithmetic assumes the
  workers' clocks agree to well within the lease (NTP): each stamps its own claims.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import smtplib
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from config.errors import Refused
from notifications.models import EmailStatus, OutboundEmail

logger = logging.getLogger(__name__)


# One message on an open connection is at most five blocking socket operations: the
# replies to MAIL, RCPT and DATA, sending the body, and the reply to the body.
SMTP_OPERATIONS_PER_MESSAGE = 5
# A batch starts no message after this fraction of the lease since its claim.
BATCH_LEASE_FRACTION = 0.25
COUNTS = ("sent", "retry", "failed", "skipped", "released")
# Errors after which the connection is unusable: the rest of the batch is retried later.
_CONNECTION_GONE = (smtplib.SMTPServerDisconnected, TimeoutError, ConnectionError)


def smtp_timeout() -> float:
    """The SMTP connect and per-operation timeout: ``EMAIL_TIMEOUT``, lowered if
    needed so that one message finishes within half the lease its renewal gave it."""
    cap = settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS / (2 * SMTP_OPERATIONS_PER_MESSAGE)
    configured = settings.EMAIL_TIMEOUT
    return min(configured, cap) if configured else cap


def message_id(idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@rezcourse.invalid>"


def kick_drain() -> None:
    """Queue a drain now (on commit of the rows it should send)."""
    from notifications.tasks import drain_outbox

    try:
        drain_outbox.apply_async(retry=False)
    except Exception:  # noqa: BLE001 - beat drains the outbox every minute anyway
        logger.warning("could not queue an outbox drain; beat will pick the rows up", exc_info=True)


def backoff(attempts: int) -> timedelta:
    base = settings.REZCOURSE_EMAIL_RETRY_BASE_SECONDS
    cap = settings.REZCOURSE_EMAIL_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** max(attempts - 1, 0)))


def claim(now: datetime, limit: int) -> list[OutboundEmail]:
    """Claim up to ``limit`` rows that are due: pending ones, and ``sending`` ones
    whose claim lease expired (their worker died or lost them). The claimed rows carry
    a claim token new to this call; only its holder may send them or record their
    outcome (see ``send_claimed``)."""
    lease = now - timedelta(seconds=settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS)
    due = Q(status=EmailStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=EmailStatus.SENDING, claimed_at__lte=lease
    )
    token = uuid.uuid4()
    with transaction.atomic():
        candidates = OutboundEmail.objects.filter(due).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            # Rows another worker is claiming right now are skipped, not waited for.
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        # The UPDATE checks again that each row is due: one that another worker
        # claimed, or whose holder renewed its claim, since it was read is left alone
        # (SQLite has no row locks to keep it out of the read).
        OutboundEmail.objects.filter(due, pk__in=ids).update(
            status=EmailStatus.SENDING, claimed_at=now, claim_token=token
        )
    return list(OutboundEmail.objects.filter(pk__in=ids, claim_token=token).order_by("id"))


def _holding(email: OutboundEmail) -> QuerySet[OutboundEmail]:
    """The row, if this worker still holds its claim."""
    return OutboundEmail.objects.filter(
        pk=email.pk, status=EmailStatus.SENDING, claim_token=email.claim_token
    )


def renew(email: OutboundEmail, now: datetime) -> bool:
    """Extend the claim on one row by a whole lease; False if it was taken over."""
    return _holding(email).update(claimed_at=now) == 1


def finish(email: OutboundEmail, **fields: Any) -> bool:
    """Record the outcome, only while holding the claim; False if it was taken over."""
    return _holding(email).update(claim_token=None, **fields) == 1


def release(emails: Sequence[OutboundEmail]) -> int:
    """Hand claimed rows back unsent (no attempt counted), for any worker to claim."""
    return OutboundEmail.objects.filter(
        pk__in=[e.pk for e in emails],
        status=EmailStatus.SENDING,
        claim_token__in={e.claim_token for e in emails},
    ).update(status=EmailStatus.PENDING, claim_token=None)


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


def _message(email: OutboundEmail, conn: Any) -> EmailMultiAlternatives:
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
    return message


def _outcome(
    email: OutboundEmail, error: Exception | None, now: datetime
) -> tuple[str, dict[str, Any]]:
    """What a send attempt means for the row: sent, retry later, or failed for good."""
    attempts = email.attempts + 1
    if error is None:
        return "sent", {
            "status": EmailStatus.SENT,
            "sent_at": now,
            "attempts": attempts,
            "last_error": "",
        }
    if _permanent(error) or attempts >= settings.REZCOURSE_EMAIL_MAX_ATTEMPTS:
        return "failed", {
            "status": EmailStatus.FAILED,
            "attempts": attempts,
            "last_error": _describe(error),
        }
    return "retry", {
        "status": EmailStatus.PENDING,
        "attempts": attempts,
        "next_attempt_at": now + backoff(attempts),
        "last_error": _describe(error),
    }


def _attempt(step: Callable[[], object]) -> Exception | None:
    """Run one SMTP step; return its error, if any, for ``_outcome`` to classify. The
    task's soft time limit is no answer from the server: it goes on up."""
    try:
        step()
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - classified by the caller
        return exc
    return None


def send_claimed(
    emails: Sequence[OutboundEmail],
    now_fn: Callable[[], datetime],
    deadline: datetime | None = None,
) -> dict[str, int]:
    """Send claimed rows over one SMTP connection, outside any transaction. Each row
    is sent only after renewing its claim, and skipped if the claim was lost. From
    ``deadline`` on no message is started: the rest is released."""
    counts = dict.fromkeys(COUNTS, 0)
    if not emails:
        return counts
    conn = get_connection(fail_silently=False, timeout=smtp_timeout())
    reached = 0  # the rows started on; an interruption hands back the others
    try:
        broken = _attempt(conn.open)  # SMTP down: every row is retried later
        for reached, email in enumerate(emails, start=1):
            now = now_fn()
            if deadline is not None and now >= deadline:
                counts["released"] = release(emails[reached - 1 :])
                break
            if not renew(email, now):
                counts["skipped"] += 1  # another worker holds it now and sends it
                continue
            error = broken or _attempt(lambda e=email: conn.send_messages([_message(e, conn)]))
            outcome, fields = _outcome(email, error, now_fn())
            if not finish(email, **fields):
                # Only if this one message outlasted the lease: the new holder records
                # the outcome (and may send it again, with the same Message-ID).
                counts["skipped"] += 1
                logger.warning("e-mail %s: claim lost while sending (%s)", email.pk, outcome)
                continue
            counts[outcome] += 1
            if outcome == "failed":
                logger.warning(
                    "e-mail %s failed for good after %s attempts: %s",
                    email.pk,
                    fields["attempts"],
                    fields["last_error"],
                )
            elif outcome == "retry" and isinstance(error, _CONNECTION_GONE):
                broken = error  # the connection is gone: retry the rest later
    except BaseException:
        # Interrupted (the soft time limit, a shutdown): the rows not reached go back
        # at once. The one being sent keeps its claim, as if its worker had died: the
        # server may have accepted it, and after the lease it goes again, with the
        # same Message-ID.
        with contextlib.suppress(Exception):
            release(emails[reached:])
        raise
    finally:
        # Closing a broken connection may fail too; the outcomes are recorded already.
        with contextlib.suppress(Exception):
            conn.close()
    return counts


def drain(
    now_fn: Callable[[], datetime],
    batch: int = 50,
    max_batches: int = 20,
    seconds: float | None = None,
) -> dict[str, int]:
    """Claim and send due rows, batch after batch, until none is due or ``seconds``
    have passed (no message is started after that). A batch is sized by count
    (``batch``) and by time (a quarter of the lease): when rows had to be handed back
    unsent, the next claim takes only as many as the last batch reached."""
    total = dict.fromkeys(COUNTS, 0)
    budget = timedelta(seconds=settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS * BATCH_LEASE_FRACTION)
    until = None if seconds is None else now_fn() + timedelta(seconds=seconds)
    size = batch
    for _ in range(max_batches):
        started = now_fn()
        if until is not None and started >= until:
            break
        emails = claim(started, size)
        if not emails:
            break
        deadline = started + budget if until is None else min(started + budget, until)
        counts = send_claimed(emails, now_fn, deadline=deadline)
        for key, value in counts.items():
            total[key] += value
        if counts["released"]:
            size = max(1, len(emails) - counts["released"])
    return total


def drain_seconds(soft_time_limit: float) -> float:
    """How long a drain task may keep starting messages: its soft time limit less the
    longest one message can take, so the drain ends by itself rather than be cut off
    mid-message (which would resend it after the lease). At least a quarter of the
    limit, should the timeout be set that long."""
    longest_message = SMTP_OPERATIONS_PER_MESSAGE * smtp_timeout()
    return max(soft_time_limit - longest_message, soft_time_limit / 4)


@transaction.atomic
def retry_failed(email: OutboundEmail, now: datetime) -> OutboundEmail:
    updated = OutboundEmail.objects.filter(pk=email.pk, status=EmailStatus.FAILED).update(
        status=EmailStatus.PENDING, attempts=0, next_attempt_at=now, last_error=""
    )
    if updated != 1:
        email.refresh_from_db()
        raise Refused(
            f"Only failed e-mails can be retried; this one is {email.status}.", code="not_failed"
        )
    transaction.on_commit(kick_drain)
    email.refresh_from_db()
    return email
