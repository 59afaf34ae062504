"""Issue 18 on real services: a slow SMTP server must never make two workers send the
same e-mail.

Two real `celery -A config worker` processes (the drill's harness, bench/drill_outbox.py)
drain the PostgreSQL test database through Redis into a real aiosmtpd server that waits
before answering each message's DATA. Processes rather than worker threads in this
process: they share nothing but the database, Redis and the server, as in production
(two worker threads in one process share kombu's state and sometimes hung at
shutdown). The claim lease is compressed so that one batch of 50 at that pace
outlasts it, as a 12 s/message server does with the default 600 s lease.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from bench.drill_outbox import delivery_counts, worker_environment, worker_processes
from notifications.email import message_id
from notifications.models import EmailStatus, OutboundEmail
from notifications.tasks import drain_outbox
from tests.integration.conftest import private_queue
from tests.notifications.conftest import pending_emails

LEASE_SECONDS = 6  # SMTP timeout: a tenth, 0.6 s
BATCH = 50  # drain()'s batch size by count
DATA_DELAY = 0.2  # longer than LEASE_SECONDS / BATCH
MESSAGES = 50


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_and_a_slow_server_deliver_each_message_once(
    postgres, redis_url, team, smtp, tmp_path
):
    assert DATA_DELAY > LEASE_SECONDS / BATCH
    smtp.handler.delay = DATA_DELAY
    expected = [message_id(e.idempotency_key) for e in pending_emails(team, MESSAGES)]
    db = connection.settings_dict
    login = f"{db['USER']}:{db['PASSWORD']}" if db["PASSWORD"] else db["USER"]
    env = worker_environment(
        f"postgres://{login}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        redis_url,
        smtp.port,
        REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS=LEASE_SECONDS,
    )
    unsent = OutboundEmail.objects.exclude(status=EmailStatus.SENT)
    with private_queue(redis_url) as queue, worker_processes(2, env, queue, log_dir=tmp_path):
        # Drains keep coming, as beat and every write queue them, so both workers are
        # draining the whole time.
        deadline = time.monotonic() + 90
        while unsent.exists() and time.monotonic() < deadline:
            drain_outbox.delay()
            time.sleep(0.5)
    # The workers stopped after their running task: whatever they sent has arrived.
    received = [m["Message-ID"] for m in smtp.handler.messages()]
    assert delivery_counts(expected, received) == {
        "expected": MESSAGES,
        "delivered": MESSAGES,
        "duplicated": 0,
        "duplicated_ids": 0,
        "lost": 0,
        "unexpected": 0,
    }
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {EmailStatus.SENT}
    assert smtp.handler.most_in_flight == 2, "both workers were sending at the same time"


def test_the_drill_counts_copies_and_losses_by_message_id():
    assert delivery_counts(["<a>", "<b>", "<c>"], ["<a>", "<a>", "<a>", "<b>", "<x>"]) == {
        "expected": 3,
        "delivered": 2,
        "duplicated": 2,
        "duplicated_ids": 1,
        "lost": 1,
        "unexpected": 1,
    }
