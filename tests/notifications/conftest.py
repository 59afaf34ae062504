from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from notifications.models import Alert, AlertState, OutboundEmail
from notifications.services import SweepResult, alerts_sweep

START = "2026-11-24T10:00:00+00:00"


@pytest.fixture
def clock(time_machine: Any) -> Callable[[str], datetime]:
    """clock("2026-12-08") -> move the frozen time to that day, 10:00 UTC (11:00 in
    the teams' Europe/Berlin)."""

    def move(day: str) -> datetime:
        time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)
        return timezone.now()

    move(START[:10])
    return move


@pytest.fixture
def sweep() -> Callable[..., SweepResult]:
    def run(**kwargs: Any) -> SweepResult:
        return alerts_sweep(timezone.now(), **kwargs)

    return run


def register_group_a(client: Any, team: Any, *, start: str | None = None) -> int:
    """A girl diagnosed 2024-05-03, front-line therapy ended 2026-06-01, an isolated
    marrow relapse on 2026-10-20: early (>= 18 months after diagnosis, < 6 months after
    the end of therapy), group A under ALL-REZ BFM 90, HSCT indicated. Registered
    through the API now; with ``start``, confirmed too, therapy from that day."""
    patient = client.post(
        "/api/v1/patients/",
        {
            "team": team.pk,
            "reference": "NORTH-0022",
            "birth_year": 2016,
            "sex": "female",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2024-05-03",
            "frontline_protocol": "AIEOP-BFM ALL 2017",
            "frontline_end_date": "2026-06-01",
        },
        format="json",
    )
    assert patient.status_code == 201, patient.content
    relapse = client.post(
        "/api/v1/relapses/",
        {
            "patient": patient.json()["id"],
            "relapse_date": "2026-10-20",
            "site": "isolated_bm",
            "em_sites": [],
            "bm_blast_percent": 70,
            "relapse_number": 1,
            "prior_hsct": False,
        },
        format="json",
    )
    assert relapse.status_code == 201, relapse.content
    course = client.post(
        "/api/v1/courses/",
        {"relapse": relapse.json()["id"], "protocol": "all-rez-bfm-90"},
        format="json",
    )
    assert course.status_code == 201, course.content
    assert (course.json()["proposed_group"], course.json()["hsct_indicated"]) == ("A", True)
    pk = course.json()["id"]
    if start is not None:
        confirmed = client.post(
            f"/api/v1/courses/{pk}/confirm-stratification/",
            {"risk_group": "A", "start_date": start},
            format="json",
        )
        assert confirmed.status_code == 200, confirmed.content
    return pk


def unresolved(course: Any, kind: str) -> list[Alert]:
    return list(Alert.objects.filter(course=course, kind=kind).exclude(state=AlertState.RESOLVED))


class Recorder:
    """An aiosmtpd handler that keeps what it receives and refuses listed mailboxes;
    ``delay`` seconds before answering each DATA make it a slow server."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.refuse: set[str] = set()
        self.delay = 0.0
        self.in_flight = self.most_in_flight = 0  # DATA commands being answered at once

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[Any]:
        from email import message_from_bytes, policy

        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


def pending_emails(team: Any, count: int, key: str = "test") -> list[OutboundEmail]:
    """Due outbox rows as the sweep writes them, written directly (a committed sweep
    would also kick a drain)."""
    now = timezone.now()
    return OutboundEmail.objects.bulk_create(
        OutboundEmail(
            team=team,
            recipient=f"member{i}@example.org",
            kind="immediate",
            subject=f"[rezcourse] notice {i}",
            body_text="text",
            idempotency_key=f"{key}:{i}",
            next_attempt_at=now,
            created_at=now,
        )
        for i in range(count)
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """A real SMTP server on a loopback port, started and stopped by the test."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.port = port
        self.handler = Recorder()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port)
        self.running = False

    def start(self) -> None:
        self.controller.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False


@pytest.fixture
def smtp(settings: Any) -> Any:
    """An SMTP server the project is configured to use; ``smtp.stop()`` /
    ``smtp.start()`` simulate an outage."""
    server = SmtpServer(free_port())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    server.start()
    yield server
    server.stop()
