"""Saving a record re-evaluates that course after commit, exactly once; a dead broker
loses nothing."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest

from config.celery import app as celery_app
from courses.models import AuditEntry, CourseTransition, TreatmentCourse
from notifications import tasks
from notifications.models import AlertKind, AlertState
from tests.conftest import fresh_broker_connections, induction_blocks
from tests.notifications.conftest import unresolved

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch: Any) -> list[int]:
    """The course ids of the re-evaluations queued on the broker (and still run)."""
    calls: list[int] = []
    publish = tasks.evaluate_course.apply_async

    def spy(args: tuple[int, ...], **kwargs: Any) -> Any:
        calls.append(args[0])
        return publish(args, **kwargs)

    monkeypatch.setattr(tasks.evaluate_course, "apply_async", spy)
    return calls


@pytest.fixture
def alerted(
    clock: Any,
    sweep: Any,
    team: Any,
    clinician: Any,
    make_course: Any,
    django_capture_on_commit_callbacks: Any,
) -> tuple[TreatmentCourse, Any]:
    # The test runs in one database transaction; running the creation's after-commit
    # callbacks here stands for its own (earlier, committed) request.
    with django_capture_on_commit_callbacks(execute=True):
        course = make_course(team, clinician)
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    return course, alert


def test_recording_the_referral_resolves_the_alert_without_waiting_for_the_sweep(
    api, clinician, alerted, queued, django_capture_on_commit_callbacks
):
    course, alert = alerted
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api(clinician).put(
            f"/api/v1/courses/{course.pk}/hsct-referral/",
            {"referred_on": "2026-12-08"},
            format="json",
        )
        assert queued == [], "nothing is queued before the commit"
    assert response.status_code == 200
    assert queued == [course.pk], "one re-evaluation of this course, after commit"
    assert [repr(c) for c in callbacks].count(f"course_changed(course_id={course.pk})") == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_nothing_is_queued_when_the_write_is_refused(
    api, clinician, alerted, queued, django_capture_on_commit_callbacks
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
    assert queued == []


@pytest.mark.parametrize(
    ("path", "body", "writes"),
    [
        # An audit entry and a CourseTransition: two writes, one announcement.
        (
            "confirm-stratification/",
            {"risk_group": "A"},
            {"audit": 1, "transitions": 1},
        ),
        # The result and the HSCT proposal it triggers (ALL-REZ BFM 2002 S2): two
        # audit entries.
        (
            "mrd/",
            {
                "sampled_on": "2026-11-24",
                "time_point": "end_of_induction",
                "unit": "fraction",
                "value": 0.002,
            },
            {"audit": 2, "transitions": 0},
        ),
    ],
)
def test_one_call_that_writes_several_times_queues_one_re_evaluation(
    api,
    team,
    clinician,
    make_course,
    queued,
    django_capture_on_commit_callbacks,
    path,
    body,
    writes,
):
    # Created in their own (committed) requests, before the call under test.
    with django_capture_on_commit_callbacks(execute=True):
        if path == "mrd/":
            # Late isolated marrow relapse of BCP-ALL under ALL-REZ BFM 2002: group S2,
            # whose HSCT indication hangs on the MRD at the end of induction.
            course = make_course(
                team,
                clinician,
                protocol="all-rez-bfm-2002",
                relapse_date=date(2024, 9, 1),
                blocks=induction_blocks(date(2026, 10, 6), "all-rez-bfm-2002"),
            )
            assert course.risk_group == "S2"
        else:
            course = make_course(team, clinician, confirm=False)
    queued.clear()
    audit = AuditEntry.objects.filter(course=course)
    transitions = CourseTransition.objects.filter(course=course)
    before = {"audit": audit.count(), "transitions": transitions.count()}
    with django_capture_on_commit_callbacks(execute=True):
        response = api(clinician).post(f"/api/v1/courses/{course.pk}/{path}", body, format="json")
    assert response.status_code in (200, 201), response.content
    assert {
        "audit": audit.count() - before["audit"],
        "transitions": transitions.count() - before["transitions"],
    } == writes
    assert queued == [course.pk]


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
