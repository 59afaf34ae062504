"""Team scoping and roles through the teams and memberships endpoints."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from teams.models import Membership, Role
from teams.services import token_rotate
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_requests_get_401_in_the_error_shape(api):
    response = api(None).get("/api/v1/teams/")
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_token_authentication_and_rotation(team, clinician):
    old = token_rotate(clinician).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get("/api/v1/me/").status_code == 200

    new = token_rotate(clinician).key
    assert client.get("/api/v1/me/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert client.get("/api/v1/me/").json()["teams"] == [
        {"id": team.pk, "name": "Team X", "slug": "x", "role": "clinician"}
    ]


def test_a_member_lists_only_their_own_teams_and_members(api, team, other_team, clinician, member):
    member(other_team, Role.COORDINATOR)
    client = api(clinician)
    assert [t["id"] for t in client.get("/api/v1/teams/").json()["results"]] == [team.pk]
    rows = client.get("/api/v1/memberships/").json()["results"]
    assert {row["team"] for row in rows} == {team.pk}


def test_another_teams_objects_answer_404_for_every_verb(api, team, other_team, coordinator):
    foreign = MembershipFactory(team=other_team, role=Role.VIEWER)
    client = api(coordinator)
    for method, url, body in [
        ("get", f"/api/v1/teams/{other_team.pk}/", None),
        ("patch", f"/api/v1/teams/{other_team.pk}/", {"name": "mine now"}),
        ("get", f"/api/v1/memberships/{foreign.pk}/", None),
        ("patch", f"/api/v1/memberships/{foreign.pk}/", {"role": "coordinator"}),
        ("delete", f"/api/v1/memberships/{foreign.pk}/", None),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["error"]["code"] == "not_found"
    foreign.refresh_from_db()
    assert foreign.role == Role.VIEWER
    other_team.refresh_from_db()
    assert other_team.name == "Team Y"


def test_creating_a_membership_in_another_team_reads_as_unknown_team(
    api, team, other_team, coordinator, member
):
    outsider = member(team, Role.VIEWER)
    Membership.objects.filter(user=outsider).delete()
    response = api(coordinator).post(
        "/api/v1/memberships/",
        {"team": other_team.pk, "username": outsider.username, "role": "viewer"},
    )
    assert response.status_code == 400
    assert "team" in response.json()["error"]["fields"]
    assert not Membership.objects.filter(team=other_team, user=outsider).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.CLINICIAN])
def test_only_coordinators_manage_the_team(api, team, member, role):
    user = member(team, role)
    target = MembershipFactory(team=team, role=Role.VIEWER)
    client = api(user)
    assert client.patch(f"/api/v1/teams/{team.pk}/", {"name": "Renamed"}).status_code == 403
    assert (
        client.patch(f"/api/v1/memberships/{target.pk}/", {"role": "coordinator"}).status_code
        == 403
    )
    assert client.delete(f"/api/v1/memberships/{target.pk}/").status_code == 403
    response = client.post(
        "/api/v1/memberships/", {"team": team.pk, "username": user.username, "role": "viewer"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    target.refresh_from_db()
    assert target.role == Role.VIEWER


def test_a_viewer_here_and_coordinator_there_cannot_write_here(api, team, other_team, member):
    user = member(other_team, Role.COORDINATOR)
    MembershipFactory(team=team, user=user, role=Role.VIEWER)
    response = api(user).patch(f"/api/v1/teams/{team.pk}/", {"name": "Renamed"})
    assert response.status_code == 403
    assert api(user).patch(f"/api/v1/teams/{other_team.pk}/", {"name": "Y2"}).status_code == 200


def test_a_coordinator_adds_changes_and_removes_members(api, team, coordinator, member):
    newcomer = member(team, Role.VIEWER)
    Membership.objects.filter(user=newcomer).delete()
    client = api(coordinator)
    created = client.post(
        "/api/v1/memberships/", {"team": team.pk, "username": newcomer.username, "role": "viewer"}
    )
    assert created.status_code == 201, created.content
    membership_id = created.json()["id"]
    changed = client.patch(f"/api/v1/memberships/{membership_id}/", {"role": "clinician"})
    assert changed.json()["role"] == "clinician"
    assert client.delete(f"/api/v1/memberships/{membership_id}/").status_code == 204
    assert not Membership.objects.filter(pk=membership_id).exists()


def test_adding_someone_twice_is_a_clear_400(api, team, coordinator, clinician):
    response = api(coordinator).post(
        "/api/v1/memberships/", {"team": team.pk, "username": clinician.username, "role": "viewer"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"username": ["is already a member of this team."]}


def test_the_last_coordinator_cannot_leave_or_step_down(api, team, coordinator):
    own = Membership.objects.get(user=coordinator, team=team)
    client = api(coordinator)
    demote = client.patch(f"/api/v1/memberships/{own.pk}/", {"role": "viewer"})
    assert demote.status_code == 409
    assert demote.json()["error"]["code"] == "last_coordinator"
    assert client.delete(f"/api/v1/memberships/{own.pk}/").status_code == 409
    own.refresh_from_db()
    assert own.role == Role.COORDINATOR


def test_bad_time_zone_is_a_400_naming_the_field(api, team, coordinator):
    response = api(coordinator).patch(f"/api/v1/teams/{team.pk}/", {"time_zone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "time_zone" in response.json()["error"]["fields"]


def test_unknown_api_path_is_a_json_404(api, clinician):
    response = api(clinician).get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_malformed_json_is_a_400_in_the_error_shape(api, team, coordinator):
    response = api(coordinator).generic(
        "PATCH", f"/api/v1/teams/{team.pk}/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_member_list_query_count_does_not_grow_with_members(
    api, team, coordinator, django_assert_num_queries
):
    for _ in range(3):
        MembershipFactory(team=team)
    client = api(coordinator)
    with django_assert_num_queries(4):  # token+user, roles, count, page
        client.get("/api/v1/memberships/")
    for _ in range(10):
        MembershipFactory(team=team)
    with django_assert_num_queries(4):
        client.get("/api/v1/memberships/")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"digest_hour": 24}, "digest_hour"),
        ({"distribution_email": "not-an-address"}, "distribution_email"),
    ],
)
def test_bad_digest_settings_are_400s(api, team, coordinator, body, field):
    response = api(coordinator).patch(f"/api/v1/teams/{team.pk}/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_a_coordinator_sets_the_digest_hour_and_distribution_address(api, team, coordinator):
    response = api(coordinator).patch(
        f"/api/v1/teams/{team.pk}/",
        {"digest_hour": 6, "distribution_email": "office@example.org"},
        format="json",
    )
    assert response.status_code == 200
    team.refresh_from_db()
    assert (team.digest_hour, team.distribution_email) == (6, "office@example.org")


def test_a_coordinator_of_one_team_adds_a_member_without_naming_the_team(
    api, team, other_team, coordinator, member
):
    newcomer = member(other_team, Role.VIEWER)
    created = api(coordinator).post(
        "/api/v1/memberships/", {"username": newcomer.username, "role": "viewer"}
    )
    assert created.status_code == 201, created.content
    assert created.json()["team"] == team.pk
    # With a second team the field is required again.
    MembershipFactory(team=other_team, user=coordinator, role=Role.COORDINATOR)
    third = member(other_team, Role.VIEWER)
    refused = api(coordinator).post(
        "/api/v1/memberships/", {"username": third.username, "role": "viewer"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"].keys() == {"team"}


# --- Issue 15, finding 6: no enumeration of accounts or team names ---------------------


def _add(client, team, identifier):
    return client.post(
        "/api/v1/memberships/", {"team": team.pk, "username": identifier, "role": "viewer"}
    )


def test_a_member_is_added_by_exact_username_or_e_mail(api, team, coordinator) -> None:
    by_name = UserFactory(username="dr.ada", email="ada@clinic.example")
    by_mail = UserFactory(username="dr.bo", email="Bo@Clinic.example")
    client = api(coordinator)
    assert _add(client, team, "dr.ada").json()["username"] == "dr.ada"
    created = _add(client, team, "bo@clinic.example")
    assert created.status_code == 201, created.content
    assert created.json()["username"] == "dr.bo"
    assert {m.user for m in Membership.objects.filter(team=team)} >= {by_name, by_mail}


def test_accounts_that_may_not_be_added_answer_exactly_as_unknown_ones(
    api, team, coordinator
) -> None:
    UserFactory(username="root", is_superuser=True, is_staff=True)
    UserFactory(username="gone", is_active=False)
    UserFactory(username="twin1", email="twin@clinic.example")
    UserFactory(username="twin2", email="twin@clinic.example")
    UserFactory(username="Casey")
    client = api(coordinator)
    answers = {
        identifier: _add(client, team, identifier).json()
        for identifier in (
            "nobody-has-this-name",
            "root",  # the superuser
            "gone",  # inactive
            "twin@clinic.example",  # ambiguous e-mail address
            "casey",  # not the exact username
            "Cas",  # no prefix search
        )
    }
    assert len({repr(a) for a in answers.values()}) == 1, answers
    assert next(iter(answers.values()))["error"]["fields"] == {
        "username": ["no account you may add has this username or e-mail address."]
    }
    assert Membership.objects.filter(team=team).count() == 1


def test_someone_who_may_not_add_members_learns_nothing_about_accounts(api, team, member) -> None:
    clinician = member(team, Role.CLINICIAN)
    UserFactory(username="exists")
    client = api(clinician)
    known, unknown = _add(client, team, "exists"), _add(client, team, "does-not-exist")
    assert known.status_code == unknown.status_code == 403
    assert known.json() == unknown.json()


def test_renaming_a_team_to_another_sites_team_name_reveals_nothing(
    api, team, other_team, coordinator
) -> None:
    # Team names are not unique across the site: the answer is the same whether or not
    # another site has a team of that name.
    client = api(coordinator)
    taken = client.patch(f"/api/v1/teams/{team.pk}/", {"name": other_team.name})
    free = client.patch(f"/api/v1/teams/{team.pk}/", {"name": "A name nobody has"})
    assert taken.status_code == free.status_code == 200
    team.refresh_from_db()
    assert team.name == "A name nobody has"


def test_two_of_your_own_teams_cannot_share_a_name(api, team, other_team, coordinator) -> None:
    MembershipFactory(team=other_team, user=coordinator, role=Role.VIEWER)
    response = api(coordinator).patch(f"/api/v1/teams/{team.pk}/", {"name": "team y"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"name": ["another of your teams has this name."]}
