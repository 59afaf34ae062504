"""Reads about who belongs where. The requester's memberships (with their teams) are
cached on the user object so permission checks, queryset scoping and the teams'
calendar dates cost one query per request."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Case, DateField, QuerySet, Value, When

from teams.models import Membership, Role, Team

_CACHE_ATTR = "_rezcourse_memberships"


def _memberships(user: AbstractBaseUser | AnonymousUser) -> dict[int, Membership]:
    """{team_id: membership, its team loaded} for the user's teams (empty for anonymous
    users)."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        cached = {m.team_id: m for m in Membership.objects.filter(user=user).select_related("team")}
        setattr(user, _CACHE_ATTR, cached)
    return cached


def team_roles(user: AbstractBaseUser | AnonymousUser) -> dict[int, str]:
    """{team_id: role} for the user's teams (empty for anonymous users)."""
    return {team_id: m.role for team_id, m in _memberships(user).items()}


def team_ids_for(user: AbstractBaseUser | AnonymousUser) -> list[int]:
    return list(_memberships(user))


def sole_team(user: AbstractBaseUser | AnonymousUser) -> Team | None:
    """The user's team when they belong to exactly one, else None (no query beyond the
    membership one)."""
    memberships = _memberships(user)
    return next(iter(memberships.values())).team if len(memberships) == 1 else None


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


def team_dates(user: AbstractBaseUser | AnonymousUser, now: datetime) -> dict[int, date]:
    """{team_id: the team's calendar date at ``now``} for the user's teams: what
    "today" means for each team's rows (no query beyond the membership one)."""
    return {team_id: m.team.today(now) for team_id, m in _memberships(user).items()}


def file_date(dates: Mapping[int, date], now: datetime) -> date:
    """The date an export's file is named after: its teams' today (the latest, where
    their dates differ around midnight UTC; the UTC date for no team at all)."""
    return max(dates.values(), default=now.date())


def on_team_date(dates: Mapping[int, date], team_id_path: str) -> Case | Value:
    """Each row's team's calendar date as one SQL expression, for rows whose team id is
    at ``team_id_path`` (e.g. ``"course__patient__team_id"``) and whose teams are the
    keys of ``dates`` (see :func:`team_dates`).

    A constant when the teams share one date, which is the usual case; otherwise one
    branch per distinct date. The world's time zones span at most three dates at any
    moment, so the expression stays small however many teams there are."""
    teams_by_date: dict[date, list[int]] = defaultdict(list)
    for team_id, day in dates.items():
        teams_by_date[day].append(team_id)
    if len(teams_by_date) <= 1:
        return Value(next(iter(teams_by_date), date.min), output_field=DateField())
    return Case(
        *(
            When(**{f"{team_id_path}__in": sorted(ids)}, then=Value(day))
            for day, ids in sorted(teams_by_date.items())
        ),
        default=Value(max(teams_by_date)),
        output_field=DateField(),
    )


def account_to_add(identifier: str) -> AbstractBaseUser | None:
    """The account a coordinator means by ``identifier``: its exact username, or its
    e-mail address (case-insensitive) when exactly one account has it. Only active
    accounts that are not superusers (site operators join teams in the admin). None
    for anything else, whatever the reason, so the answer tells nothing about which
    accounts exist (docs/decisions.md)."""
    candidates = get_user_model().objects.filter(is_active=True, is_superuser=False)
    by_username = list(candidates.filter(username=identifier)[:1])
    if by_username:
        return by_username[0]
    if "@" not in identifier:
        return None
    by_email = list(candidates.filter(email__iexact=identifier)[:2])
    return by_email[0] if len(by_email) == 1 else None
