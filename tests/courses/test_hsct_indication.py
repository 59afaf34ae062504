"""ALL-REZ BFM 2002 S2: the HSCT indication waits for MRD at the end of induction,
becomes a proposal when it arrives, and a clinician confirms it (Eckert 2013)."""

from __future__ import annotations

import pytest

from courses.models import AuditEntry, PlannedStep

pytestmark = pytest.mark.django_db


def mrd(client, course, value, time_point="end_of_induction"):
    return client.post(
        f"/api/v1/courses/{course.pk}/mrd/",
        {"sampled_on": "2026-11-24", "time_point": time_point, "unit": "fraction", "value": value},
        format="json",
    )


def confirm(client, course, **body):
    return client.post(f"/api/v1/courses/{course.pk}/confirm-hsct/", body, format="json")


def test_undecided_s2_has_only_the_common_steps(s2_course):
    kinds = set(PlannedStep.objects.filter(course=s2_course).values_list("kind", flat=True))
    assert "hsct" not in kinds and "maintenance_start" not in kinds


@pytest.mark.parametrize(("value", "proposed"), [(0.001, True), (0.0099, True), (0.00099, False)])
def test_mrd_at_the_end_of_induction_becomes_a_proposal(api, clinician, s2_course, value, proposed):
    client = api(clinician)
    assert mrd(client, s2_course, value).status_code == 201
    body = client.get(f"/api/v1/courses/{s2_course.pk}/").json()
    assert body["hsct_proposed"] is proposed
    assert body["hsct_indicated"] is None  # not until a clinician confirms
    assert "Eckert" in body["hsct_proposal_basis"]


def test_mrd_at_another_time_point_proposes_nothing(api, clinician, s2_course):
    client = api(clinician)
    mrd(client, s2_course, 0.5, time_point="pre_hsct")
    assert client.get(f"/api/v1/courses/{s2_course.pk}/").json()["hsct_proposed"] is None


def test_confirming_the_proposal_adds_the_hsct_branch(api, clinician, s2_course):
    client = api(clinician)
    mrd(client, s2_course, 0.002)
    response = confirm(client, s2_course, hsct_indicated=True)
    assert response.status_code == 200, response.content
    assert response.json()["hsct_indicated"] is True
    steps = list(PlannedStep.objects.filter(course=s2_course).order_by("sequence"))
    kinds = [s.kind for s in steps]
    assert "hsct" in kinds and "hsct_referral" in kinds
    assert "maintenance_start" not in kinds
    # Every step comes after the step it is anchored to.
    position = {s.key: s.sequence for s in steps}
    assert all(position[s.anchor_key] < s.sequence for s in steps if s.anchor_key)
    assert all(s.due_on is not None and s.planned_on is not None for s in steps)
    assert AuditEntry.objects.filter(course=s2_course, action="hsct_confirmed").exists()


def test_going_against_the_proposal_needs_a_reason(api, clinician, s2_course):
    client = api(clinician)
    mrd(client, s2_course, 0.0001)
    refused = confirm(client, s2_course, hsct_indicated=True)
    assert refused.status_code == 400
    assert "protocol proposes no HSCT" in refused.json()["error"]["fields"]["reason"][0]
    ok = confirm(client, s2_course, hsct_indicated=False)
    assert ok.status_code == 200
    kinds = set(PlannedStep.objects.filter(course=s2_course).values_list("kind", flat=True))
    assert "maintenance_start" in kinds and "hsct" not in kinds


def test_deciding_before_any_mrd_needs_a_reason(api, clinician, s2_course):
    refused = confirm(api(clinician), s2_course, hsct_indicated=False)
    assert refused.status_code == 400
    assert "no proposal exists yet" in refused.json()["error"]["fields"]["reason"][0]


def test_changing_the_indication_later_cancels_the_other_branch(api, clinician, s2_course):
    client = api(clinician)
    mrd(client, s2_course, 0.0001)
    confirm(client, s2_course, hsct_indicated=False)
    switched = confirm(client, s2_course, hsct_indicated=True, reason="MRD rising at week 12")
    assert switched.status_code == 200
    steps = PlannedStep.objects.filter(course=s2_course)
    assert steps.filter(kind="maintenance_start", status="cancelled").exists()
    assert steps.filter(kind="hsct", status="planned").exists()
