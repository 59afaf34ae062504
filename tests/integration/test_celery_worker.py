"""A real Celery worker, started from the test, consuming from the real Redis."""

from __future__ import annotations

import time

import pytest

from notifications.models import Heartbeat
from notifications.tasks import heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_on_redis_runs_the_heartbeat_task_end_to_end(celery_worker):
    heartbeat.delay()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if Heartbeat.objects.filter(name="beat", runs__gte=1).exists():
            break
        time.sleep(0.2)
    else:
        pytest.fail("the worker did not run the heartbeat task within 30 s")
    assert Heartbeat.objects.get(name="beat").runs == 1
