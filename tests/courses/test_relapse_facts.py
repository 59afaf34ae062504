"""No silent defaults (issue 22): a team records a relapse through the API the way it
does on a ward, and what it did not say is never guessed.

* The relapse number and prior HSCT come from the records kept here (an earlier
  relapse recorded: the number follows it; a transplant recorded before: prior HSCT),
  or are given -- a value, or ``unknown``, which stratifies as needs_review naming it.
  Neither given nor recorded is a 400 naming the field and saying why it matters.
* An isolated extramedullary relapse without a marrow blast count is not called
  isolated: needs_review with the reason (Eckert, Blood 2007).
* An isolated marrow relapse with M2 marrow (5 to < 25 % blasts) can be registered and
  goes to needs_review (Buchmann, Blood 2022); below 5 % stays refused.

Time is frozen on 2026-11-24; the patient was diagnosed 2022-01-10 and finished
front-line therapy 2024-01-10 (make_patient), so a relapse on 2024-03-01 is early and
one on 2025-03-01 late.
"""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses.models import CourseTransition, Relapse, TreatmentCourse

pytestmark = pytest.mark.django_db

WHY = "Both built-in protocols are for first relapses without a prior HSCT"


@pytest.fixture
def client(api, clinician):  # noqa: ANN001, ANN201
    return api(clinician)


def relapse(client, patient_id: int, status: int = 201, **fields):  # noqa: ANN001, ANN201
    body = {
        "patient": patient_id,
        "relapse_date": "2024-03-01",
        "site": "isolated_bm",
        "bm_blast_percent": 80,
        **fields,
    }
    answer = client.post("/api/v1/relapses/", body, format="json")
    assert answer.status_code == status, answer.content
    return answer.json()


def open_course(client, relapse_id: int, protocol: str = "all-rez-bfm-90"):  # noqa: ANN001, ANN201
    answer = client.post(
        "/api/v1/courses/", {"relapse": relapse_id, "protocol": protocol}, format="json"
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def rules(course: dict) -> list[str]:
    return [r["rule"] for r in course["decision"]["reasons"]]


def reason(course: dict, rule: str) -> dict:
    [found] = [r for r in course["decision"]["reasons"] if r["rule"] == rule]
    return found


def assert_needs_review(course: dict) -> None:
    assert (course["decision"]["status"], course["proposed_group"]) == ("needs_review", None)
    assert course["hsct_indicated"] is None


# --- relapse number and prior HSCT -----------------------------------------------------------


def test_a_relapse_without_its_number_or_prior_hsct_is_refused_naming_both(
    client, team, make_patient
):
    patient = make_patient(team)  # no relapse of this patient is recorded here
    error = relapse(client, patient.pk, status=400)["error"]
    assert set(error["fields"]) == {"relapse_number", "prior_hsct"}
    [number] = error["fields"]["relapse_number"]
    assert number.startswith("is required: no earlier relapse of this patient is recorded here")
    assert "or unknown" in number and WHY in number
    [prior] = error["fields"]["prior_hsct"]
    assert prior.startswith("is required: no transplant of this patient is recorded here")
    assert WHY in prior
    assert patient.reference not in str(error)
    # One of the two given: the other is still named.
    error = relapse(client, patient.pk, status=400, relapse_number=1)["error"]
    assert list(error["fields"]) == ["prior_hsct"]
    assert not Relapse.objects.filter(patient=patient).exists()


def test_both_given_stratify_as_before(client, team, make_patient):
    patient = make_patient(team)
    recorded = relapse(client, patient.pk, relapse_number=1, prior_hsct=False)
    assert (recorded["relapse_number"], recorded["prior_hsct"]) == (1, False)
    course = open_course(client, recorded["id"])
    assert (course["decision"]["status"], course["proposed_group"]) == ("assigned", "A")


@pytest.mark.parametrize("protocol", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_an_unknown_relapse_number_is_stored_as_unknown_and_needs_review(
    client, team, make_patient, protocol
):
    patient = make_patient(team)
    recorded = relapse(client, patient.pk, relapse_number="unknown", prior_hsct=False)
    assert recorded["relapse_number"] is None
    assert Relapse.objects.get(pk=recorded["id"]).relapse_number is None
    course = open_course(client, recorded["id"], protocol)
    assert_needs_review(course)
    assert course["relapse_number"] is None
    assert rules(course) == ["time_point.early", "relapse_number_unknown"]
    text = reason(course, "relapse_number_unknown")["text"]
    assert text.startswith("Relapse number unknown") and "first relapses only" in text


def test_an_unknown_prior_hsct_needs_review_naming_it(client, team, make_patient):
    patient = make_patient(team)
    recorded = relapse(client, patient.pk, relapse_number=1, prior_hsct="unknown")
    assert recorded["prior_hsct"] is None
    course = open_course(client, recorded["id"])
    assert_needs_review(course)
    assert rules(course) == ["time_point.early", "prior_hsct_unknown"]
    assert "without a prior HSCT" in reason(course, "prior_hsct_unknown")["text"]


def test_a_second_relapse_recorded_here_takes_its_number_from_the_first(client, team, make_patient):
    patient = make_patient(team)
    first = relapse(client, patient.pk, relapse_number=1, prior_hsct=False)
    # The second, 20 months later, typed without its number: it follows the first.
    second = relapse(client, patient.pk, relapse_date="2025-11-03", prior_hsct=False)
    assert second["relapse_number"] == 2
    course = open_course(client, second["id"])
    assert_needs_review(course)
    assert "excluded_second_relapse" in rules(course)
    # "unknown" does not hide what the records say: the third is number 3.
    third = relapse(
        client, patient.pk, relapse_date="2026-09-14", relapse_number="unknown", prior_hsct=False
    )
    assert third["relapse_number"] == 3
    # A number that contradicts the records is refused, naming the earlier relapse.
    error = relapse(client, patient.pk, status=400, relapse_date="2026-10-20", relapse_number=1)[
        "error"
    ]
    [message] = error["fields"]["relapse_number"]
    assert f"must be at least 4: relapse {third['id']} (relapse number 3)" in message
    assert first["relapse_number"] == 1


def test_a_later_relapse_after_one_of_unknown_number_must_be_numbered(client, team, make_patient):
    patient = make_patient(team)
    relapse(client, patient.pk, relapse_number="unknown", prior_hsct=False)
    error = relapse(client, patient.pk, status=400, relapse_date="2025-11-03", prior_hsct=False)
    assert list(error["error"]["fields"]) == ["relapse_number"]


def test_a_course_that_reached_the_transplant_means_a_prior_hsct(
    client, team, clinician, make_course
):
    # The first course moved to transplanted on 2024-10-02 (no transplant date on a
    # referral): a relapse after that is after a prior HSCT.
    course = make_course(team, clinician)  # relapse 2024-03-01
    CourseTransition.objects.create(
        course=course,
        name="record_transplant",
        from_state="hsct_workup",
        to_state="transplanted",
        actor=clinician,
        on=date(2024, 10, 2),
        at=timezone.now(),
    )
    later = relapse(client, course.patient_id, relapse_date="2026-02-09")
    assert (later["relapse_number"], later["prior_hsct"]) == (2, True)
    error = relapse(
        client, course.patient_id, status=400, relapse_date="2026-03-09", prior_hsct=False
    )["error"]
    [message] = error["fields"]["prior_hsct"]
    assert f"course {course.pk} records the move to transplanted on 2024-10-02" in message


def test_a_relapse_number_changed_to_unknown_marks_the_decision_stale(
    client, team, clinician, make_course
):
    course = make_course(team, clinician)
    url = f"/api/v1/relapses/{course.relapse_id}/"
    changed = client.patch(url, {"relapse_number": "unknown"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["relapse_number"] is None
    shown = client.get(f"/api/v1/courses/{course.pk}/").json()
    assert shown["decision_stale"] is True
    assert shown["decision_stale_fields"] == ["relapse_number"]
    assert client.patch(url, {"prior_hsct": "maybe"}, format="json").status_code == 400
    assert TreatmentCourse.objects.get(pk=course.pk).relapse.prior_hsct is False


# --- the site must be what it says -------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "group"), [("all-rez-bfm-90", "C"), ("all-rez-bfm-2002", "S1")]
)
def test_an_isolated_em_relapse_without_a_marrow_count_needs_review(
    client, team, make_patient, protocol, group
):
    patient = make_patient(team, sex="male")
    em = {"site": "isolated_em", "em_sites": ["testis"], "relapse_number": 1, "prior_hsct": False}
    unassessed = relapse(client, patient.pk, relapse_date="2025-03-01", bm_blast_percent=None, **em)
    course = open_course(client, unassessed["id"], protocol)
    assert_needs_review(course)
    assert rules(course) == ["time_point.late", "site.isolated_em_marrow_not_assessed"]
    why = reason(course, "site.isolated_em_marrow_not_assessed")
    assert "46 of 64" in why["text"] and "10^-4" in why["text"]
    assert why["source"].startswith("Eckert et al., Blood 2007")
    # With the marrow assessed (1 % blasts), the same relapse is stratified by its site.
    other = make_patient(team, sex="male")
    assessed = relapse(client, other.pk, relapse_date="2025-03-01", bm_blast_percent=1, **em)
    assert open_course(client, assessed["id"], protocol)["proposed_group"] == group


@pytest.mark.parametrize("protocol", ["all-rez-bfm-90", "all-rez-bfm-2002"])
def test_an_m2_isolated_marrow_relapse_is_registered_and_needs_review(
    client, team, make_patient, protocol
):
    patient = make_patient(team)
    recorded = relapse(client, patient.pk, bm_blast_percent=12, relapse_number=1, prior_hsct=False)
    assert (recorded["site"], recorded["bm_blast_percent"]) == ("isolated_bm", 12.0)
    course = open_course(client, recorded["id"], protocol)
    assert_needs_review(course)
    assert rules(course) == ["time_point.early", "site.isolated_bm_m2_marrow"]
    text = reason(course, "site.isolated_bm_m2_marrow")["text"]
    assert "12 % marrow blasts" in text
    assert "not a BFM relapse category on its own" in text
    assert "confirmation, e.g. by MRD" in text and "a clinician assigns the group" in text


def test_an_isolated_marrow_relapse_below_5_percent_is_still_refused(client, team, make_patient):
    patient = make_patient(team)
    error = relapse(
        client, patient.pk, status=400, bm_blast_percent=3, relapse_number=1, prior_hsct=False
    )["error"]
    assert list(error["fields"]) == ["bm_blast_percent"]
    assert "at least 5 for site isolated_bm; got 3" in error["fields"]["bm_blast_percent"][0]
    assert not Relapse.objects.filter(patient=patient).exists()


# --- the dry run: no records, so both must be given ----------------------------------------------


def test_the_dry_run_needs_the_relapse_number_and_prior_hsct(client):
    body = {
        "protocol": "all-rez-bfm-90",
        "initial_diagnosis_date": "2022-01-10",
        "frontline_therapy_end_date": "2024-01-10",
        "relapse_date": "2024-03-01",
        "immunophenotype": "B",
        "site": "isolated_bm",
        "bm_blast_percent": 12,
        "bcr_abl1": "negative",
    }
    refused = client.post("/api/v1/stratify/", body, format="json")
    assert refused.status_code == 400
    fields = refused.json()["error"]["fields"]
    assert set(fields) == {"relapse_number", "prior_hsct"}
    assert all(WHY in messages[0] for messages in fields.values())
    answer = client.post(
        "/api/v1/stratify/",
        {**body, "relapse_number": "unknown", "prior_hsct": "unknown"},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "needs_review"
    assert [r["rule"] for r in answer.json()["reasons"]] == [
        "time_point.early",
        "site.isolated_bm_m2_marrow",
        "relapse_number_unknown",
        "prior_hsct_unknown",
    ]
