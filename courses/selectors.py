"""Reads on courses: scoped querysets. What the dashboards read (the timeline with its
alerts, the delay statistics, the outcomes) lives in the ``reports`` app."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from courses.models import TreatmentCourse
from teams.selectors import team_ids_for


def courses_for(user: AbstractBaseUser) -> QuerySet[TreatmentCourse]:
    return TreatmentCourse.objects.filter(patient__team_id__in=team_ids_for(user)).select_related(
        "patient"
    )
