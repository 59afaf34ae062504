"""Reads about who belongs where. The per-request role map is cached on the user
object so permission checks and queryset scoping cost one query per request."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from teams.models import Membership, Role, Team

_CACHE_ATTR = "_rezcourse_team_roles"


def team_roles(user: AbstractBaseUser | AnonymousUser) -> dict[int, str]:
    """{team_id: role} for the user's teams (empty for anonymous users)."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("team_id", "role"))
        setattr(user, _CACHE_ATTR, cached)
    return cached


def team_ids_for(user: AbstractBaseUser | AnonymousUser) -> list[int]:
    return list(team_roles(user))


def teams_for(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    return Team.objects.filter(pk__in=team_ids_for(user))


def is_last_coordinator(membership: Membership, *, lock: bool = False) -> bool:
    """Whether the team would lose its last coordinator without this membership.
    ``lock``: hold the other coordinators' rows (FOR UPDATE) until the transaction ends,
    so two concurrent removals cannot both pass."""
    others = Membership.objects.filter(team_id=membership.team_id, role=Role.COORDINATOR).exclude(
        pk=membership.pk
    )
    if lock:
        others = others.select_for_update()
    return membership.role == Role.COORDINATOR and not others.exists()


def has_team_role(
    user: AbstractBaseUser | AnonymousUser, team_id: int, roles: frozenset[str]
) -> bool:
    return team_roles(user).get(team_id) in roles
