"""The e-mail outbox.

* ``recipients``: who hears about a team's alerts, and which alerts reach whom.
* ``notices``: the rows an opened or escalated alert writes, in its own transaction.
* ``delivery``: claiming due rows, sending them, recording the outcome, retrying with
  backoff; the delivery guarantees are in its docstring.
* ``digests``: the daily digest per recipient.

Other modules use the names below, not the submodules.
"""

from notifications.email.delivery import (
    drain,
    drain_seconds,
    kick_drain,
    message_id,
    retry_failed,
)
from notifications.email.digests import (
    Digest,
    build_digest,
    build_digests,
    digests_due,
    enqueue_digests,
    render_digest,
)
from notifications.email.notices import enqueue_alert_notices
from notifications.email.recipients import Recipient, recipients_for

__all__ = [
    "Digest",
    "Recipient",
    "build_digest",
    "build_digests",
    "digests_due",
    "drain",
    "drain_seconds",
    "enqueue_alert_notices",
    "enqueue_digests",
    "kick_drain",
    "message_id",
    "recipients_for",
    "render_digest",
    "retry_failed",
]
