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
