"""Every write operation refuses unknown fields, and free text and dates are bounded
(config/serializers.py; issue 15 findings 3 and 4, issue 11's misspelt fields).

The walk reads the write operations from the schema the API serves, so an endpoint
added later is walked too: one whose serializer does not come from config.serializers
fails here."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from django.utils import timezone

from courses import services as course_services
from courses.models import PlannedStep
from teams.models import Role
from tests.conftest import induction_blocks
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

UNKNOWN = "definitely_not_a_field"


@pytest.fixture
def seeded(team, member, make_course, make_alert) -> dict[str, Any]:
    coordinator = member(team, Role.COORDINATOR)
    clinician = member(team, Role.CLINICIAN)
    course = make_course(team, coordinator)
    course_services.referral_save(
        course, data={"referred_on": date(2024, 3, 20)}, actor=coordinator, now=timezone.now()
    )
    alert = make_alert(course)
    now = timezone.now()
    # One record of each kind, so the walk reaches their amend (PATCH) operations too.
    # Induction first (R2 from 2024-03-15, R1 from 2024-04-05): CR2 is judged no
    # earlier than its end (2024-04-10).
    first, second = induction_blocks(date(2024, 3, 15))
    course_services.block_record(
        course,
        data={"block_type": first[0], "start_date": first[1]},
        actor=coordinator,
        now=now,
    )
    records = {
        "blocks": course_services.block_record(
            course,
            data={"block_type": second[0], "start_date": second[1]},
            actor=coordinator,
            now=now,
        ),
        "assessments": course_services.assessment_record(
            course,
            data={
                "assessed_on": date(2024, 4, 26),
                "marrow": "M1",
                "cr2": True,
                "em_status": "none",
            },
            actor=coordinator,
            now=now,
        ),
        "mrd": course_services.mrd_record(
            course,
            data={
                "sampled_on": date(2024, 4, 1),
                "time_point": "pre_hsct",
                "unit": "fraction",
                "value": 0.001,
            },
            actor=coordinator,
            now=now,
        ),
        "events": course_services.event_record(
            course,
            data={"kind": "secondary_malignancy", "occurred_on": date(2024, 4, 2)},
            actor=coordinator,
            now=now,
        ),
    }
    ids = {
        **{kind: record.pk for kind, record in records.items()},
        "courses": course.pk,
        "course_pk": course.pk,
        "patients": course.patient_id,
        "relapses": course.relapse_id,
        "steps": course.steps.order_by("sequence").first().pk,
        "alerts": alert.pk,
        "teams": team.pk,
        "memberships": clinician.memberships.get().pk,
        "membership": coordinator.memberships.get().pk,
    }
    return {"coordinator": coordinator, "ids": ids, "course": course}


def _url(path: str, ids: dict[str, int]) -> str:
    segments = path.strip("/").split("/")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ids:
            return str(ids[name])
        return str(ids[segments[segments.index(match.group(0)) - 1]])

    return re.sub(r"\{(\w+)\}", fill, path)


def test_every_write_operation_refuses_an_unknown_field(api, seeded) -> None:
    client = api(seeded["coordinator"])
    schema = client.get("/api/schema/?format=json").json()
    walked = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            url = _url(path, seeded["ids"])
            response = client.generic(
                method.upper(), url, f'{{"{UNKNOWN}": 1}}', content_type="application/json"
            )
            assert response.status_code == 400, (method, url, response.content)
            fields = response.json()["error"]["fields"]
            assert fields[UNKNOWN] == ["is not a known field."], (method, url, fields)
            walked.append(f"{method.upper()} {path}")
    assert "POST /api/v1/relapses/" in walked and "PATCH /api/v1/teams/{id}/" in walked
    assert len(walked) >= 20, walked


def test_a_misspelt_relapse_field_is_a_400_naming_it(api, seeded) -> None:
    response = api(seeded["coordinator"]).post(
        "/api/v1/relapses/",
        {
            "patient": seeded["ids"]["patients"],
            "relapse_date": "2024-05-01",
            "site": "isolated_bm",
            "bm_blasts": 80,  # bm_blast_percent
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"bm_blasts": ["is not a known field."]}


def test_a_read_only_field_in_a_write_is_refused_as_such(
    api, seeded, team, other_team, member
) -> None:
    # The team was declared writable by mistake: PATCH moved a patient into another of
    # the requester's teams without a role check there.
    patient = seeded["course"].patient
    MembershipFactory(team=other_team, user=seeded["coordinator"], role=Role.VIEWER)
    response = api(seeded["coordinator"]).patch(
        f"/api/v1/patients/{patient.pk}/", {"team": other_team.pk, "created_at": "x"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "team": ["is read-only."],
        "created_at": ["is read-only."],
    }
    patient.refresh_from_db()
    assert patient.team_id == team.pk


def test_a_100000_character_note_is_a_400(api, seeded) -> None:
    """Finding 4: 100,000-character notes were stored. Free text without a limit of its
    own takes REZCOURSE_TEXT_MAX_LENGTH (5,000)."""
    course = seeded["course"]
    client = api(seeded["coordinator"])
    for url, body in (
        (
            f"/api/v1/courses/{course.pk}/events/",
            {"kind": "death", "occurred_on": "2024-06-01", "note": "x" * 100_000},
        ),
        (
            f"/api/v1/courses/{course.pk}/steps/",
            {"kind": "mrd", "mrd_time_point": "pre_hsct", "offset_days": 1, "note": "x" * 5001},
        ),
    ):
        response = client.post(url, body)
        assert response.status_code == 400, response.content
        assert response.json()["error"]["fields"] == {
            "note": ["Ensure this field has no more than 5000 characters."]
        }
    course.refresh_from_db()
    assert course.state == "stratified"  # the death was not recorded
    response = client.post(
        f"/api/v1/courses/{course.pk}/steps/",
        {"kind": "mrd", "mrd_time_point": "pre_hsct", "offset_days": 1, "note": "x" * 5000},
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("day", ["9999-12-31", "2201-01-01", "1899-12-31", "0001-01-01"])
def test_a_date_outside_1900_to_2200_is_a_400_not_an_overflow(api, seeded, day) -> None:
    """Finding 3: a step due near year 9999 was an OverflowError on PATCH and on adding a
    step after it."""
    course = seeded["course"]
    step = PlannedStep.objects.get(pk=seeded["ids"]["steps"])
    client = api(seeded["coordinator"])
    response = client.patch(f"/api/v1/courses/{course.pk}/steps/{step.pk}/", {"due_on": day})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {
        "due_on": ["must be between 1900-01-01 and 2200-12-31."]
    }
    added = client.post(
        f"/api/v1/courses/{course.pk}/steps/",
        {"kind": "mrd", "mrd_time_point": "pre_hsct", "after": step.key, "offset_days": 3650},
    )
    assert added.status_code == 201, added.content
    step.refresh_from_db()
    assert step.due_on.year < 2100


@pytest.mark.parametrize(
    ("field", "value"),
    [("note", 0), ("note", True), ("note", ["x"])],
)
def test_json_types_are_what_the_schema_says(api, seeded, field, value) -> None:
    response = api(seeded["coordinator"]).post(
        f"/api/v1/alerts/{seeded['ids']['alerts']}/acknowledge/", {field: value}
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("value", [0, "false", "no"])
def test_a_boolean_is_true_or_false(api, seeded, value) -> None:
    membership = seeded["coordinator"].memberships.get().pk
    response = api(seeded["coordinator"]).patch(
        f"/api/v1/notification-preferences/{membership}/", {"digest": value}
    )
    assert response.status_code == 400
    assert "digest" in response.json()["error"]["fields"]


@pytest.mark.parametrize("value", ["5", 5.0, True])
def test_an_integer_is_a_json_integer(api, seeded, value) -> None:
    response = api(seeded["coordinator"]).post(
        f"/api/v1/courses/{seeded['course'].pk}/steps/", {"kind": "mrd", "offset_days": value}
    )
    assert response.status_code == 400
    assert "offset_days" in response.json()["error"]["fields"]


def test_errors_of_list_items_are_named_by_their_path(api, seeded) -> None:
    response = api(seeded["coordinator"]).post(
        "/api/v1/relapses/",
        {
            "patient": seeded["ids"]["patients"],
            "relapse_date": "2024-05-01",
            "site": "combined",
            "em_sites": ["cns", "nowhere"],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "em_sites.1": ['"nowhere" is not a valid choice.']
    }
