"""Property-based testing of the whole API against its own OpenAPI schema (schemathesis).

A live server (pytest-django's ``live_server``, a real HTTP server on the test
database: PostgreSQL in CI) answers requests that schemathesis generates from the
schema the API serves: valid and invalid bodies, query parameters and path ids, as a
real coordinator with real data (a confirmed course with its steps, a block, an alert,
an e-mail, a second team whose ids must stay invisible). Every answer must be no
server error, documented (status code, content type) and shaped as the schema says.
Path ids are mostly the seeded objects' (so the operations do real work) and
sometimes whatever was generated (the 404s).

The budget is bounded and the run reproducible: ``REZCOURSE_FUZZ_EXAMPLES`` examples
per operation and generation mode (default 8; ``make fuzz`` runs 200), derandomized.
The stateful phase chains operations through the links schemathesis infers from the
schema (a course created, then read, confirmed, moved ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from courses import services as course_services
from notifications.models import OutboundEmail
from teams.models import Role
from teams.services import token_get_or_create

EXAMPLES = int(os.environ.get("REZCOURSE_FUZZ_EXAMPLES", "8"))
# The coverage phase (every boundary of every parameter: about 2 minutes) runs in
# `make fuzz`; the suite runs the others.
PHASES = os.environ.get("REZCOURSE_FUZZ_PHASES", "examples,fuzzing,stateful")
SEED = os.environ.get("REZCOURSE_FUZZ_SEED", "20261124")
TIMEOUT = float(os.environ.get("REZCOURSE_FUZZ_TIMEOUT", "600"))
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
NOW = datetime.fromisoformat("2026-11-24T10:00:00+00:00")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fuzz_world(team, other_team, member, make_course, make_alert) -> dict[str, Any]:
    coordinator = member(team, Role.COORDINATOR, email="coord@example.org")
    clinician = member(team, Role.CLINICIAN)
    member(team, Role.VIEWER)
    course = make_course(team, coordinator)
    course_services.block_record(
        course,
        data={"block_type": "R2", "start_date": date(2026, 11, 20)},
        actor=coordinator,
        now=timezone.now(),
    )
    alert = make_alert(course)
    email = OutboundEmail.objects.create(
        team=team,
        recipient="coord@example.org",
        kind="immediate",
        alert=alert,
        subject="s",
        body_text="b",
        idempotency_key="k",
        next_attempt_at=NOW,
        created_at=NOW,
    )
    elsewhere = make_course(other_team, member(other_team, Role.COORDINATOR))
    ids = {
        "courses": course.pk,
        "patients": course.patient_id,
        "relapses": course.relapse_id,
        "steps": course.steps.order_by("sequence").first().pk,
        "alerts": alert.pk,
        "outbox": email.pk,
        "teams": team.pk,
        "memberships": clinician.memberships.get().pk,
        "notification-preferences": coordinator.memberships.get().pk,
    }
    return {
        "token": token_get_or_create(coordinator).key,
        "ids": ids,
        "course_pk": course.pk,
        "other_course": elsewhere.pk,
    }


def test_every_operation_answers_as_documented(live_server, fuzz_world, tmp_path) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{live_server.url}/api/schema/",
        "--header",
        f"Authorization: Token {fuzz_world['token']}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--generation-deterministic",
        "--suppress-health-check",
        "all",
        "--workers",
        "1",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "REZCOURSE_FUZZ_IDS": json.dumps(fuzz_world["ids"]),
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    done = subprocess.run(
        # In a temporary folder: the command keeps a cache (.schemathesis/) where it runs.
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    if done.returncode != 0:
        pytest.fail(done.stdout[-60000:] + done.stderr[-5000:], pytrace=False)
