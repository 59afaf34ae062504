"""Shared fixtures.

Service-backed tests (PostgreSQL, Redis, a Celery worker, SMTP) skip when their
service is not configured — so `make test` passes on a laptop with nothing but
Python — unless REZCOURSE_REQUIRE_SERVICES=1 (set by .ci/run), in which case a
missing or unreachable service fails the run with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from courses import services as course_services
from courses.models import Patient, TreatmentCourse
from teams.models import Role, Team
from tests.factories import MembershipFactory, TeamFactory, UserFactory

REQUIRE_SERVICES = os.environ.get("REZCOURSE_REQUIRE_SERVICES") == "1"


def _redis_problem(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return f"Redis at {url} is unreachable ({type(exc).__name__}: {exc})"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under REZCOURSE_REQUIRE_SERVICES=1, fail before running anything if a service
    is missing — a suite that silently skipped its real-service tests proves nothing."""
    if not REQUIRE_SERVICES:
        return
    problems = []
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        problems.append(f"DATABASE_URL must point at PostgreSQL (got {database_url or 'nothing'})")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        problems.append("REDIS_URL is not set: Redis is required")
    elif problem := _redis_problem(redis_url):
        problems.append(problem)
    if problems:
        pytest.exit("REZCOURSE_REQUIRE_SERVICES=1 but: " + "; ".join(problems), returncode=3)


def fresh_broker_connections() -> None:
    """Forget the Celery app's connection and producer pools, so the next publish
    connects afresh to the current broker_url (tests switch brokers, and beat or a
    stopped worker may leave a closed pool behind)."""
    from kombu import pools

    from config.celery import app

    app._pool = None
    app.amqp._producer_pool = None
    pools.reset()


def run_concurrently(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Start every call at the same moment (a barrier), each in its own thread with
    its own database connection; return their results (an exception is returned, not
    raised, so the test can assert on it)."""
    import threading

    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


def service_unavailable(message: str) -> None:
    """Skip locally, fail under REZCOURSE_REQUIRE_SERVICES=1."""
    if REQUIRE_SERVICES:
        pytest.fail(message + " (REZCOURSE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        service_unavailable("Redis: REDIS_URL is not set")
    if problem := _redis_problem(url):
        service_unavailable(problem)
    return url


@pytest.fixture
def postgres(db: None) -> None:
    """Tests that need PostgreSQL semantics (row locks, concurrent transactions)."""
    if connection.vendor != "postgresql":
        service_unavailable(
            f"PostgreSQL: DATABASE_URL points at {connection.vendor}, not PostgreSQL"
        )


@pytest.fixture
def team(db: None) -> Team:
    return TeamFactory(name="Team X", slug="x")


@pytest.fixture
def other_team(db: None) -> Team:
    return TeamFactory(name="Team Y", slug="y")


@pytest.fixture
def member(db: None) -> Callable[..., object]:
    """member(team, role) -> a user holding that role in that team."""

    def make(team: Team, role: str = Role.CLINICIAN, **user_fields: object) -> object:
        return MembershipFactory(team=team, role=role, user=UserFactory(**user_fields)).user

    return make


@pytest.fixture
def api() -> Callable[[object | None], APIClient]:
    """api(user) -> an APIClient sending that user's real API token (None: anonymous).

    A real token rather than force_authenticate: each request loads the user afresh,
    as in production, so per-request caches and query counts are honest."""
    from teams.services import token_get_or_create

    def make(user: object | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {token_get_or_create(user).key}")
        return client

    return make


@pytest.fixture
def clinician(team: Team, member: Callable[..., object]) -> object:
    return member(team, Role.CLINICIAN)


@pytest.fixture
def coordinator(team: Team, member: Callable[..., object]) -> object:
    return member(team, Role.COORDINATOR)


@pytest.fixture
def viewer(team: Team, member: Callable[..., object]) -> object:
    return member(team, Role.VIEWER)


@pytest.fixture
def make_patient(db: None) -> Callable[..., Patient]:
    counter = iter(range(1, 10_000))

    def make(team: Team, **fields: Any) -> Patient:
        data = {
            "reference": f"P-{next(counter):04d}",
            "birth_year": 2015,
            "sex": "male",
            "immunophenotype": "B",
            "initial_diagnosis_date": date(2022, 1, 10),
            "frontline_protocol": "AIEOP-BFM ALL 2017",
            "frontline_end_date": date(2024, 1, 10),
            **fields,
        }
        return course_services.patient_create(team_id=team.pk, data=data, now=timezone.now())

    return make


@pytest.fixture
def make_course(make_patient: Callable[..., Patient]) -> Callable[..., TreatmentCourse]:
    """make_course(team, actor, protocol=..., confirm=True, blocks=(), **relapse) -> a course.

    Defaults: a first B-lineage isolated marrow relapse 2024-03-01 without a prior HSCT
    (relapse_number 1 unless one is recorded), which is "early" (>= 18
    months after diagnosis 2022-01-10, < 6 months after front-line end 2024-01-10):
    group A under ALL-REZ BFM 90 (HSCT indicated), S3 under ALL-REZ BFM 2002."""

    def make(
        team: Team,
        actor: Any,
        *,
        protocol: str = "all-rez-bfm-90",
        confirm: bool = True,
        patient: Patient | None = None,
        blocks: tuple[tuple[str, date], ...] = (),
        **relapse: Any,
    ) -> TreatmentCourse:
        # Given, as a team must: the service has no "first relapse, no prior HSCT" of its
        # own. A later relapse of a patient takes its number from the records.
        patient = patient or make_patient(team)
        first = {} if patient.relapses.exists() else {"relapse_number": 1}
        data = {
            "relapse_date": date(2024, 3, 1),
            "site": "isolated_bm",
            "em_sites": [],
            "bm_blast_percent": 80.0,
            **first,
            "prior_hsct": False,
            **relapse,
        }
        rel = course_services.relapse_create(patient=patient, data=data, now=timezone.now())
        course = course_services.course_create(
            relapse=rel, protocol_slug=protocol, actor=actor, now=timezone.now()
        )
        # Blocks given before the confirmation (back-entered): the course starts with
        # the first, and the protocol's block-anchored days (after F2) count from them.
        for block_type, start in blocks:
            course_services.block_record(
                course,
                data={"block_type": block_type, "start_date": start},
                actor=actor,
                now=timezone.now(),
            )
        if confirm:
            course = course_services.course_confirm_stratification(
                course,
                risk_group=course.proposed_group,
                reason="",
                actor=actor,
                now=timezone.now(),
            )
        return course

    return make


@pytest.fixture
def make_alert(db: None) -> Callable[..., Any]:
    """make_alert(course, **fields) -> an open low-severity course_stalled alert."""
    from notifications.models import Alert

    def make(course: TreatmentCourse, **fields: Any) -> Any:
        data = {
            "kind": "course_stalled",
            "severity": "low",
            "message": "No activity for a while.",
            "caveat": "c",
            "condition_since": date(2026, 11, 1),
            "opened_at": timezone.now(),
            **fields,
        }
        return Alert.objects.create(course=course, **data)

    return make


# The induction blocks as the built-in protocols' templates give them: ALL-REZ BFM 90
# starts R2 then R1, ALL-REZ BFM 2002 F1 then F2, the second on day 22 (the first's
# start + 21 days). The end of induction is the second block's start + 5 days (the
# protocol files' end_of_induction), and CR2 is judged no earlier.
INDUCTION_BLOCKS = {"all-rez-bfm-90": ("R2", "R1"), "all-rez-bfm-2002": ("F1", "F2")}


def induction_blocks(
    first: date = date(2026, 10, 13), protocol: str = "all-rez-bfm-90"
) -> tuple[tuple[str, date], ...]:
    """The two induction blocks from ``first``, for make_course(blocks=...): by default
    R2 on 2026-10-13 and R1 on 2026-11-03, so induction ends 2026-11-08 and a CR2
    assessed on day 42 (2026-11-24, the response step's day) is accepted."""
    one, two = INDUCTION_BLOCKS[protocol]
    return ((one, first), (two, first + timedelta(days=21)))
