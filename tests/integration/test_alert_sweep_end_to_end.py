"""End to end on real services: beat schedules the sweep, a real worker runs it from
Redis, and the alert appears in PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from celery import beat
from django.utils import timezone

from config.celery import app as celery_app
from courses.models import TreatmentCourse
from notifications.models import Alert, AlertKind

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_beat_and_a_worker_open_an_alert(
    postgres, celery_worker, tmp_path, team, clinician, make_course
):
    course = make_course(team, clinician)  # group A: HSCT indicated
    # Stratified 20 days ago with no referral: past the 14-day threshold.
    TreatmentCourse.objects.filter(pk=course.pk).update(
        start_date=timezone.localdate() - timedelta(days=20)
    )
    saved = celery_app.conf.beat_schedule
    celery_app.conf.beat_schedule = {
        "alerts-sweep": {"task": "notifications.tasks.sweep_alerts", "schedule": 1.0},
    }
    service = beat.Service(
        celery_app, max_interval=0.5, schedule_filename=str(tmp_path / "beat-schedule")
    )
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if Alert.objects.filter(course=course, kind=AlertKind.HSCT_REFERRAL_MISSING).exists():
                break
            time.sleep(0.3)
        else:
            pytest.fail("beat + worker did not open the alert within 45 s")
    finally:
        service.stop()
        thread.join(timeout=10)
        celery_app.conf.beat_schedule = saved
    alert = Alert.objects.get(course=course, kind=AlertKind.HSCT_REFERRAL_MISSING)
    assert alert.state == "open" and alert.severity == "high"
