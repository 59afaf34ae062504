from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F

from notifications.models import Heartbeat


@transaction.atomic
def heartbeat_record(name: str, now: datetime) -> Heartbeat:
    """Upsert the job's heartbeat; concurrent workers each add one run."""
    updated = Heartbeat.objects.filter(name=name).update(last_seen_at=now, runs=F("runs") + 1)
    if not updated:
        Heartbeat.objects.get_or_create(name=name, defaults={"last_seen_at": now, "runs": 1})
    return Heartbeat.objects.get(name=name)
