"""``course_changed``: a course's record changed, announced after commit.

The course services call :func:`announce` for every course they write on. The signal
is sent once per course per transaction, after the transaction commits -- never for
work that rolled back, and never twice because one request wrote several audit
entries and a transition. Receivers get ``course_id`` and run outside the
transaction; courses does not know who listens (notifications re-evaluates the
course's alerts).
"""

from __future__ import annotations

import django.dispatch
from django.db import DEFAULT_DB_ALIAS, transaction

# Sent with sender=None and course_id=<int>.
course_changed = django.dispatch.Signal()


class _Announcement:
    """The on_commit callback for one course: recognisable in the connection's
    pending callbacks, so a second write in the same transaction finds it queued."""

    __slots__ = ("course_id", "sent")

    def __init__(self, course_id: int) -> None:
        self.course_id = course_id
        self.sent = False

    def __call__(self) -> None:
        self.sent = True
        course_changed.send(sender=None, course_id=self.course_id)

    def __repr__(self) -> str:
        return f"course_changed(course_id={self.course_id})"


def _pending_for(callback: object, course_id: int) -> bool:
    return (
        isinstance(callback, _Announcement)
        and callback.course_id == course_id
        and not callback.sent
    )


def announce(course_id: int, using: str = DEFAULT_DB_ALIAS) -> None:
    """Send ``course_changed`` for this course when the outermost transaction commits
    (at once in autocommit), unless it is already queued in this transaction.

    The pending callbacks are read from the connection itself: a savepoint that rolls
    back drops its callbacks there, so an announcement made inside it does not count
    and a later write announces again. ``sent`` covers test helpers that run the
    callbacks of a still-open transaction (captureOnCommitCallbacks)."""
    connection = transaction.get_connection(using)
    if connection.in_atomic_block and any(
        isinstance(callback, _Announcement)
        and callback.course_id == course_id
        and not callback.sent
        for _, callback, _ in connection.run_on_commit
    ):
        return
    # robust: a failing receiver must not turn a committed write into an error.
    transaction.on_commit(_Announcement(course_id), using=using, robust=True)
