from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from notifications.models import Alert, AlertState
from notifications.services import SweepResult, alerts_sweep

START = "2026-11-24T10:00:00+00:00"


@pytest.fixture
def clock(time_machine: Any) -> Callable[[str], datetime]:
    """clock("2026-12-08") -> move the frozen time to that day, 10:00 UTC (11:00 in
    the teams' Europe/Berlin)."""

    def move(day: str) -> datetime:
        time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)
        return timezone.now()

    move(START[:10])
    return move


@pytest.fixture
def sweep() -> Callable[..., SweepResult]:
    def run(**kwargs: Any) -> SweepResult:
        return alerts_sweep(timezone.now(), **kwargs)

    return run


def unresolved(course: Any, kind: str) -> list[Alert]:
    return list(Alert.objects.filter(course=course, kind=kind).exclude(state=AlertState.RESOLVED))
