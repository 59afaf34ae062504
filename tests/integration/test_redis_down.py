"""Issue 15's Redis drill on real services, bounded: the broker goes down while a
record is saved through the services, so the save's on-commit re-evaluation cannot be
published; when the broker is back (empty), the periodic sweeps on two workers open
the alert the record implies and resolve the one it cleared, each once, and every
e-mail arrives once.

The broker is a redis-server of the test's own on a free port (the shared one is never
stopped); two `celery -A config worker` processes consume from it (the drill's harness,
bench/drill_outbox.py), and a compressed beat in the test queues two sweeps at once.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench.drill_outbox import (
    Beat,
    PrivateRedis,
    alert_counts,
    email_counts,
    rules_now,
    worker_environment,
    worker_processes,
)
from courses import services as course_services
from courses.models import TreatmentCourse
from notifications.models import Alert, AlertKind, AlertState, EmailStatus, OutboundEmail
from tests.conftest import service_unavailable
from tests.integration.conftest import private_queue
from tests.notifications.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Longer than a sweep or a drain of this one course takes (well under a second).
IDLE_SECONDS = 2.0


def _state(kind: str) -> str | None:
    alert = Alert.objects.filter(kind=kind).order_by("-pk").first()
    return alert.state if alert else None


def _all_sent() -> bool:
    return (
        OutboundEmail.objects.exists()
        and not OutboundEmail.objects.exclude(status=EmailStatus.SENT).exists()
    )


def test_a_record_saved_while_redis_is_down_gets_its_alerts_once_redis_is_back(
    postgres, redis_url, team, clinician, make_course, smtp, tmp_path, caplog, monkeypatch
):
    if shutil.which("redis-server") is None:
        service_unavailable("Redis: no redis-server binary to run a private broker")
    course = make_course(team, clinician)  # group A: HSCT indicated
    # Therapy began 20 days ago with no referral: past the 14-day threshold.
    today = timezone.localdate()
    TreatmentCourse.objects.filter(pk=course.pk).update(start_date=today - timedelta(days=20))
    broker = PrivateRedis(free_port(), tmp_path)
    broker.start()
    db = connection.settings_dict
    login = f"{db['USER']}:{db['PASSWORD']}" if db["PASSWORD"] else db["USER"]
    env = worker_environment(
        f"postgres://{login}@{db['HOST']}:{db['PORT']}/{db['NAME']}", broker.url, smtp.port
    )
    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    beat = Beat(sweep_every=1.0, drain_every=1.0)
    try:
        with (
            private_queue(broker.url) as queue,
            worker_processes(2, env, queue, log_dir=tmp_path),
        ):
            beat.wait(
                lambda: _state(AlertKind.HSCT_REFERRAL_MISSING) == AlertState.OPEN and _all_sent(),
                limit=45,
            )
            assert _state(AlertKind.HSCT_REFERRAL_MISSING) == AlertState.OPEN
            # No tick for a while: a sweep queued just before the broker stops must not
            # read the referral below (the periodic sweep after the outage must).
            time.sleep(IDLE_SECONDS)

            broker.stop()
            with caplog.at_level(logging.WARNING, logger="notifications.signals"):
                # Referred yesterday, transplant in a week, no MRD: the save commits.
                course_services.referral_save(
                    course.pk,
                    data={
                        "referred_on": today - timedelta(days=1),
                        "planned_on": today + timedelta(days=7),
                    },
                    actor=clinician,
                    now=timezone.now(),
                )
            assert "could not queue alert re-evaluation" in caplog.text
            implied = rules_now([course.pk])
            assert (course.pk, AlertKind.MRD_MISSING_BEFORE_HSCT, "course") in implied
            assert (course.pk, AlertKind.HSCT_REFERRAL_MISSING, "course") not in implied
            beat.run_for(3)  # still down: nothing can re-evaluate the course
            assert _state(AlertKind.MRD_MISSING_BEFORE_HSCT) is None
            assert beat.failed > 0

            broker.start()  # back, and empty
            deadline = time.monotonic() + 60
            beat.wait(
                lambda: (
                    _state(AlertKind.MRD_MISSING_BEFORE_HSCT) == AlertState.OPEN
                    and _state(AlertKind.HSCT_REFERRAL_MISSING) == AlertState.RESOLVED
                    and _all_sent()
                ),
                limit=deadline - time.monotonic(),
            )
            beat.run_for(3)  # more sweeps on both workers: they change nothing
    finally:
        broker.stop()
    received = [m["Message-ID"] for m in smtp.handler.messages()]
    assert alert_counts(rules_now()) == {
        "expected": len(rules_now()),
        "opened": len(rules_now()),
        "missing": 0,
        "unexpected": 0,
        "duplicated": 0,
        "rows": Alert.objects.count(),
    }
    assert _state(AlertKind.HSCT_REFERRAL_MISSING) == AlertState.RESOLVED
    emails = email_counts(received)
    # The two high alerts reach the clinician: the missing referral, then the MRD.
    assert emails["expected"] == 2
    assert (emails["delivered"], emails["duplicated"], emails["lost"], emails["failed"]) == (
        2,
        0,
        0,
        0,
    )
