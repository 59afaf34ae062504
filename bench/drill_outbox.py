"""Fault drills for the e-mail outbox on real services.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rezcourse_drill \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m bench.drill_outbox slow-smtp \\
        --workers 3 --data-delay 1 --lease 20 --emails 100 \\
        [--baseline-code DIR] [--write-docs docs/reliability.md]

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

``--baseline-code DIR`` first runs the workers from another checkout on the same
database and data (main before a fix, say, exported with ``git archive main | tar -x -C
DIR``), then from this one. The data and the schema are this checkout's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


# --- the harness every drill uses ---------------------------------------------------------


class SmtpSink:
    """An aiosmtpd handler that waits ``delay`` seconds before answering each DATA (the
    message is in: only the server's 250 is late) and records each Message-ID."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.message_ids: list[str] = []
        self.last_received = time.monotonic()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        headers = BytesParser(policy=default_policy).parsebytes(envelope.content, headersonly=True)
        self.message_ids.append(str(headers["Message-ID"]))
        self.last_received = time.monotonic()
        return "250 Message accepted for delivery"


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
    workers = []
    logs = []
    try:
        for i in range(count):
            log = open(log_dir / f"worker-{i}.log", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
            logs.append(log)
            workers.append(
                subprocess.Popen(
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
                        f"{queue}-{i}@%h",
                        "--without-mingle",
                        "--without-gossip",
                        "--loglevel=WARNING",
                    ],
                    cwd=code_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield workers
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=120)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        for log in logs:
            if log is not subprocess.DEVNULL:
                log.close()


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


# name -> (run, section heading, section writer)
DRILLS: dict[str, tuple[Callable[..., dict], str, Callable[..., str]]] = {
    "slow-smtp": (slow_smtp, SLOW_SMTP_SECTION, slow_smtp_section),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("drill", choices=sorted(DRILLS))
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rezcourse_drill"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--emails", type=int, default=100)
    parser.add_argument("--data-delay", type=float, default=1.0, help="seconds before each 250")
    parser.add_argument("--lease", type=int, default=20, help="claim lease, seconds")
    parser.add_argument("--drain-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--limit", type=float, default=300.0, help="give up after, seconds")
    parser.add_argument("--baseline-code", type=Path, help="a checkout to run first")
    parser.add_argument("--baseline-label", default="baseline", help="its name in the table")
    parser.add_argument("--label", default="this checkout", help="this checkout's name")
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs here")
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("the drills need PostgreSQL (--database-url postgres://...)")
    run, heading, write = DRILLS[args.drill]
    _setup_django(args.database_url, args.redis_url)
    codes = [(args.label, ROOT)]
    if args.baseline_code:
        codes.insert(0, (args.baseline_label, args.baseline_code.resolve()))
    runs = []
    for label, code_dir in codes:
        print(f"{args.drill}: workers from {code_dir} ...", flush=True)
        result = run(args, code_dir)
        print(f"  {result}", flush=True)
        runs.append((label, result))
    section = write(args, runs)
    print(section)
    if args.write_docs:
        from bench.common import write_section

        write_section(args.write_docs, heading, section, title="# Reliability")
        print(f"Updated the '{heading[3:]}' section of {args.write_docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
