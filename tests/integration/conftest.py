from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app as celery_app
from tests.conftest import fresh_broker_connections
from tests.notifications.conftest import smtp as smtp  # the aiosmtpd fixture, shared


@contextmanager
def private_queue(redis_url: str) -> Iterator[str]:
    """Publish tasks to Redis, on a queue private to this test, so leftovers from other
    runs can neither be eaten nor be served; yields the queue's name."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    saved = {
        key: celery_app.conf[key]
        for key in (
            "broker_url",
            "task_always_eager",
            "task_default_queue",
            "broker_transport_options",
        )
    }
    celery_app.conf.update(
        broker_url=redis_url,
        task_always_eager=False,
        task_default_queue=queue,
        broker_transport_options={"visibility_timeout": 3600},
    )
    celery_app.amqp.queues.select_add(queue)
    fresh_broker_connections()
    try:
        yield queue
    finally:
        celery_app.conf.update(saved)
        fresh_broker_connections()


@pytest.fixture
def celery_worker(redis_url: str) -> Iterator[object]:
    """A real worker thread on Redis, consuming a private queue."""
    with (
        private_queue(redis_url) as queue,
        start_worker(
            celery_app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=[queue],
            loglevel="WARNING",
            shutdown_timeout=30,
        ) as worker,
    ):
        yield worker
