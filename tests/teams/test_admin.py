"""The teams admin changes and removes members through the same services as the API:
a team never loses its last coordinator, whatever the channel."""

from __future__ import annotations

from typing import Any

import pytest

from teams.models import Membership, Role
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client: Any, django_user_model: Any) -> Any:
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    return client


def _membership(user: Any) -> Membership:
    return Membership.objects.get(user=user)


def test_the_last_coordinator_cannot_be_demoted_or_removed_in_the_admin(admin, coordinator):
    membership = _membership(coordinator)
    url = f"/admin/teams/membership/{membership.pk}/change/"
    refused = admin.post(url, {"role": Role.VIEWER})
    assert refused.status_code == 200
    assert "A team needs at least one coordinator" in refused.content.decode()
    assert admin.get(f"/admin/teams/membership/{membership.pk}/delete/").status_code == 403
    assert _membership(coordinator).role == Role.COORDINATOR


def test_a_role_changed_in_the_admin_goes_through_the_service(admin, coordinator, clinician):
    membership = _membership(clinician)
    response = admin.post(f"/admin/teams/membership/{membership.pk}/change/", {"role": "viewer"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _membership(clinician).role == Role.VIEWER
    deleted = admin.post(f"/admin/teams/membership/{membership.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_memberships_are_not_bulk_deleted(admin, coordinator):
    page = admin.get("/admin/teams/membership/")
    assert b"delete_selected" not in page.content


@pytest.mark.parametrize(("path", "queries"), [("teams/team", 5), ("teams/membership", 6)])
def test_change_lists_cost_the_same_queries_whatever_the_number_of_rows(
    admin, member, other_team, team, django_assert_num_queries, path, queries
):
    for _ in range(2):
        member(team, Role.CLINICIAN)
        member(other_team, Role.VIEWER)
    with django_assert_num_queries(queries):
        assert admin.get(f"/admin/{path}/").status_code == 200
    member(TeamFactory(), Role.COORDINATOR)
    with django_assert_num_queries(queries):
        assert admin.get(f"/admin/{path}/").status_code == 200
