from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone


@pytest.fixture(autouse=True)
def frozen_time(time_machine: Any) -> datetime:
    time_machine.move_to(datetime.fromisoformat("2026-11-24T10:00:00+00:00"), tick=False)
    return timezone.now()
