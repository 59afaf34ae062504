"""Writes of the web app: its own (calendar feed tokens) and one composition of the
courses services (open a course and confirm its stratification in one step).

Clinical writes go through ``courses.services`` and ``notifications.services`` exactly
as the API's do; nothing here re-implements a rule.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from courses import services as course_services
from courses.models import Relapse, TreatmentCourse
from web.models import CalendarFeed


def feed_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def feed_rotate(user: AbstractBaseUser, now: datetime) -> str:
    """A new secret feed token for ``user``; the old one (if any) stops working at
    once. Returns the token: it is shown once and never stored."""
    token = secrets.token_urlsafe(32)
    CalendarFeed.objects.update_or_create(
        user=user, defaults={"token_hash": feed_token_hash(token), "created_at": now}
    )
    return token


@transaction.atomic
def feed_revoke(user: AbstractBaseUser) -> None:
    CalendarFeed.objects.filter(user=user).delete()


@transaction.atomic
def course_open(
    relapse: Relapse,
    *,
    protocol_slug: str,
    risk_group: str | None,
    reason: str,
    actor: AbstractBaseUser,
    now: datetime,
    confirm_implausible: bool = False,
    implausible_reason: str = "",
    start_date: date | None = None,
) -> TreatmentCourse:
    """Open the course (the engine proposes) and, unless ``risk_group`` is None,
    confirm that group in the same transaction: a refused confirmation (no group, or
    another group without a reason) leaves no half-registered course behind. With
    None the course waits in "needs review" for a clinician."""
    course = course_services.course_create(
        relapse=relapse,
        protocol_slug=protocol_slug,
        confirm_implausible=confirm_implausible,
        implausible_reason=implausible_reason,
        actor=actor,
        now=now,
    )
    if risk_group is not None:
        course = course_services.course_confirm_stratification(
            course,
            risk_group=risk_group,
            reason=reason,
            start_date=start_date,
            actor=actor,
            now=now,
        )
    return course
