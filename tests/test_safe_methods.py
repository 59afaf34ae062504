"""HEAD and OPTIONS never write, on any route.

A viewer once took a course off protocol with ``HEAD .../transitions/``: DRF routes
HEAD to the GET handler, the permission layer treats HEAD as safe, and the handler
branched on ``request.method == "GET"``, so HEAD ran the write branch. This walks every
route in the URL conf, fills its parameters with real objects of the viewer's team,
sends HEAD and OPTIONS with a write body, and checks that no row of any table changed.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from courses import services as course_services
from notifications.models import Alert, OutboundEmail
from teams.models import Role
from teams.services import token_get_or_create

pytestmark = pytest.mark.django_db

# A body that would be a valid write on the most dangerous endpoints.
WRITE_BODY = {
    "transition": "take_off_protocol",
    "reason": "x",
    "off_protocol_reason": "death",
    "risk_group": "A",
    "hsct_indicated": True,
    "referred_on": "2026-11-24",
    "kind": "death",
    "occurred_on": "2026-11-24",
    "block_type": "R2",
    "start_date": "2026-11-24",
    "until": "2026-11-30",
    "name": "renamed",
    "birth_year": 2010,
}


def _routes(resolver: URLResolver, prefix: str = "") -> list[str]:
    found: list[str] = []
    for entry in resolver.url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _routes(entry, pattern)
        elif isinstance(entry, URLPattern):
            found.append(pattern)
    return found


def _concrete(pattern: str, ids: dict[str, int]) -> str | None:
    """Fill a route's parameters; None for a route this walk cannot name (static
    files, admin internals) — those are Django's own, not ours."""
    path = pattern.replace("^", "").replace("$", "").replace("\\Z", "")
    if "(?P<format>" in path or "<drf_format_suffix" in path:
        return None

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name == "pk":
            # The collection the pk belongs to: the path segment before it.
            collection = match.string[: match.start()].rstrip("/").rsplit("/", 1)[-1]
            name = f"{collection}:pk"
        if name not in ids:
            raise KeyError(name)
        return str(ids[name])

    try:
        # Regex groups first: their "<name>" would otherwise match the converter form.
        path = re.sub(r"\(\?P<(?P<name>\w+)>[^)]*\)", fill, path)
        path = re.sub(r"<(?:\w+:)?(?P<name>\w+)>", fill, path)
    except KeyError:
        return None
    if any(ch in path for ch in "()[]*+?\\"):
        return None
    return "/" + path


def _snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        model._meta.label: sorted(
            map(repr, model.objects.order_by().values_list())  # repr: mixed types sort
        )
        for model in apps.get_models()
    }


@pytest.fixture
def world(team, member, make_course, time_machine) -> dict[str, Any]:
    from datetime import datetime

    time_machine.move_to(datetime.fromisoformat("2026-11-24T10:00:00+00:00"), tick=False)
    clinician = member(team, Role.CLINICIAN)
    viewer = member(team, Role.VIEWER)
    course = make_course(team, clinician)
    course_services.block_record(
        course,
        data={"block_type": "R2", "start_date": date(2026, 11, 20)},
        actor=clinician,
        now=datetime.fromisoformat("2026-11-24T10:00:00+00:00"),
    )
    alert = Alert.objects.create(
        course=course,
        kind="course_stalled",
        severity="low",
        message="m",
        caveat="c",
        condition_since=date(2026, 11, 1),
        opened_at=datetime.fromisoformat("2026-11-24T10:00:00+00:00"),
    )
    email = OutboundEmail.objects.create(
        team=team,
        recipient="x@example.org",
        kind="immediate",
        alert=alert,
        subject="s",
        body_text="b",
        idempotency_key="k",
        next_attempt_at=datetime.fromisoformat("2026-11-24T10:00:00+00:00"),
        created_at=datetime.fromisoformat("2026-11-24T10:00:00+00:00"),
    )
    step = course.steps.first()
    membership = viewer.memberships.get()
    ids = {
        "course_pk": course.pk,
        "object_id": course.pk,
        "membership": membership.pk,
        "courses:pk": course.pk,
        "patients:pk": course.patient_id,
        "relapses:pk": course.relapse_id,
        "steps:pk": step.pk,
        "alerts:pk": alert.pk,
        "outbox:pk": email.pk,
        "teams:pk": team.pk,
        "memberships:pk": membership.pk,
        "stratification-decisions:pk": course.decision_id,
    }
    return {
        "viewer": viewer,
        "clinician": clinician,
        "ids": ids,
        "step": step,
        "alert": alert,
        "email": email,
    }


@pytest.mark.parametrize("role", ["viewer", "clinician"])
def test_head_and_options_on_every_route_change_nothing(client, world, role) -> None:
    # A viewer may not write at all; a clinician may, but never through HEAD/OPTIONS.
    token = token_get_or_create(world[role]).key
    walked = sorted({u for p in _routes(get_resolver()) if (u := _concrete(p, world["ids"]))})
    assert f"/api/v1/courses/{world['ids']['course_pk']}/transitions/" in walked
    assert f"/api/v1/alerts/{world['alert'].pk}/snooze/" in walked
    assert len(walked) > 40, walked

    before = _snapshot()
    for url in walked:
        for method in ("head", "options"):
            response = getattr(client, method)(
                url,
                data=WRITE_BODY,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Token {token}",
            )
            assert response.status_code < 500, (method, url, response.status_code)
    after = _snapshot()
    changed = [label for label in before if before[label] != after[label]]
    # Token auth stamps nothing and sessions are not used: any change is a write.
    assert changed == [], f"HEAD/OPTIONS changed {changed}"


def test_head_on_transitions_answers_like_get_and_leaves_the_course(
    client,
    world,
) -> None:
    token = token_get_or_create(world["viewer"]).key
    url = f"/api/v1/courses/{world['ids']['course_pk']}/transitions/"
    # The write as a body, as the curl of the report sent it (the test client's head()
    # puts data in the query string, which is now refused: config/query.py).
    head = client.generic(
        "HEAD",
        url,
        json.dumps(WRITE_BODY),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    in_query = client.head(url, data=WRITE_BODY, HTTP_AUTHORIZATION=f"Token {token}")
    assert in_query.status_code == 400  # undeclared query parameters
    get = client.get(url, HTTP_AUTHORIZATION=f"Token {token}")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert get.json()["state"] == "stratified"
