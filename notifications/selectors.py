from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from notifications.models import Alert
from teams.selectors import team_ids_for


def alerts_for(user: AbstractBaseUser) -> QuerySet[Alert]:
    return Alert.objects.filter(course__patient__team_id__in=team_ids_for(user)).select_related(
        "course__patient", "acknowledged_by", "resolved_by"
    )
