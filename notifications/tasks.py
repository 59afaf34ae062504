"""Celery tasks: thin wrappers around services. Every task is idempotent, so a
redelivery (acks_late, a worker crash) changes nothing.

Every task has a soft and a hard time limit (prefork pool): the soft one raises
SoftTimeLimitExceeded inside the task, so its transaction rolls back and nothing is
half-written; the hard one kills a task stuck where Python cannot interrupt it (a hung
socket). Each limit is sized to the task below; none leaves a worker held for ever.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from notifications import services
from notifications.email import drain, drain_seconds, enqueue_digests

logger = logging.getLogger(__name__)


# One upsert: anything slower means the database is stuck, and the heartbeat's point is
# to show that.
@shared_task(name="notifications.tasks.heartbeat", soft_time_limit=10, time_limit=30)
def heartbeat() -> int:
    """Beat tick: proves beat and a worker are alive (seen in the admin and logs)."""
    beat = services.heartbeat_record("beat", timezone.now())
    logger.info("beat tick #%s at %s", beat.runs, beat.last_seen_at.isoformat())
    return beat.runs


# The opening sweep of 100k courses takes about 22 s, a steady one about 1 s
# (docs/benchmarks.md). Both limits stay under the 5-minute beat interval, so a stuck
# sweep is gone (its transaction rolled back, the sweep lock released) before the next.
@shared_task(name="notifications.tasks.sweep_alerts", soft_time_limit=240, time_limit=270)
def sweep_alerts() -> dict[str, int]:
    """The periodic sweep over every active course (beat, every few minutes)."""
    counts = services.alerts_sweep(timezone.now()).counts()
    logger.info("alert sweep: %s", counts)
    return counts


# One course is milliseconds, but it may wait for the lock of a running full sweep.
# Past a minute it gives up: the next periodic sweep re-reads every course anyway.
@shared_task(name="notifications.tasks.evaluate_course", soft_time_limit=60, time_limit=90)
def evaluate_course(course_id: int) -> dict[str, int]:
    """Re-evaluate one course right after something was recorded on it."""
    return services.alerts_sweep(timezone.now(), course_ids=[course_id]).counts()


# Each message renews its own claim, so the limits need not fit in the claim lease. The
# drain stops starting messages early enough (drain_seconds) that the soft limit does
# not cut one off (which would resend it after the lease); if the soft limit still
# comes, the drain hands back the rows it had not reached. The hard limit only ends a
# drain stuck where Python cannot interrupt it; its rows wait for the lease.
DRAIN_SOFT_TIME_LIMIT = 240


@shared_task(
    name="notifications.tasks.drain_outbox",
    soft_time_limit=DRAIN_SOFT_TIME_LIMIT,
    time_limit=DRAIN_SOFT_TIME_LIMIT + 60,
)
def drain_outbox() -> dict[str, int]:
    """Send what is due in the outbox (queued after each write, and by beat every
    minute to pick up rows whose task was lost and retries that came due)."""
    counts = drain(timezone.now, seconds=drain_seconds(DRAIN_SOFT_TIME_LIMIT))
    if any(counts.values()):
        logger.info("outbox: %s", counts)
    return counts


# Writes (does not send) one digest per recipient whose team's hour has come; well
# under the 15-minute beat interval, and idempotent if cut short.
@shared_task(name="notifications.tasks.send_digests", soft_time_limit=120, time_limit=180)
def send_digests() -> int:
    """Write today's digests for teams past their local digest hour (idempotent)."""
    written = enqueue_digests(timezone.now())
    if written:
        logger.info("digests written: %s", written)
    return written
