"""Re-evaluate a course's alerts as soon as something is recorded on it.

The course services announce every change with ``courses.signals.course_changed``,
once per course per transaction and only after it committed; this is the one
receiver. If the broker is down, the write has succeeded already and the next periodic
sweep catches the course up (alerts are derived from state, not from events that
could be lost).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from django.dispatch import receiver

from courses.signals import course_changed

logger = logging.getLogger(__name__)
DISPATCH_UID = "alerts-on-course-changed"


@receiver(course_changed, dispatch_uid=DISPATCH_UID)
def reevaluate(sender: Any, course_id: int, **kwargs: Any) -> None:
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


@contextlib.contextmanager
def reevaluation_held_back() -> Iterator[None]:
    """Writes inside queue no re-evaluation: for a bulk write (the demo cohort) that
    sweeps every course once afterwards, instead of a task per course for nothing."""
    course_changed.disconnect(dispatch_uid=DISPATCH_UID)
    try:
        yield
    finally:
        course_changed.connect(reevaluate, dispatch_uid=DISPATCH_UID)
