"""The schema tells the truth (issue 15, finding 5): config/schema.py, nullable and
blank-as-null fields, unpaginated answers, and a warning-free generation."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone

from courses import services as course_services

pytestmark = pytest.mark.django_db

ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def schema(api, clinician) -> dict:
    return api(clinician).get("/api/schema/?format=json").json()


def test_generation_is_valid_and_warning_free(tmp_path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))


def test_every_operation_documents_its_error_answers_with_the_error_shape(schema) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            expected = {"400", "401", "403", "404"}
            if method in {"post", "put", "patch", "delete"}:
                expected.add("409")
            if "requestBody" in operation:
                expected |= {"413", "415"}
            responses = operation["responses"]
            assert expected <= responses.keys(), (method, path)
            for code in expected:
                assert responses[code]["content"]["application/json"]["schema"] == ERROR_REF
                assert responses[code]["description"], (method, path, code)


def test_request_bodies_declare_that_they_take_no_other_properties(schema) -> None:
    components = schema["components"]["schemas"]
    for name in (
        "PatientRequest",
        "RelapseRequest",
        "StratifyRequestRequest",
        "PatchedTeamRequest",
    ):
        assert components[name]["additionalProperties"] is False, name


def test_nullable_fields_are_declared_nullable(schema) -> None:
    components = schema["components"]["schemas"]
    assert components["Alert"]["properties"]["acknowledged_by"]["nullable"] is True
    assert components["Alert"]["properties"]["resolved_by"]["nullable"] is True
    assert components["Alert"]["properties"]["resolution"]["nullable"] is True
    assert components["Relapse"]["properties"]["course"]["nullable"] is True
    assert components["Course"]["properties"]["off_protocol_reason"]["nullable"] is True
    assert components["AlertEvent"]["properties"]["actor"]["nullable"] is True


def test_unpaginated_answers_are_declared_as_such(schema) -> None:
    history = schema["paths"]["/api/v1/alerts/{id}/history/"]["get"]
    assert history["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert not {p["name"] for p in history.get("parameters", [])} & {"page", "ordering", "team"}
    referral = schema["paths"]["/api/v1/courses/{course_pk}/hsct-referral/"]["get"]
    assert referral["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Referral"
    }
    assert "parameters" not in referral or not [
        p for p in referral["parameters"] if p["in"] == "query"
    ]


def test_blank_enums_are_null_in_answers(api, team, clinician, make_course, make_alert) -> None:
    """Alert.resolution and Course.off_protocol_reason answered "" (not in their enums)."""
    course = make_course(team, clinician)
    alert = make_alert(course)
    client = api(clinician)
    answer = client.get(f"/api/v1/alerts/{alert.pk}/").json()
    assert answer["resolution"] is None
    assert answer["acknowledged_by"] is None and answer["resolved_by"] is None
    assert client.get(f"/api/v1/courses/{course.pk}/").json()["off_protocol_reason"] is None
    course = course_services.course_transition(
        course,
        name="take_off_protocol",
        reason="family's decision",
        off_protocol_reason="withdrawal",
        expected_version=None,
        actor=clinician,
        now=timezone.now(),
    )
    assert client.get(f"/api/v1/courses/{course.pk}/").json()["off_protocol_reason"] == "withdrawal"
    history = client.get(f"/api/v1/alerts/{alert.pk}/history/")
    assert isinstance(history.json(), list)
