"""The web app's own data: personal calendar feeds.

A feed URL carries a secret token; only its SHA-256 is stored, so a database dump or
an admin screen never shows a working feed address. One feed per user: rotating
replaces the hash (the old address stops at once), revoking deletes the row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CalendarFeed(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"calendar feed of {self.user} (since {self.created_at:%Y-%m-%d})"
