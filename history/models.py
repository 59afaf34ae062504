"""The history of every write: django-auditlog's log entry, with the channel it came
through and the team (or, for a user's own tokens, the user) it belongs to.

django-auditlog writes an entry from the model signals of every tracked model
(history/registry.py): who (the actor), when (``timestamp``), what changed
(``changes``: ``{field: [before, after]}`` as JSON values) and, added here, through
which channel (history/context.py). ``team_id`` and ``owner_id`` are plain integers,
not foreign keys: the history outlives what it describes, and this app sits above the
apps whose rows it records without being imported by them.
"""

from __future__ import annotations

from typing import Any

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.db import models

from history.context import Channel, current


class EntryManager(LogEntryManager):
    def log_create(self, instance: Any, force_log: bool = False, **kwargs: Any) -> Any:
        from history.registry import scope_of

        here = current()
        kwargs.setdefault("channel", here.channel)
        kwargs.setdefault("actor", here.user())
        team_id, owner_id = scope_of(instance)
        kwargs.setdefault("team_id", team_id)
        kwargs.setdefault("owner_id", owner_id)
        return super().log_create(instance, force_log, **kwargs)


class Entry(AbstractLogEntry):
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # The team whose data changed; None for a user's own settings (``owner_id``).
    team_id = models.BigIntegerField(null=True, blank=True)
    # The user a row belongs to (a membership, a token, a preference), if any.
    owner_id = models.BigIntegerField(null=True, blank=True)

    objects = EntryManager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "history entry"
        verbose_name_plural = "history"
        indexes = [
            # The team's history, newest first (the API's list).
            models.Index(fields=["team_id", "-timestamp", "-id"], name="history_team_latest"),
            models.Index(fields=["owner_id", "-timestamp", "-id"], name="history_owner_latest"),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("History entries are append-only.")
        super().save(*args, **kwargs)
