"""Recording through the admin goes through the same services and rules as the API."""

import pytest

from courses.models import AuditEntry, BlockAdministration, MrdResult, PlannedStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):  # noqa: ANN001, ANN201
    return django_user_model.objects.create_superuser("root-admin", "a@example.org", "pw")


def test_a_block_added_in_the_admin_moves_the_schedule_and_is_audited(
    client, staff, team, clinician, make_course
):
    course = make_course(team, clinician)
    client.force_login(staff)
    response = client.post(
        "/admin/courses/blockadministration/add/",
        {
            "course": course.pk,
            "block_type": "R2",
            "start_date": "2026-11-24",
            "end_date": "",
            "delay_reason": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    block = BlockAdministration.objects.get(course=course)
    assert block.recorded_by == staff
    assert AuditEntry.objects.filter(
        course=course, target="BlockAdministration", actor=staff
    ).exists()
    assert PlannedStep.objects.filter(course=course, kind="block", status="done").exists()


def test_the_admin_refuses_what_the_api_refuses(client, staff, team, clinician, make_course):
    course = make_course(team, clinician)
    client.force_login(staff)
    response = client.post(
        "/admin/courses/mrdresult/add/",
        {
            "course": course.pk,
            "sampled_on": "2026-11-24",
            "time_point": "end_of_induction",
            "value": "1.5",
            "method": "RQ-PCR",
            "sensitivity": "0.0001",
        },
    )
    assert response.status_code == 200
    assert "must be a fraction between 0 and 1" in response.content.decode()
    assert not MrdResult.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "courses/treatmentcourse",
        "courses/patient",
        "courses/plannedstep",
        "courses/auditentry",
        "courses/blockadministration",
        "courses/hsctreferral",
    ],
)
def test_admin_pages_render(client, staff, team, clinician, make_course, path):
    course = make_course(team, clinician)
    client.force_login(staff)
    assert client.get(f"/admin/{path}/").status_code == 200
    if path == "courses/treatmentcourse":
        assert client.get(f"/admin/{path}/{course.pk}/change/").status_code == 200
