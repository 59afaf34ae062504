"""Celery tasks: thin wrappers around services. Every task is idempotent, so a
redelivery (acks_late, a worker crash) changes nothing."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from notifications import services

logger = logging.getLogger(__name__)


@shared_task(name="notifications.tasks.heartbeat")
def heartbeat() -> int:
    """Beat tick: proves beat and a worker are alive (seen in the admin and logs)."""
    beat = services.heartbeat_record("beat", timezone.now())
    logger.info("beat tick #%s at %s", beat.runs, beat.last_seen_at.isoformat())
    return beat.runs


@shared_task(name="notifications.tasks.sweep_alerts")
def sweep_alerts() -> dict[str, int]:
    """The periodic sweep over every active course (beat, every few minutes)."""
    counts = services.alerts_sweep(timezone.now()).counts()
    logger.info("alert sweep: %s", counts)
    return counts


@shared_task(name="notifications.tasks.evaluate_course")
def evaluate_course(course_id: int) -> dict[str, int]:
    """Re-evaluate one course right after something was recorded on it."""
    return services.alerts_sweep(timezone.now(), course_ids=[course_id]).counts()
