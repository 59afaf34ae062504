"""The one permission layer: team scoping for reads, team roles for writes.

* Scoping: :class:`TeamScopedMixin` filters every queryset to the requester's teams,
  so another team's object is simply not found (404) — never a 403 that would
  confirm it exists.
* Roles: :class:`TeamRolePermission` (installed as a default permission class) lets
  any member read, and lets only ``view.write_roles`` (clinician and coordinator by
  default) write — checked against the team of the object being changed, or of the
  team named in a create via :func:`require_team_role`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from teams.models import WRITE_ROLES, Team
from teams.selectors import has_team_role, team_ids_for, team_roles


def _write_roles(view: Any) -> frozenset[str]:
    return frozenset(getattr(view, "write_roles", WRITE_ROLES))


class TeamRolePermission(BasePermission):
    message = "Your role in this team does not allow this change."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS or getattr(view, "team_free_writes", False):
            return True
        # Someone who may write in none of their teams may write nowhere: refuse
        # before touching any object.
        allowed = _write_roles(view)
        return any(role in allowed for role in team_roles(request.user).values())

    def has_object_permission(self, request: Request, view: Any, obj: Model) -> bool:
        if request.method in SAFE_METHODS or getattr(view, "team_free_writes", False):
            return True
        team_id = view.team_id_of(obj) if hasattr(view, "team_id_of") else None
        return team_id is not None and has_team_role(request.user, team_id, _write_roles(view))


def require_team_role(request: Request, team: Team | int, roles: frozenset[str]) -> None:
    """For creates: the requester must hold one of ``roles`` in the target team."""
    team_id = team if isinstance(team, int) else team.pk
    if not has_team_role(request.user, team_id, roles):
        raise PermissionDenied("Your role in this team does not allow this change.")


class TeamScopedMixin:
    """ViewSet mixin: restrict the queryset to the requester's teams.

    ``team_lookup`` is the ORM path from the model to its Team (``"team"``,
    ``"patient__team"``, ``"course__patient__team"``...).
    """

    team_lookup: str = "team"
    request: Request

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()  # type: ignore[misc]
        return queryset.filter(**{f"{self.team_lookup}__in": team_ids_for(self.request.user)})

    def team_id_of(self, obj: Model) -> int | None:
        *path, last = self.team_lookup.split("__")
        for attribute in path:
            obj = getattr(obj, attribute)
        if last == "id" or last == "pk":
            return obj.pk
        return getattr(obj, f"{last}_id")
