"""Who hears about a team's alerts: members with an e-mail address (with their
preferences, or the defaults) and the team's distribution address."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from notifications.models import (
    DEFAULT_DIGEST,
    DEFAULT_IMMEDIATE_MIN_SEVERITY,
    SEVERITY_RANK,
    Alert,
)
from teams.models import Membership, Role, Team


@dataclass(frozen=True)
class Recipient:
    team_id: int
    user_id: int | None
    email: str
    immediate_min_severity: str | None
    digest: bool

    @property
    def threshold(self) -> int | None:
        """The lowest notice rank (:func:`notice_rank`) that reaches them at once."""
        if self.immediate_min_severity is None:
            return None
        return SEVERITY_RANK[self.immediate_min_severity]

    @property
    def ident(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"address:{self.email.lower()}"


def recipients_for(team_ids: Iterable[int] | None) -> dict[int, list[Recipient]]:
    """Members with an e-mail address (and their preferences, or the defaults), plus
    each team's distribution address, for ``team_ids`` (None: every team). Two
    queries whatever the number of teams."""
    by_team: dict[int, list[Recipient]] = defaultdict(list)
    memberships = Membership.objects.filter(user__is_active=True)
    teams = Team.objects.all()
    if team_ids is not None:
        team_ids = list(team_ids)
        memberships = memberships.filter(team_id__in=team_ids)
        teams = teams.filter(pk__in=team_ids)
    memberships = memberships.exclude(user__email="").select_related(
        "user", "notification_preference"
    )
    for m in memberships:
        pref = getattr(m, "notification_preference", None)
        by_team[m.team_id].append(
            Recipient(
                m.team_id,
                m.user_id,
                m.user.email,
                immediate_min_severity(m.role, pref),
                pref.digest if pref else DEFAULT_DIGEST,
            )
        )
    for team_id, address in teams.exclude(distribution_email="").values_list(
        "pk", "distribution_email"
    ):
        by_team[team_id].append(
            Recipient(team_id, None, address, DEFAULT_IMMEDIATE_MIN_SEVERITY, DEFAULT_DIGEST)
        )
    return by_team


def immediate_min_severity(role: str, pref: Any) -> str | None:
    """The lowest severity a member hears about at once. Immediate e-mails go to the
    members who can act on an alert (clinicians, coordinators); a viewer gets the
    digest only, unless they opted in (``viewer_immediate_opt_in``)."""
    if role == Role.VIEWER and not (pref is not None and pref.viewer_immediate_opt_in):
        return None
    return pref.immediate_min_severity if pref is not None else DEFAULT_IMMEDIATE_MIN_SEVERITY


def reaches(alert: Alert | Any, recipient: Recipient) -> bool:
    """An alert reaches a recipient at or above their severity; each escalation level
    counts as one step up, so an unacknowledged medium alert reaches the people who
    only hear about high ones once it has escalated. ``alert``: anything with a
    ``severity`` and an ``escalation_level``."""
    threshold = recipient.threshold
    return threshold is not None and notice_rank(alert) >= threshold


def notice_rank(alert: Alert | Any) -> int:
    """The severity an alert is heard at: its rank plus its escalation level."""
    return SEVERITY_RANK[alert.severity] + alert.escalation_level
