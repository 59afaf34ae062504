"""Reads of the history: what a user may see."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from history.models import Entry
from teams.selectors import team_ids_for


def history_for(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Entry]:
    """The entries of the user's teams (any role, viewers too), and those of the user's
    own tokens; newest first. Another team's history is simply absent."""
    if not user.is_authenticated:
        return Entry.objects.none()
    return (
        Entry.objects.filter(
            Q(team_id__in=team_ids_for(user)) | Q(team_id__isnull=True, owner_id=user.pk)
        )
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-id")
    )
