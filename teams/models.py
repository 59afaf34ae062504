"""Teams and memberships: who may see and do what.

Every patient belongs to one team and every query is scoped to the requester's teams.
Roles are per team: a person may coordinate one team and only view another.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a known IANA time zone (e.g. Europe/Berlin).")


class Team(models.Model):
    # Not unique across the site: the slug is the team's identifier. A rename that
    # collided with another site's team name would otherwise confirm that it exists
    # (docs/decisions.md); names are unique among the teams one person belongs to.
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    # Local calendar of the team: digests go out at the team's local hour, and
    # "today" for clinical dates is the team's date (Team.today).
    time_zone = models.CharField(
        max_length=64, default="Europe/Berlin", validators=[validate_time_zone]
    )
    # The daily alert digest goes out at this hour of the team's local time.
    digest_hour = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(0), MaxValueValidator(23)]
    )
    # A shared mailbox (e.g. the study office) that receives what a coordinator would
    # by default: high-severity alerts at once and the daily digest.
    distribution_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def today(self, now: datetime) -> date:
        return now.astimezone(zoneinfo.ZoneInfo(self.time_zone)).date()


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer (read only)"
    CLINICIAN = "clinician", "Clinician"
    COORDINATOR = "coordinator", "Coordinator"


# Roles allowed to record clinical data and move courses.
WRITE_ROLES: frozenset[str] = frozenset({Role.CLINICIAN, Role.COORDINATOR})
# Roles allowed to manage the team itself (members, settings).
ADMIN_ROLES: frozenset[str] = frozenset({Role.COORDINATOR})


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"
