"""The notifications admin shows what the sweep and the outbox wrote, writes a member's
preferences through the service, and lists rows in a fixed number of queries."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import NotificationPreference, OutboundEmail
from teams.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client: Any, django_user_model: Any, settings: Any) -> Any:
    # Tests move the clock by weeks; the session (12 hours by default) must outlive it.
    settings.SESSION_COOKIE_AGE = 365 * 24 * 3600
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.org", "pw"))
    return client


def test_preferences_are_written_through_the_service(admin, clinician):
    membership = Membership.objects.get(user=clinician)
    response = admin.post(
        "/admin/notifications/notificationpreference/add/",
        {"membership": membership.pk, "immediate_min_severity": "medium", "digest": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    pref = NotificationPreference.objects.get(membership=membership)
    assert (pref.immediate_min_severity, pref.digest) == ("medium", False)


@pytest.mark.parametrize(
    "path", ["notifications/alert", "notifications/outboundemail", "notifications/heartbeat"]
)
def test_what_the_jobs_write_is_read_only(admin, path):
    assert admin.get(f"/admin/{path}/add/").status_code == 403


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        ("notifications/alert", 6),
        ("notifications/outboundemail", 6),
        ("notifications/notificationpreference", 5),
        ("notifications/heartbeat", 5),
        ("notifications/sweeprun", 5),
    ],
)
def test_change_lists_cost_the_same_queries_whatever_the_number_of_rows(
    admin,
    clock,
    sweep,
    team,
    member,
    make_course,
    django_assert_num_queries,
    path,
    queries,
    settings,
):
    # The clock jumps two weeks below; the admin's session must outlive it.
    settings.SESSION_COOKIE_AGE = 365 * 24 * 3600

    def rows() -> None:
        clinician = member(team)
        make_course(team, clinician)
        services.preference_update(Membership.objects.get(user=clinician), digest=False)
        services.heartbeat_record(f"job-{clinician.pk}", timezone.now())

    rows()
    rows()
    clock("2026-12-08")
    sweep()
    assert OutboundEmail.objects.count() >= 2
    with django_assert_num_queries(queries):
        assert admin.get(f"/admin/{path}/").status_code == 200
    clock("2026-11-24")
    rows()
    clock("2026-12-08")
    sweep()
    with django_assert_num_queries(queries):
        assert admin.get(f"/admin/{path}/").status_code == 200
