"""Re-evaluate a course's alerts as soon as something is recorded on it.

Every write on a course leaves an AuditEntry or a CourseTransition (courses' own
rule), so those two are the only signals needed. The task is queued after commit,
never inside the transaction; if the broker is down, the save still succeeds and the
next periodic sweep catches the course up (alerts are derived from state, not from
events that could be lost).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from courses.models import AuditEntry, CourseTransition

logger = logging.getLogger(__name__)


def _queue(course_id: int) -> None:
    from notifications.tasks import evaluate_course

    try:
        # No publish retries: a request must not hang on a dead broker.
        evaluate_course.apply_async((course_id,), retry=False)
    except Exception:  # noqa: BLE001 - any broker failure: the sweep will catch up
        logger.warning(
            "could not queue alert re-evaluation for course %s; the next sweep will",
            course_id,
            exc_info=True,
        )


@receiver(post_save, sender=AuditEntry, dispatch_uid="alerts-on-audit")
@receiver(post_save, sender=CourseTransition, dispatch_uid="alerts-on-transition")
def reevaluate_after_commit(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        course_id = instance.course_id
        transaction.on_commit(lambda: _queue(course_id))
