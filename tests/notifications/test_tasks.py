"""Every Celery task has time limits that fit it (reasons in notifications/tasks.py)."""

from __future__ import annotations

import pytest
from django.conf import settings

from config.celery import app
from notifications import tasks

TASKS = [
    tasks.heartbeat,
    tasks.sweep_alerts,
    tasks.evaluate_course,
    tasks.drain_outbox,
    tasks.send_digests,
]


def test_every_project_task_is_listed_here():
    ours = {name for name in app.tasks if name.startswith("notifications.")}
    assert ours == {t.name for t in TASKS}


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_task_has_a_soft_limit_below_its_hard_limit(task):
    assert task.soft_time_limit is not None and task.time_limit is not None
    assert 0 < task.soft_time_limit < task.time_limit


def test_a_stuck_sweep_is_gone_before_beat_starts_the_next():
    assert tasks.sweep_alerts.time_limit < settings.CELERY_BEAT_SCHEDULE["alerts-sweep"]["schedule"]


def test_a_drain_never_outlives_the_claim_lease_of_its_rows():
    assert tasks.drain_outbox.time_limit < settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS
