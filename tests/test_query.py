"""Strict query parameters (issue 15, findings 5 and 6): config/query.py,
config/filters.py and config.api.Pagination, on every list endpoint."""

from __future__ import annotations

import pytest

from teams.models import Role

pytestmark = pytest.mark.django_db


def _fields(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=-1", "page"),
        ("page=1.5", "page"),
        ("page=last", "page"),
        ("page_size=-1", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("page_size=x", "page_size"),
        ("has_open_alerts=2", "has_open_alerts"),
        ("active=yes", "active"),
        ("active=", "active"),
        ("ordering=zzz", "ordering"),
        ("ordering=created_at,-nope", "ordering"),
        ("ordering=", "ordering"),
        ("format=", "format"),
        ("state=", "state"),
        ("team=0.5", "team"),
        ("patient=abc", "patient"),
        ("has_open_alert=true", "has_open_alert"),  # a typo is not "no filter"
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(api, clinician, query, parameter) -> None:
    assert parameter in _fields(api(clinician).get(f"/api/v1/courses/?{query}"))


def test_valid_parameters_still_work(api, team, clinician, make_course) -> None:
    make_course(team, clinician)
    client = api(clinician)
    query = "page=1&page_size=10&ordering=-created_at,state&active=true&has_open_alerts=false"
    response = client.get(f"/api/v1/courses/?{query}&format=json")
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1
    assert client.get("/api/v1/courses/?active=false").json()["count"] == 0
    assert client.get("/api/v1/courses/?active=FALSE").status_code == 400


def test_a_page_past_the_last_is_a_404(api, clinician) -> None:
    response = api(clinician).get("/api/v1/courses/?page=2")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/patients/?reference=a%00b",
        "/api/v1/courses/?risk_group=%1b",
        "/api/v1/dashboard/worklist/?risk_group=A%00",
        "/api/v1/courses/?prot%00ocol=x",
    ],
)
def test_control_characters_in_a_query_string_are_a_400(api, clinician, url) -> None:
    fields = _fields(api(clinician).get(url))
    assert list(fields.values()) == [["must not contain control characters (such as NUL)."]]


def test_the_web_app_refuses_them_too(client, clinician) -> None:
    client.force_login(clinician)
    assert client.get("/?risk_group=%00").status_code == 400


def test_a_parameter_the_schema_does_not_declare_is_refused_on_every_operation(
    api, team, clinician, make_course
) -> None:
    course = make_course(team, clinician)
    client = api(clinician)
    for url in (
        "/api/v1/patients/?teams=1",
        f"/api/v1/courses/{course.pk}/?verbose=1",
        "/api/v1/dashboard/summary/?since=2024-01-01",
        "/api/v1/me/?x=1",
    ):
        assert _fields(client.get(url)) == {
            url.rsplit("?")[1].split("=")[0]: ["is not a parameter of this operation."]
        }, url


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/patients/?team={other_team}",
        "/api/v1/courses/?patient={other_patient}",
        "/api/v1/courses/?team={other_team}",
        "/api/v1/relapses/?patient={other_patient}",
        "/api/v1/outbox/?team={other_team}",
        "/api/v1/outbox/?alert={other_alert}",
        "/api/v1/memberships/?team={other_team}",
        "/api/v1/alerts/?course={other_course}",
    ],
)
def test_another_teams_id_in_a_filter_answers_as_a_nonexistent_one(
    api, team, other_team, clinician, member, make_course, make_alert, url
) -> None:
    """Finding 6: ?team=<other team> answered 200 and a nonexistent id 400."""
    elsewhere = make_course(other_team, member(other_team, Role.COORDINATOR))
    alert = make_alert(elsewhere)
    make_course(team, clinician)
    ids = {
        "other_team": other_team.pk,
        "other_patient": elsewhere.patient_id,
        "other_alert": alert.pk,
        "other_course": elsewhere.pk,
    }
    client = api(clinician)
    foreign = client.get(url.format(**ids))
    nonexistent = client.get(url.format(**dict.fromkeys(ids, 999999)))
    assert foreign.status_code == nonexistent.status_code == 200
    assert (
        foreign.json()
        == nonexistent.json()
        == {
            "count": 0,
            "next": None,
            "previous": None,
            "results": [],
        }
    )


def test_ordering_is_declared_as_the_list_of_its_fields(api, clinician) -> None:
    schema = api(clinician).get("/api/schema/?format=json").json()
    [ordering] = [
        p
        for p in schema["paths"]["/api/v1/courses/"]["get"]["parameters"]
        if p["name"] == "ordering"
    ]
    assert ordering["style"] == "form" and ordering["explode"] is False
    assert "-created_at" in ordering["schema"]["items"]["enum"]
    steps = schema["paths"]["/api/v1/courses/{course_pk}/steps/"]["get"]["parameters"]
    assert "ordering" not in {p["name"] for p in steps}  # no ordering fields, no parameter
