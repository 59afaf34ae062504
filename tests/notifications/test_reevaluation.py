"""Saving a record re-evaluates that course after commit; a dead broker loses nothing."""

from __future__ import annotations

import logging

import pytest

from config.celery import app as celery_app
from notifications.models import AlertKind, AlertState
from tests.conftest import fresh_broker_connections
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerted(clock, sweep, team, clinician, make_course):  # noqa: ANN001, ANN201
    course = make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    return course, alert


def test_recording_the_referral_resolves_the_alert_without_waiting_for_the_sweep(
    api, clinician, alerted, django_capture_on_commit_callbacks
):
    course, alert = alerted
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api(clinician).put(
            f"/api/v1/courses/{course.pk}/hsct-referral/",
            {"referred_on": "2026-12-08"},
            format="json",
        )
    assert response.status_code == 200
    assert callbacks, "a re-evaluation was queued after commit"
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_nothing_is_queued_when_the_write_is_refused(
    api, clinician, alerted, django_capture_on_commit_callbacks
):
    course, _ = alerted
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api(clinician).put(
            f"/api/v1/courses/{course.pk}/hsct-referral/",
            {"referred_on": "2030-01-01"},
            format="json",
        )
    assert response.status_code == 400
    assert callbacks == []


def test_with_the_broker_down_the_save_succeeds_and_the_next_sweep_catches_up(
    api, clinician, alerted, sweep, django_capture_on_commit_callbacks, caplog
):
    course, alert = alerted
    from django.conf import settings

    saved = {
        k: celery_app.conf[k]
        for k in ("broker_url", "task_always_eager", "broker_transport_options")
    }
    # Nothing listens on port 1: publishing fails; with the Redis transport options of
    # the settings (bounded retries) it fails within about a second.
    celery_app.conf.update(
        broker_url="redis://127.0.0.1:1/0",
        task_always_eager=False,
        broker_transport_options=settings.REZCOURSE_BROKER_PUBLISH_RETRY,
    )
    fresh_broker_connections()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="notifications.signals"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            response = api(clinician).put(
                f"/api/v1/courses/{course.pk}/hsct-referral/",
                {"referred_on": "2026-12-08"},
                format="json",
            )
    finally:
        celery_app.conf.update(saved)
        fresh_broker_connections()
    assert response.status_code == 200
    assert "the next sweep will" in caplog.text
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN  # not yet: the re-evaluation was lost...
    sweep()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED  # ...and the sweep caught it
