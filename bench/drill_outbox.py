"""Fault drills for the e-mail outbox on real services.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rezcourse_drill \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m bench.drill_outbox slow-smtp \\
        --workers 3 --data-delay 1 --lease 20 --emails 100 \\
        [--baseline-code DIR] [--write-docs docs/reliability.md]
    ... bench.drill_outbox all --drain-every 1 --courses 650 --write-docs docs/reliability.md

A drill runs against PostgreSQL, Redis, N ``celery -A config worker`` processes (solo
pool: one task at a time, so a worker is one process to kill in later drills) on a
queue private to the run, and an aiosmtpd server in this process. It counts what the
server received, by Message-ID:

* expected: the outbox rows the drill wrote;
* delivered: expected Message-IDs that arrived at least once;
* duplicated: copies beyond the first (and how many Message-IDs had them);
* lost: expected Message-IDs that never arrived.

Drills live in ``DRILLS`` (name -> function taking the parsed arguments and the code
directory the workers run from, returning its counts); each has its own section in
docs/reliability.md. Add one by writing the function and registering it.

* ``slow-smtp`` (issue 18): the server waits ``--data-delay`` seconds before answering
  each message's DATA; the claim lease is compressed to ``--lease`` seconds.
  ``--emails`` alert e-mails are written as the sweep writes them (the real
  ``enqueue_alert_notices``, one notice per opened alert, in the alerts' transaction,
  which queues a drain on commit), and a drain is queued every ``--drain-every``
  seconds, as beat does every minute.

* ``worker-killed`` (issue 15): SIGKILL one of two workers inside the at-least-once
  window while they drain the opening sweep's e-mails (about 1,000 with ``--courses
  650``), then start another.
* ``smtp-down``: no SMTP server for a simulated ``--outage-hours`` of retries (the
  retry settings divided by ``--compress``), then the server on the same port.
* ``redis-down``: a private redis-server (``--redis-port``) stopped while
  ``--records`` HSCT referrals are saved through the services, then started again,
  empty.
* ``two-sweeps``: no fault; records saved while the sweeps run.
* ``all``: every drill, one after the other, and a summary table.

The course drills (all but slow-smtp) let the workers' own sweeps open alerts on a
synthetic cohort, two sweeps at once on two workers throughout, and count alerts as
well as e-mails against what the rules say at the end (see the section comment above
``Beat`` and docs/reliability.md).

``--baseline-code DIR`` first runs the workers from another checkout on the same
database and data (main before a fix, say, exported with ``git archive main | tar -x -C
DIR``), then from this one. The data and the schema are this checkout's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DRILL_TEAM = "drill"
# The course drills' own team: slow-smtp's clinician (team "drill") hears none of it.
COURSE_DRILL_TEAM = "drill-courses"


# --- the harness every drill uses ---------------------------------------------------------


class SmtpSink:
    """An aiosmtpd handler that waits ``delay`` seconds before answering each DATA (the
    message is in: only the server's 250 is late) and records each Message-ID."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.message_ids: list[str] = []
        self.last_received = time.monotonic()
        # Called with the SMTP session of each message once it is in, before the 250.
        self.on_message: Callable[[Any], None] | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        headers = BytesParser(policy=default_policy).parsebytes(envelope.content, headersonly=True)
        self.message_ids.append(str(headers["Message-ID"]))
        self.last_received = time.monotonic()
        if self.on_message:
            self.on_message(session)
        return "250 Message accepted for delivery"


def sender_pid(peer_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the loopback TCP connection whose local port is
    ``peer_port`` (the SMTP client of a session), from /proc (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == peer_port:
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            fd_dir = Path(f"/proc/{pid}/fd")
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    return None


@contextmanager
def smtp_server(handler: SmtpSink) -> Iterator[int]:
    """A real SMTP server on a free loopback port; yields the port."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def worker_environment(
    database_url: str, redis_url: str, smtp_port: int, **settings: object
) -> dict[str, str]:
    """What a worker process reads its settings from: this database and Redis, SMTP on
    the loopback port, and any REZCOURSE_* / EMAIL_* setting given by name."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "EMAIL_URL": "",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        **{name: str(value) for name, value in settings.items()},
    }


@contextmanager
def worker_processes(
    count: int, env: dict[str, str], queue: str, code_dir: Path = ROOT, log_dir: Path | None = None
) -> Iterator[list[subprocess.Popen]]:
    """``count`` ``celery -A config worker`` processes consuming ``queue``, run from
    ``code_dir``. Leaving the block stops them warmly (SIGTERM: each finishes the task
    it is running), so whatever they were sending has arrived afterwards."""
    workers: list[subprocess.Popen] = []
    try:
        for i in range(count):
            workers.append(spawn_worker(i, env, queue, code_dir, log_dir))
        yield workers
    finally:
        # A worker the drill appended to the list (a replacement) is stopped too.
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=120)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def spawn_worker(
    index: int, env: dict[str, str], queue: str, code_dir: Path = ROOT, log_dir: Path | None = None
) -> subprocess.Popen:
    """One ``celery -A config worker --pool=solo`` process consuming ``queue`` (its
    output in ``log_dir/worker-<index>.log``). A solo worker runs its task in its own
    process: SIGKILL on it kills the task mid-flight, as a crash or the OOM killer does."""
    if log_dir:
        with open(log_dir / f"worker-{index}.log", "ab") as log:
            return _popen_worker(index, env, queue, code_dir, log)
    return _popen_worker(index, env, queue, code_dir, subprocess.DEVNULL)


def _popen_worker(
    index: int, env: dict[str, str], queue: str, code_dir: Path, log: Any
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--queues",
            queue,
            "--hostname",
            f"{queue}-{index}@%h",
            "--without-mingle",
            "--without-gossip",
            # Each task's receipt and outcome, in the log file only (sweep_overlaps).
            "--loglevel=INFO",
        ],
        cwd=code_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def delivery_counts(expected: Iterable[str], received: Sequence[str]) -> dict[str, int]:
    """What arrived, by Message-ID, against what the outbox held."""
    wanted = set(expected)
    seen = Counter(received)
    return {
        "expected": len(wanted),
        "delivered": len(wanted & seen.keys()),
        "duplicated": sum(n - 1 for n in seen.values()),
        "duplicated_ids": sum(1 for n in seen.values() if n > 1),
        "lost": len(wanted - seen.keys()),
        "unexpected": len(seen.keys() - wanted),
    }


def _setup_django(database_url: str, redis_url: str) -> None:
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = redis_url
    os.environ["LOG_LEVEL"] = "WARNING"
    from bench.bench_sweep import _setup

    _setup(database_url)


def _private_queue() -> str:
    """Route this process's tasks (the on-commit kicks too) to a queue of its own."""
    from config.celery import app

    queue = f"drill-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    return queue


def _alert_emails(count: int) -> list[str]:
    """``count`` alert e-mails to one clinician, written by the real notice writer in
    the alerts' transaction (which queues a drain on commit); returns their
    Message-IDs. The outbox and alerts of earlier runs are emptied first."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from courses.cohort import write_cohort
    from courses.models import TreatmentCourse
    from notifications.email import enqueue_alert_notices, message_id
    from notifications.models import Alert, AlertKind, OutboundEmail, Severity
    from stratification.selectors import protocol_get
    from teams.models import Membership, Role, Team

    team, _ = Team.objects.get_or_create(slug=DRILL_TEAM, defaults={"name": "Fault drill"})
    user, _ = get_user_model().objects.get_or_create(
        username="drill.clinician", defaults={"email": "clinician@drill.example.org"}
    )
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.CLINICIAN})
    courses = TreatmentCourse.objects.filter(patient__team=team).order_by("pk")
    if (have := courses.count()) < count:
        write_cohort(
            team, [protocol_get("all-rez-bfm-90")], count - have, seed=18, as_of=date(2026, 11, 24)
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_outboundemail, notifications_alertevent, notifications_alert"
        )
    now = timezone.now()
    with transaction.atomic():
        alerts = Alert.objects.bulk_create(
            Alert(
                course=course,
                kind=AlertKind.HSCT_REFERRAL_MISSING,
                severity=Severity.HIGH,
                message="Fault drill.",
                caveat="Fault drill.",
                condition_since=now.date(),
                opened_at=now,
            )
            for course in courses[:count]
        )
        enqueue_alert_notices(alerts, [], now)
    keys = OutboundEmail.objects.values_list("idempotency_key", flat=True)
    return [message_id(key) for key in keys]


def _drain_until_delivered(
    sink: SmtpSink, every: float, quiet: float, limit: float
) -> tuple[float, bool]:
    """Queue a drain every ``every`` seconds (a compressed beat) until every row is
    ``sent`` and nothing arrived for ``quiet`` seconds, or ``limit`` seconds passed.
    Returns the seconds until every row was sent (or the limit) and whether they were."""
    from notifications.models import EmailStatus, OutboundEmail
    from notifications.tasks import drain_outbox

    started = time.monotonic()
    done_at = None
    next_drain = started
    while (now := time.monotonic()) - started < limit:
        if done_at is None and not OutboundEmail.objects.exclude(status=EmailStatus.SENT).exists():
            done_at = now
        if done_at is not None and now - sink.last_received >= quiet:
            break
        if now >= next_drain:
            drain_outbox.apply_async()
            next_drain = now + every
        time.sleep(0.2)
    return ((done_at or time.monotonic()) - started, done_at is not None)


# --- drills --------------------------------------------------------------------------------


def slow_smtp(args: argparse.Namespace, code_dir: Path) -> dict[str, Any]:
    """Issue 18: a slow SMTP server must never make two workers send the same e-mail."""
    from notifications.models import OutboundEmail

    sink = SmtpSink(args.data_delay)
    with smtp_server(sink) as port:
        queue = _private_queue()
        env = worker_environment(
            args.database_url,
            args.redis_url,
            port,
            REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS=args.lease,
        )
        log_dir = args.log_dir / code_dir.name if args.log_dir else None
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        with worker_processes(args.workers, env, queue, code_dir, log_dir):
            expected = _alert_emails(args.emails)
            seconds, all_sent = _drain_until_delivered(
                sink, args.drain_every, quiet=max(5.0, 3 * args.data_delay), limit=args.limit
            )
        counts = delivery_counts(expected, sink.message_ids)
    statuses = Counter(OutboundEmail.objects.values_list("status", flat=True))
    return {
        **counts,
        "received": len(sink.message_ids),
        "rows": dict(sorted(statuses.items())),
        "seconds": round(seconds, 1),
        "all_sent": all_sent,
    }


SLOW_SMTP_SECTION = "## Slow SMTP server"


def slow_smtp_section(args: argparse.Namespace, runs: list[tuple[str, dict]]) -> str:
    from bench.common import machine

    command = f"DATABASE_URL={args.database_url} REDIS_URL={args.redis_url} " + shlex.join(
        [".venv/bin/python", "-m", "bench.drill_outbox", *args.argv]
    )
    rows = [
        f"| {label} | {r['expected']} | {r['received']} | {r['delivered']} | "
        f"{r['duplicated']} ({r['duplicated_ids']} Message-IDs) | {r['lost']} | "
        f"{', '.join(f'{n} {s}' for s, n in r['rows'].items())} | {r['seconds']:g} s |"
        for label, r in runs
    ]
    return "\n".join(
        [
            SLOW_SMTP_SECTION,
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine()}; PostgreSQL, Redis, the workers and the SMTP server on the "
            "same machine.",
            "",
            f"{args.workers} `celery -A config worker --pool=solo` processes; an aiosmtpd "
            f"server that waits {args.data_delay:g} s before answering each message's DATA; "
            f"the claim lease compressed to {args.lease} s "
            f"(`REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS`); {args.emails} alert e-mails written by "
            "the notice writer in the alerts' transaction (which queues a drain on commit), "
            f"and a drain queued every {args.drain_every:g} s (a compressed beat). Counted by "
            "Message-ID at the server once every row was `sent` and the server had been quiet "
            f"for {max(5.0, 3 * args.data_delay):g} s; the workers were then stopped warmly.",
            "",
            "| code | expected | received | delivered | duplicated | lost | rows "
            "| all sent after |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Before the fix of issue 18 (whose drill received 170 messages for 100, 70 extra "
            f"copies), a batch of 50 at {args.data_delay:g} s per message outlasted the "
            f"{args.lease} s lease, and the other workers' drains took its unsent rest over "
            "while it kept sending it. Now each message is sent only after its worker "
            f"renewed its claim on it, a batch starts no message after {args.lease / 4:g} s "
            "(a quarter of the lease) and hands the rest back at once, and the SMTP timeout "
            f'is at most {args.lease / 10:g} s (a tenth of the lease). "All sent after" '
            "counts from the workers' start.",
            "",
        ]
    )


# --- the course drills: alerts from the real sweep, e-mails from its notices ---------------
#
# The drills below start from a synthetic cohort (courses/cohort.py) on which the rules
# find conditions, as a team's data would: the workers' own sweeps open the alerts and
# write their e-mails (every recipient hears every severity, so each alert is one
# e-mail per recipient), and their drains send them. A compressed beat (``Beat``)
# queues two sweeps at once, so two workers sweep concurrently the whole time, and a
# drain every ``--drain-every`` seconds. The counts compare the database and the SMTP
# server with what the rules say, read afresh at the end:
#
# * alerts expected: the (course, kind, subject) conditions the rules find now;
#   opened: those with an unresolved alert; missing: those without; unexpected:
#   unresolved alerts the rules do not hold; duplicated: alerts beyond the first for
#   one condition (same course, kind, subject and start date), in any state.
# * e-mails expected: one Message-ID per (opened alert, recipient it reaches), derived
#   from the alert rows and the recipients, not read from the outbox, so a notice the
#   sweep failed to write counts as lost; delivered / duplicated / lost as above;
#   duplicates of a message that was inside the at-least-once window when its worker
#   was killed (accepted by the server, its row not yet ``sent``) are counted apart.


class Beat:
    """A compressed beat in this process: every ``sweep_every`` seconds it queues two
    sweeps at once (idle workers take one each, so two sweeps run on two workers), and
    a drain every ``drain_every`` seconds. A publish that fails (the broker is down)
    is counted and skipped, as beat's own would be; the next tick tries again."""

    def __init__(self, sweep_every: float, drain_every: float) -> None:
        self.sweep_every, self.drain_every = sweep_every, drain_every
        self.next_sweep = self.next_drain = time.monotonic()
        self.published = self.failed = 0

    def _publish(self, task: Any) -> None:
        try:
            task.apply_async(retry=False)
            self.published += 1
        except Exception:  # noqa: BLE001 - the broker is down: try at the next tick
            self.failed += 1
            _fresh_broker_connections()

    def tick(self) -> None:
        from notifications.tasks import drain_outbox, sweep_alerts

        now = time.monotonic()
        if now >= self.next_sweep:
            self._publish(sweep_alerts)
            self._publish(sweep_alerts)
            self.next_sweep = now + self.sweep_every
        if now >= self.next_drain:
            self._publish(drain_outbox)
            self.next_drain = now + self.drain_every

    def wait(self, until: Callable[[], bool], limit: float, step: float = 0.25) -> float:
        """Tick until ``until()`` holds or ``limit`` seconds passed; the seconds it took
        (``limit`` if it never held)."""
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < limit:
            self.tick()
            if until():
                return elapsed
            time.sleep(step)
        return limit

    def run_for(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)


def _fresh_broker_connections() -> None:
    """Forget the Celery app's connection and producer pools, so the next publish
    connects afresh (after the broker came back, or to another broker)."""
    from kombu import pools

    from config.celery import app

    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Publish from this process to ``url`` (the drill's private Redis) inside the block."""
    from config.celery import app

    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    saved = app.conf.broker_url, os.environ.get("CELERY_BROKER_URL")
    app.conf.broker_url = os.environ["CELERY_BROKER_URL"] = url
    _fresh_broker_connections()
    try:
        yield
    finally:
        app.conf.broker_url = saved[0]
        if saved[1] is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved[1]
        _fresh_broker_connections()


def drill_cohort(courses: int, recipients: int, seed: int = 15) -> Any:
    """Empty the course and alert tables, then write ``courses`` synthetic courses
    (started up to today) for a team of ``recipients`` clinicians who each hear every
    alert at once. The sweep bookkeeping starts afresh: the first sweep opens."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from courses.cohort import write_cohort
    from notifications.models import NotificationPreference, Severity, SweepRun
    from stratification.selectors import protocol_get
    from teams.models import Membership, Role, Team

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE courses_patient, notifications_alert, notifications_alertevent, "
            "notifications_outboundemail, notifications_courseattention, "
            "notifications_summaryfact, notifications_summarycounter CASCADE"
        )
    SweepRun.objects.update_or_create(
        name="alerts",
        defaults={"last_started_at": None, "runs": 0, "courses_seen_up_to": 0, "last_counts": {}},
    )
    team, _ = Team.objects.get_or_create(
        slug=COURSE_DRILL_TEAM, defaults={"name": "Fault drill (courses)"}
    )
    Membership.objects.filter(team=team).delete()
    for i in range(recipients):
        user, _ = get_user_model().objects.get_or_create(
            username=f"drill.member{i}", defaults={"email": f"member{i}@drill.example.org"}
        )
        membership = Membership.objects.create(team=team, user=user, role=Role.CLINICIAN)
        NotificationPreference.objects.create(
            membership=membership, immediate_min_severity=Severity.LOW
        )
    today = team.today(timezone.now())
    write_cohort(team, [protocol_get("all-rez-bfm-90")], courses, seed=seed, as_of=today)
    return team


def rules_now(course_ids: Sequence[int] | None = None) -> set[tuple[int, str, str]]:
    """The (course, kind, subject) conditions the rules find now."""
    from django.utils import timezone

    from notifications import rules
    from notifications.services import _context

    ctx, _ = _context(timezone.now(), course_ids)
    return {d[:3] for d in rules.evaluate(ctx)}


def alert_counts(expected: set[tuple[int, str, str]]) -> dict[str, int]:
    from notifications.models import Alert, AlertState

    rows = list(
        Alert.objects.values_list("course_id", "kind", "subject", "condition_since", "state")
    )
    per_condition = Counter((c, k, s, since) for c, k, s, since, _ in rows)
    unresolved = {(c, k, s) for c, k, s, _, state in rows if state != AlertState.RESOLVED}
    return {
        "expected": len(expected),
        "opened": len(expected & unresolved),
        "missing": len(expected - unresolved),
        "unexpected": len(unresolved - expected),
        "duplicated": sum(n - 1 for n in per_condition.values()),
        "rows": len(rows),
    }


def expected_message_ids() -> set[str]:
    """One Message-ID per (alert opened, recipient it reaches), as the notice writer
    keys it: derived from the alerts and the recipients, not from the outbox."""
    from notifications.email import message_id
    from notifications.email.recipients import reaches, recipients_for
    from notifications.models import Alert

    recipients = recipients_for(None)
    ids = set()
    for alert in Alert.objects.select_related("course__patient").only(
        "pk", "severity", "escalation_level", "course__patient__team_id"
    ):
        for recipient in recipients.get(alert.course.patient.team_id, []):
            if reaches(alert, recipient):
                # Escalations are hours away: every notice is the opening one.
                ids.add(message_id(f"alert:{alert.pk}:opened:0:{recipient.ident}"))
    return ids


def email_counts(received: Sequence[str], window: set[str] = frozenset()) -> dict[str, Any]:
    """Delivery counts against the alerts' notices, with the duplicates of ``window``
    (Message-IDs accepted by the server while their row was not yet ``sent`` when
    their worker was killed) counted apart from any other."""
    from notifications.models import OutboundEmail

    counts = delivery_counts(expected_message_ids(), received)
    seen = Counter(received)
    in_window = sum(seen[m] - 1 for m in window if seen[m] > 1)
    statuses = Counter(OutboundEmail.objects.values_list("status", flat=True))
    return {
        **counts,
        "duplicated_in_window": in_window,
        "duplicated_outside_window": counts["duplicated"] - in_window,
        "rows": dict(sorted(statuses.items())),
        "failed": statuses.get("failed", 0),
    }


def _all_sent() -> bool:
    from notifications.models import EmailStatus, OutboundEmail

    return (
        OutboundEmail.objects.exists()
        and not OutboundEmail.objects.exclude(status=EmailStatus.SENT).exists()
    )


def _settled(expected: Callable[[], set], sink: SmtpSink, quiet: float) -> Callable[[], bool]:
    """Every condition the rules find has its open alert, every e-mail row is sent, and
    the server has been quiet for ``quiet`` seconds."""

    def check() -> bool:
        if time.monotonic() - sink.last_received < quiet or not _all_sent():
            return False
        return alert_counts(expected())["missing"] == 0

    return check


def _task_errors(log_dir: Path) -> int:
    """Tasks that raised in the workers (a crash, a constraint violation): each is
    logged by the worker as "Task ... raised unexpected"."""
    return sum(
        log.read_text(errors="replace").count("raised unexpected")
        for log in log_dir.glob("worker-*.log")
    )


_SWEEP_DONE = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/MainProcess\] Task notifications\.tasks\.sweep_alerts"
    r"\[[^\]]+\] succeeded in (?P<seconds>[\d.e-]+)s"
)


def sweep_overlaps(log_dir: Path) -> dict[str, Any]:
    """The periodic sweeps each worker ran (from its log, at INFO), and how many of
    them overlapped in time with a sweep on another worker: the second of two sweeps
    at once waits for the first one's lock, so the two ran on two workers together."""
    from datetime import datetime, timedelta

    spans: list[tuple[str, datetime, datetime]] = []
    for log in sorted(log_dir.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if match := _SWEEP_DONE.match(line):
                end = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
                spans.append((log.stem, end - timedelta(seconds=float(match["seconds"])), end))
    overlapping = {
        i
        for i, (w1, s1, e1) in enumerate(spans)
        for j, (w2, s2, e2) in enumerate(spans)
        if w1 != w2 and s1 < e2 and s2 < e1
    }
    per_worker = Counter(worker for worker, _, _ in spans)
    return {"per_worker": dict(sorted(per_worker.items())), "overlapping": len(overlapping)}


def _log_dir(args: argparse.Namespace, name: str) -> Path:
    import tempfile

    base = args.log_dir or Path(tempfile.mkdtemp(prefix="rezcourse-drill-"))
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sweeps_run() -> int:
    from notifications.models import SweepRun

    return SweepRun.objects.get(name="alerts").runs


def _result(
    args: argparse.Namespace,
    log_dir: Path,
    received: Sequence[str],
    beat: Beat,
    window: set[str] = frozenset(),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "alerts": alert_counts(rules_now()),
        "emails": email_counts(received, window),
        "sweeps": _sweeps_run(),
        "sweeps_on_workers": sweep_overlaps(log_dir),
        "publishes_failed": beat.failed,
        "task_errors": _task_errors(log_dir),
        "logs": str(log_dir),
        **extra,
    }


def worker_killed(args: argparse.Namespace, code_dir: Path) -> dict[str, Any]:
    """SIGKILL one of two workers while they drain the opening sweep's e-mails (about
    1,000), then start another: the rows the dead worker held come back after the
    lease, and nothing is lost or sent twice outside the one window.

    The kill is aimed at the window: when the ``--kill-after``-th message is in, the
    server (before its 250) kills the worker that sent it, which therefore dies
    between the end of that message's data and marking its row ``sent``. That one
    message goes again after the lease, with the same Message-ID."""
    from notifications.email import message_id
    from notifications.models import EmailStatus, OutboundEmail

    log_dir = _log_dir(args, "worker-killed")
    drill_cohort(args.courses, args.recipients)
    sink = SmtpSink()
    beat = Beat(args.sweep_every, args.drain_every)
    killed: list[int] = []
    with smtp_server(sink) as port:
        queue = _private_queue()
        env = worker_environment(
            args.database_url,
            args.redis_url,
            port,
            REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS=args.lease,
        )
        with worker_processes(2, env, queue, code_dir, log_dir) as workers:

            def kill_the_sender(session: Any) -> None:
                if killed or len(sink.message_ids) < args.kill_after:
                    return
                pid = sender_pid(session.peer[1], [w.pid for w in workers])
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

            sink.on_message = kill_the_sender
            # The opening sweep writes the alerts and their e-mails; both workers drain.
            beat.wait(lambda: bool(killed), limit=args.limit, step=0.05)
            victim = next(w for w in workers if w.pid in killed)
            victim.wait()
            killed_at_received = len(sink.message_ids)
            # Inside the window: accepted by the server, the row not yet marked sent.
            unsent = {
                message_id(key)
                for key in OutboundEmail.objects.exclude(status=EmailStatus.SENT).values_list(
                    "idempotency_key", flat=True
                )
            }
            window = unsent & set(sink.message_ids)
            held = set(
                OutboundEmail.objects.filter(status=EmailStatus.SENDING).values_list(
                    "pk", "claim_token"
                )
            )
            workers.append(spawn_worker(len(workers), env, queue, code_dir, log_dir))
            # The claims the dead worker held: still unchanged once the live worker
            # moved on (it renews or finishes each of its own within a second).
            beat.run_for(3)
            orphaned = held & set(
                OutboundEmail.objects.filter(status=EmailStatus.SENDING).values_list(
                    "pk", "claim_token"
                )
            )
            seconds = beat.wait(
                _settled(rules_now, sink, args.quiet), limit=args.limit + 2 * args.lease
            )
        received = list(sink.message_ids)
    return _result(
        args,
        log_dir,
        received,
        beat,
        window,
        killed_after_received=killed_at_received,
        window_message_ids=len(window),
        rows_left_by_the_dead_worker=len(orphaned),
        settled_after_kill_s=round(seconds, 1),
    )


def smtp_down(args: argparse.Namespace, code_dir: Path) -> dict[str, Any]:
    """No SMTP server for a simulated hour of retries (the retry schedule compressed
    ``--compress`` times through REZCOURSE_EMAIL_RETRY_*_SECONDS, beat's minute
    likewise), then the server comes up on the same port: every e-mail is delivered
    once, and none was given up (``failed``) while the outage lasted."""
    from django.conf import settings
    from django.db.models import Count, Max, Min

    from notifications.models import EmailStatus, OutboundEmail

    log_dir = _log_dir(args, "smtp-down")
    drill_cohort(args.courses, args.recipients)
    sink = SmtpSink()
    beat = Beat(args.sweep_every, 60 / args.compress)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = max(1, round(settings.REZCOURSE_EMAIL_RETRY_BASE_SECONDS / args.compress))
    cap = max(1, round(settings.REZCOURSE_EMAIL_RETRY_MAX_SECONDS / args.compress))
    queue = _private_queue()
    env = worker_environment(
        args.database_url,
        args.redis_url,
        port,
        REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS=args.lease,
        REZCOURSE_EMAIL_RETRY_BASE_SECONDS=base,
        REZCOURSE_EMAIL_RETRY_MAX_SECONDS=cap,
    )
    outage = args.outage_hours * 3600 / args.compress
    with worker_processes(2, env, queue, code_dir, log_dir):
        beat.run_for(outage)  # nothing listens on the port: every attempt is refused
        during = OutboundEmail.objects.aggregate(
            rows=Count("pk"), least=Min("attempts"), most=Max("attempts")
        )
        during["sent"] = OutboundEmail.objects.filter(status=EmailStatus.SENT).count()
        during["failed"] = OutboundEmail.objects.filter(status=EmailStatus.FAILED).count()
        controller = _start_smtp(sink, port)
        try:
            seconds = beat.wait(_settled(rules_now, sink, args.quiet), limit=args.limit + cap)
        finally:
            controller.stop()
    return _result(
        args,
        log_dir,
        list(sink.message_ids),
        beat,
        retry_base_s=base,
        retry_cap_s=cap,
        max_attempts=settings.REZCOURSE_EMAIL_MAX_ATTEMPTS,
        outage_s=round(outage),
        during_outage=during,
        settled_after_up_s=round(seconds, 1),
    )


def _start_smtp(handler: SmtpSink, port: int) -> Any:
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


class PrivateRedis:
    """A redis-server of the drill's own on ``port`` (no persistence: what it held is
    gone when it stops, as when a broker is lost), to stop and start at will."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port, self.log_dir = port, log_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        with open(self.log_dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
                + ["--save", "", "--appendonly", "no", "--dir", str(self.log_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


def referral_targets(count: int) -> list[int]:
    """Active courses with a schedule and no HSCT referral, those whose missing
    referral is an open alert first: a referral saved on them resolves that alert and,
    with a transplant planned within days and no MRD, opens another."""
    from courses.models import HsctReferral, TreatmentCourse
    from notifications.models import Alert, AlertKind, AlertState
    from notifications.rules import SCHEDULED_STATES

    missing = set(
        Alert.objects.filter(kind=AlertKind.HSCT_REFERRAL_MISSING)
        .exclude(state=AlertState.RESOLVED)
        .values_list("course_id", flat=True)
    )
    candidates = (
        TreatmentCourse.objects.filter(state__in=SCHEDULED_STATES)
        .exclude(pk__in=HsctReferral.objects.values("course_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return sorted(candidates, key=lambda pk: (pk not in missing, pk))[:count]


def save_referrals(course_ids: Sequence[int]) -> tuple[int, float]:
    """Save an HSCT referral (referred yesterday, transplant planned in a week) on each
    course through the services, one transaction each, as a clinician does; returns
    how many saves committed and the longest one took (seconds)."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from courses import services
    from teams.models import Team

    actor = get_user_model().objects.get(username="drill.member0")
    team = Team.objects.get(slug=COURSE_DRILL_TEAM)
    saved, longest = 0, 0.0
    for pk in course_ids:
        now = timezone.now()
        today = team.today(now)
        started = time.monotonic()
        services.referral_save(
            pk,
            data={
                "referred_on": today - timedelta(days=1),
                "planned_on": today + timedelta(days=7),
            },
            actor=actor,
            now=now,
        )
        longest = max(longest, time.monotonic() - started)
        saved += 1
    return saved, longest


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def redis_down(args: argparse.Namespace, code_dir: Path) -> dict[str, Any]:
    """The broker (a private redis-server) stops while records are saved through the
    services: the saves commit, their on-commit re-evaluations cannot be published.
    Redis comes back empty; the workers reconnect, and the periodic sweeps open the
    alerts those records imply (and resolve the ones they cleared), each once."""
    log_dir = _log_dir(args, "redis-down")
    broker = PrivateRedis(args.redis_port, log_dir)
    broker.start()
    try:
        with celery_broker(broker.url):
            return _redis_down(args, code_dir, log_dir, broker)
    finally:
        broker.stop()


def _redis_down(
    args: argparse.Namespace, code_dir: Path, log_dir: Path, broker: PrivateRedis
) -> dict[str, Any]:
    drill_cohort(args.courses, args.recipients)
    sink = SmtpSink()
    beat = Beat(args.sweep_every, args.drain_every)
    with smtp_server(sink) as port:
        queue = _private_queue()
        env = worker_environment(
            args.database_url, broker.url, port, REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS=args.lease
        )
        with worker_processes(2, env, queue, code_dir, log_dir):
            beat.wait(_settled(rules_now, sink, args.quiet), limit=args.limit)
            before = alert_counts(rules_now())
            targets = referral_targets(args.records)
            implied_before = rules_now(targets)
            # No tick for a while: a sweep queued just before the broker stops must not
            # read the records below (only the periodic sweeps after the outage may).
            time.sleep(2 * args.sweep_every)
            broker.stop()
            unpublished = _Warnings()
            signals_logger = logging.getLogger("notifications.signals")
            # Counted here, not printed: each carries the broker's whole traceback.
            signals_logger.addHandler(unpublished)
            signals_logger.propagate = False
            try:
                saved, longest = save_referrals(targets)
            finally:
                signals_logger.removeHandler(unpublished)
                signals_logger.propagate = True
            implied = rules_now(targets)
            # Nothing re-evaluated them: the alerts still match the state before.
            stale = alert_counts(implied)
            beat.run_for(args.down)
            broker.start()
            seconds = beat.wait(_settled(rules_now, sink, args.quiet), limit=args.limit)
        received = list(sink.message_ids)
    after = alert_counts(implied)
    return _result(
        args,
        log_dir,
        received,
        beat,
        steady_before=before,
        records_saved=saved,
        longest_save_s=round(longest, 2),
        reevaluations_not_published=unpublished.count,
        conditions_implied=len(implied),
        conditions_changed=len(implied ^ implied_before),
        implied_open_while_down=stale["opened"],
        implied_open_after=after["opened"],
        settled_after_up_s=round(seconds, 1),
    )


def two_sweeps(args: argparse.Namespace, code_dir: Path) -> dict[str, Any]:
    """No fault: two sweeps at once every ``--sweep-every`` seconds, on two workers,
    while records are saved through the services (each queueing its course's
    re-evaluation), from the opening sweep to the steady state."""
    log_dir = _log_dir(args, "two-sweeps")
    drill_cohort(args.courses, args.recipients)
    sink = SmtpSink()
    beat = Beat(args.sweep_every, args.drain_every)
    with smtp_server(sink) as port:
        queue = _private_queue()
        env = worker_environment(
            args.database_url, args.redis_url, port, REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS=args.lease
        )
        with worker_processes(2, env, queue, code_dir, log_dir):
            beat.run_for(2 * args.sweep_every)
            targets = referral_targets(args.records)
            for pk in targets:
                save_referrals([pk])
                beat.run_for(0.1)
            seconds = beat.wait(_settled(rules_now, sink, args.quiet), limit=args.limit)
        received = list(sink.message_ids)
    return _result(
        args, log_dir, received, beat, records_saved=len(targets), settled_s=round(seconds, 1)
    )


# name -> (run, section heading, section writer)
DRILLS: dict[str, tuple[Callable[..., dict], str, Callable[..., str]]] = {
    "slow-smtp": (slow_smtp, SLOW_SMTP_SECTION, slow_smtp_section),
}


def _versions() -> str:
    """PostgreSQL's and Redis's versions, as the servers report them."""
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    try:
        info = redis.Redis.from_url(os.environ["REDIS_URL"]).info("server")
        redis_version = info["redis_version"]
    except Exception:  # noqa: BLE001 - only for the record
        redis_version = "unknown"
    return f"PostgreSQL {postgres}, Redis {redis_version}"


def _command(args: argparse.Namespace) -> str:
    return f"DATABASE_URL={args.database_url} REDIS_URL={args.redis_url} " + shlex.join(
        [".venv/bin/python", "-m", "bench.drill_outbox", *args.argv]
    )


def _span(least: int, most: int) -> str:
    return f"{least} attempts each" if least == most else f"{least} to {most} attempts"


# What each course drill did, in words, from its own result (docs/reliability.md).
COURSE_DRILL_TEXT: dict[str, Callable[[argparse.Namespace, dict], str]] = {
    "worker-killed": lambda a, r: (
        f"Two workers drain the opening sweep's e-mails. When the server had received "
        f"its {r['killed_after_received']}th message, it killed the worker that sent it "
        f"(SIGKILL, before answering 250: inside the at-least-once window), and a third "
        f"worker was started. The dead worker left {r['rows_left_by_the_dead_worker']} "
        f"claimed rows behind (back after the {a.lease} s lease, "
        f"`REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS`). At the kill, "
        f"{r['window_message_ids']} Message-IDs had been accepted by the server with "
        f"their row not yet `sent` (the dead worker's message, and any the live worker "
        f"was between its 250 and its update on); their second copies are counted in the "
        f"window. Everything settled {r['settled_after_kill_s']:g} s after the kill."
    ),
    "smtp-down": lambda a, r: (
        f"Nothing listens on the SMTP port for a simulated {a.outage_hours:g} h "
        f"({r['outage_s']} s: the retry schedule compressed {a.compress:g} times through "
        f"`REZCOURSE_EMAIL_RETRY_BASE_SECONDS={r['retry_base_s']}` and "
        f"`REZCOURSE_EMAIL_RETRY_MAX_SECONDS={r['retry_cap_s']}` in the workers' "
        f"environment, and beat's one-minute drain every {60 / a.compress:g} s; the "
        f"clock is not moved). At the end of the outage the {r['during_outage']['rows']} "
        f"rows had made {_span(r['during_outage']['least'], r['during_outage']['most'])} "
        f"of the {r['max_attempts']} allowed (the real schedule's attempts at 0, "
        f"1, 3, 7, 15 and 31 minutes; the next at 61), {r['during_outage']['sent']} sent "
        f"and {r['during_outage']['failed']} given up. Then the server comes up on the same "
        f"port; everything settled {r['settled_after_up_s']:g} s later."
    ),
    "redis-down": lambda a, r: (
        f"The workers and this process use a private `redis-server` (port {a.redis_port}, "
        f"no persistence). Once the alerts of the opening sweep were open and their "
        f"e-mails sent, it is stopped, and {r['records_saved']} HSCT referrals are saved "
        f"through `courses.services.referral_save` (the longest save took "
        f"{r['longest_save_s']:g} s); {r['reevaluations_not_published']} on-commit "
        f"re-evaluations could not be published. The saves change "
        f"{r['conditions_changed']} conditions of those courses (a missing referral "
        f"cleared; a transplant a week away with no MRD); of the "
        f"{r['conditions_implied']} the rules then find on them, "
        f"{r['implied_open_while_down']} had an open alert while Redis was down, "
        f"{r['implied_open_after']} after. Redis stays down {a.down:g} s (the compressed "
        f"beat's publishes failing: {r['publishes_failed']}), comes back empty, the "
        f"workers reconnect and the periodic sweeps catch up: settled "
        f"{r['settled_after_up_s']:g} s after Redis came back."
    ),
    "two-sweeps": lambda a, r: (
        f"No fault: from the opening sweep on, {r['records_saved']} HSCT referrals saved "
        f"through the services while the sweeps run (each queueing its course's "
        f"re-evaluation); settled after {r['settled_s']:g} s."
    ),
}
COURSE_DRILL_HEADINGS = {
    "worker-killed": "## A worker killed while draining",
    "smtp-down": "## SMTP server down for an hour",
    "redis-down": "## Redis down while records are saved",
    "two-sweeps": "## Two sweeps on two workers",
}


def course_drill_section(name: str) -> Callable[[argparse.Namespace, list], str]:
    def write(args: argparse.Namespace, runs: list[tuple[str, dict]]) -> str:
        from bench.common import machine

        rows = []
        for label, r in runs:
            a, e = r["alerts"], r["emails"]
            rows.append(
                f"| {label} | {a['expected']} | {a['opened']} | {a['missing']} | "
                f"{a['duplicated']} | {e['expected']} | {e['delivered']} | "
                f"{e['duplicated_in_window']} | {e['duplicated_outside_window']} | "
                f"{e['lost']} | {e['failed']} | {r['sweeps']} | "
                f"{r['sweeps_on_workers']['overlapping']} | {r['task_errors']} |"
            )
        return "\n".join(
            [
                COURSE_DRILL_HEADINGS[name],
                "",
                f"Command: `{_command(args)}`",
                "",
                f"Run on {date.today().isoformat()}. Machine: {machine()}; {_versions()}; "
                "PostgreSQL, Redis, the workers and the SMTP server on the same machine.",
                "",
                f"{args.courses} synthetic courses, {args.recipients} clinicians who hear "
                f"every alert at once; two `celery -A config worker --pool=solo` processes; "
                f"two sweeps queued at once every {args.sweep_every:g} s and a drain every "
                f"{args.drain_every:g} s (a compressed beat). "
                + COURSE_DRILL_TEXT[name](args, runs[-1][1]),
                "",
                "| code | alerts expected | opened | missing | duplicated | e-mails expected "
                "| delivered | duplicated in the window | duplicated otherwise | lost "
                "| given up | periodic sweeps | of them at once on two workers | task errors |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
                "| --- |",
                *rows,
                "",
            ]
        )

    return write


for _name, _run in (
    ("worker-killed", worker_killed),
    ("smtp-down", smtp_down),
    ("redis-down", redis_down),
    ("two-sweeps", two_sweeps),
):
    DRILLS[_name] = (_run, COURSE_DRILL_HEADINGS[_name], course_drill_section(_name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("drill", choices=[*sorted(DRILLS), "all"])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rezcourse_drill"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--workers", type=int, default=3, help="slow-smtp's workers")
    parser.add_argument("--emails", type=int, default=100, help="slow-smtp's e-mails")
    parser.add_argument("--data-delay", type=float, default=1.0, help="seconds before each 250")
    parser.add_argument("--lease", type=int, default=20, help="claim lease, seconds")
    parser.add_argument("--drain-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--limit", type=float, default=300.0, help="give up after, seconds")
    parser.add_argument("--courses", type=int, default=600, help="course drills' cohort")
    parser.add_argument("--recipients", type=int, default=4, help="clinicians in the team")
    parser.add_argument("--sweep-every", type=float, default=2.0, help="two sweeps, seconds")
    parser.add_argument("--quiet", type=float, default=3.0, help="server quiet before counting")
    parser.add_argument("--kill-after", type=int, default=300, help="e-mails received first")
    parser.add_argument("--compress", type=float, default=60.0, help="smtp-down's time factor")
    parser.add_argument("--outage-hours", type=float, default=1.0, help="simulated")
    parser.add_argument("--redis-port", type=int, default=6391, help="the private redis")
    parser.add_argument("--down", type=float, default=10.0, help="Redis down, seconds")
    parser.add_argument("--records", type=int, default=20, help="records saved")
    parser.add_argument("--baseline-code", type=Path, help="a checkout to run first")
    parser.add_argument("--baseline-label", default="baseline", help="its name in the table")
    parser.add_argument("--label", default="this checkout", help="this checkout's name")
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs here")
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the drills need PostgreSQL (--database-url postgres://...)")
    _setup_django(args.database_url, args.redis_url)
    names = list(DRILLS) if args.drill == "all" else [args.drill]
    clean = True
    summary = []
    for name in names:
        run, heading, write = DRILLS[name]
        codes = [(args.label, ROOT)]
        if args.baseline_code:
            codes.insert(0, (args.baseline_label, args.baseline_code.resolve()))
        runs = []
        for label, code_dir in codes:
            print(f"{name}: workers from {code_dir} ...", flush=True)
            result = run(args, code_dir)
            print(f"  {result}", flush=True)
            runs.append((label, result))
        clean = clean and _clean(runs[-1][1])
        summary.append((name, runs[-1][1]))
        section = write(args, runs)
        print(section)
        # `all` keeps slow-smtp's own section, whose table holds a baseline run.
        if args.write_docs and not (args.drill == "all" and name == "slow-smtp"):
            _write_docs(args.write_docs, heading, section)
    if args.drill == "all":
        section = all_section(args, summary)
        print(section)
        if args.write_docs:
            _write_docs(args.write_docs, ALL_SECTION, section)
    return 0 if clean else 1


def _write_docs(path: Path, heading: str, section: str) -> None:
    from bench.common import write_section

    write_section(path, heading, section, title="# Reliability")
    print(f"Updated the '{heading[3:]}' section of {path}")


ALL_SECTION = "## Every drill, one run"


def all_section(args: argparse.Namespace, results: list[tuple[str, dict]]) -> str:
    """One table for the drills of one `all` run."""
    from bench.common import machine

    rows = []
    for name, r in results:
        if "alerts" not in r:  # slow-smtp: e-mails only, written directly
            rows.append(
                f"| {name} | - | - | - | {r['expected']} | {r['delivered']} | 0 | "
                f"{r['duplicated']} | {r['lost']} | {r['rows'].get('failed', 0)} |"
            )
            continue
        a, e = r["alerts"], r["emails"]
        rows.append(
            f"| {name} | {a['expected']} | {a['opened']} | {a['duplicated']} | "
            f"{e['expected']} | {e['delivered']} | {e['duplicated_in_window']} | "
            f"{e['duplicated_outside_window']} | {e['lost']} | {e['failed']} |"
        )
    return "\n".join(
        [
            ALL_SECTION,
            "",
            f"Command: `{_command(args)}`",
            "",
            f"Run on {date.today().isoformat()}. Machine: {machine()}; {_versions()}; "
            "PostgreSQL, Redis, the workers and the SMTP server on the same machine. Each "
            "drill's section below (or above) tells what it did; slow-smtp's section keeps "
            "its own run, with the baseline.",
            "",
            "| drill | alerts expected | opened | duplicated | e-mails expected | delivered "
            "| duplicated in the window | duplicated otherwise | lost | given up |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def _clean(result: dict) -> bool:
    """The target: nothing lost, nothing doubled outside the window, no task crashed."""
    if "alerts" not in result:  # slow-smtp
        return result["lost"] == 0 and result["duplicated"] == 0
    a, e = result["alerts"], result["emails"]
    return (
        a["missing"] == a["unexpected"] == a["duplicated"] == 0
        and e["lost"] == e["duplicated_outside_window"] == e["failed"] == 0
        and result["task_errors"] == 0
    )


if __name__ == "__main__":
    sys.exit(main())
