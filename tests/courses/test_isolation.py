"""Team isolation and roles on every courses endpoint, and pinned query counts."""

from __future__ import annotations

import pytest

from courses.models import AuditEntry, Patient, PlannedStep, Relapse, TreatmentCourse
from teams.models import Role
from tests.conftest import induction_blocks

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign_course(other_team, member, make_course):
    return make_course(other_team, member(other_team, Role.COORDINATOR))


def endpoints(course):
    """(method, url, body) for every read and write on one course's objects."""
    c = course.pk
    step = PlannedStep.objects.filter(course=course).first()
    return [
        ("get", f"/api/v1/patients/{course.patient_id}/", None),
        ("patch", f"/api/v1/patients/{course.patient_id}/", {"birth_year": 2010}),
        ("get", f"/api/v1/relapses/{course.relapse_id}/", None),
        ("get", f"/api/v1/courses/{c}/", None),
        ("post", f"/api/v1/courses/{c}/confirm-stratification/", {"risk_group": "A"}),
        ("get", f"/api/v1/courses/{c}/transitions/", None),
        ("post", f"/api/v1/courses/{c}/transitions/", {"transition": "start_induction"}),
        ("get", f"/api/v1/courses/{c}/timeline/", None),
        ("get", f"/api/v1/courses/{c}/audit/", None),
        ("get", f"/api/v1/courses/{c}/blocks/", None),
        ("post", f"/api/v1/courses/{c}/blocks/", {"block_type": "R2", "start_date": "2026-11-24"}),
        ("get", f"/api/v1/courses/{c}/assessments/", None),
        (
            "post",
            f"/api/v1/courses/{c}/assessments/",
            {"assessed_on": "2026-11-24", "marrow": "M1", "cr2": True, "em_status": "none"},
        ),
        ("get", f"/api/v1/courses/{c}/mrd/", None),
        (
            "post",
            f"/api/v1/courses/{c}/mrd/",
            {
                "sampled_on": "2026-11-24",
                "time_point": "pre_hsct",
                "unit": "fraction",
                "value": 0.1,
            },
        ),
        ("get", f"/api/v1/courses/{c}/events/", None),
        ("post", f"/api/v1/courses/{c}/events/", {"kind": "death", "occurred_on": "2026-11-24"}),
        ("get", f"/api/v1/courses/{c}/hsct-referral/", None),
        ("put", f"/api/v1/courses/{c}/hsct-referral/", {"referred_on": "2026-11-24"}),
        ("get", f"/api/v1/courses/{c}/steps/", None),
        ("post", f"/api/v1/courses/{c}/steps/", {"kind": "mrd", "offset_days": 1}),
        ("patch", f"/api/v1/courses/{c}/steps/{step.pk}/", {"due_on": "2026-12-24", "reason": "x"}),
    ]


def snapshot(course):
    course.refresh_from_db()
    return (
        course.state,
        course.version,
        AuditEntry.objects.filter(course=course).count(),
        list(PlannedStep.objects.filter(course=course).values_list("due_on", flat=True)),
    )


def test_another_teams_course_answers_404_everywhere_and_changes_nothing(
    api, team, clinician, foreign_course
):
    client = api(clinician)
    before = snapshot(foreign_course)
    for method, url, body in endpoints(foreign_course):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    assert snapshot(foreign_course) == before


def test_another_teams_objects_are_absent_from_lists(
    api, team, clinician, foreign_course, make_course
):
    mine = make_course(team, clinician)
    client = api(clinician)
    for url, expected in [
        ("/api/v1/patients/", mine.patient_id),
        ("/api/v1/relapses/", mine.relapse_id),
        ("/api/v1/courses/", mine.pk),
    ]:
        assert [row["id"] for row in client.get(url).json()["results"]] == [expected]
    assert (
        client.get(f"/api/v1/courses/?team={foreign_course.patient.team_id}").json()["count"] == 0
    )


def test_creating_in_another_team_reads_as_unknown(api, team, clinician, foreign_course):
    client = api(clinician)
    response = client.post(
        "/api/v1/patients/",
        {
            "team": foreign_course.patient.team_id,
            "reference": "X-1",
            "birth_year": 2014,
            "sex": "male",
            "immunophenotype": "B",
            "initial_diagnosis_date": "2021-05-03",
        },
        format="json",
    )
    assert response.status_code == 400 and "team" in response.json()["error"]["fields"]
    response = client.post(
        "/api/v1/relapses/",
        {
            "patient": foreign_course.patient_id,
            "relapse_date": "2024-03-01",
            "site": "isolated_bm",
            "em_sites": [],
            "bm_blast_percent": 50,
        },
        format="json",
    )
    assert response.status_code == 400 and "patient" in response.json()["error"]["fields"]
    response = client.post(
        "/api/v1/courses/",
        {"relapse": foreign_course.relapse_id, "protocol": "all-rez-bfm-90"},
        format="json",
    )
    assert response.status_code == 400 and "relapse" in response.json()["error"]["fields"]


def test_a_viewer_reads_everything_and_writes_nothing(api, team, clinician, viewer, make_course):
    course = make_course(team, clinician)
    client = api(viewer)
    before = snapshot(course)
    patients_before = Patient.objects.count()
    for method, url, body in endpoints(course):
        response = getattr(client, method)(url, body, format="json")
        if method == "get":
            assert response.status_code in (200, 404), (url, response.status_code)
            if "hsct-referral" not in url:
                assert response.status_code == 200, url
        else:
            assert response.status_code == 403, (method, url, response.status_code)
    for url, body in [
        (
            "/api/v1/patients/",
            {
                "team": team.pk,
                "reference": "V-1",
                "birth_year": 2014,
                "sex": "male",
                "immunophenotype": "B",
                "initial_diagnosis_date": "2021-05-03",
            },
        ),
        (
            "/api/v1/relapses/",
            {
                "patient": course.patient_id,
                "relapse_date": "2024-03-01",
                "site": "isolated_bm",
                "em_sites": [],
                "bm_blast_percent": 50,
            },
        ),
        ("/api/v1/courses/", {"relapse": course.relapse_id, "protocol": "all-rez-bfm-90"}),
    ]:
        assert client.post(url, body, format="json").status_code == 403, url
    assert snapshot(course) == before
    assert Patient.objects.count() == patients_before


def test_a_viewer_here_cannot_write_here_even_as_clinician_elsewhere(
    api, team, other_team, member, clinician, make_course
):
    course = make_course(team, clinician)
    user = member(other_team, Role.CLINICIAN)
    from tests.factories import MembershipFactory

    MembershipFactory(team=team, user=user, role=Role.VIEWER)
    response = api(user).post(
        f"/api/v1/courses/{course.pk}/transitions/",
        {"transition": "start_induction"},
        format="json",
    )
    assert response.status_code == 403
    assert (
        api(user)
        .post(
            f"/api/v1/courses/{course.pk}/blocks/",
            {"block_type": "R2", "start_date": "2026-11-24"},
            format="json",
        )
        .status_code
        == 403
    )


def test_list_query_counts_do_not_grow_with_rows(
    api, team, clinician, make_course, django_assert_num_queries
):
    client = api(clinician)
    make_course(team, clinician)
    counts = {}
    for size in (1, 6):
        while TreatmentCourse.objects.count() < size:
            make_course(team, clinician)
        for url in ("/api/v1/courses/", "/api/v1/patients/", "/api/v1/relapses/"):
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            counts.setdefault(url, []).append(len(ctx.captured_queries))
    for url, (small, large) in counts.items():
        assert small == large, (url, counts[url])
    # token+user, roles, count, page
    with django_assert_num_queries(4):
        client.get("/api/v1/courses/")
    assert Relapse.objects.count() == 6


@pytest.mark.parametrize(
    "suffix",
    ["blocks", "assessments", "mrd", "events", "steps", "audit", "transitions", "timeline"],
)
def test_nested_lists_cost_the_same_queries_for_one_or_many_rows(
    api, team, clinician, make_course, suffix
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from courses import services

    client = api(clinician)
    # Induction given, so the CR2s below come after its end (2026-11-08).
    course = make_course(team, clinician, blocks=induction_blocks())

    def add_records(n: int) -> None:
        for _ in range(n):
            now = timezone.now()
            services.block_record(
                course,
                data={"block_type": "R2", "start_date": now.date()},
                actor=clinician,
                now=now,
            )
            services.assessment_record(
                course,
                data={"assessed_on": now.date(), "marrow": "M1", "cr2": True, "em_status": "none"},
                actor=clinician,
                now=now,
            )
            services.mrd_record(
                course,
                data={
                    "sampled_on": now.date(),
                    "time_point": "pre_hsct",
                    "unit": "fraction",
                    "value": 0.01,
                },
                actor=clinician,
                now=now,
            )
            services.event_record(
                course,
                data={"kind": "secondary_malignancy", "occurred_on": now.date()},
                actor=clinician,
                now=now,
            )

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/api/v1/courses/{course.pk}/{suffix}/").status_code == 200
        return len(ctx.captured_queries)

    add_records(1)
    few = count()
    add_records(4)
    assert count() == few
