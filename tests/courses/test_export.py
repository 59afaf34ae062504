"""CSV export of the course list (?format=csv): same filters as the JSON list, every
row, spreadsheet-safe cells, team scoping, constant queries."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.api import Pagination
from config.renderers import csv_cell
from courses.models import Patient, TreatmentCourse
from teams.models import Role

pytestmark = pytest.mark.django_db

URL = "/api/v1/courses/"


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("P-0001", "P-0001"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (-3, -3),
        (2.5, 2.5),
    ],
)
def test_csv_cells_are_guarded_against_formula_injection(value, cell):
    assert csv_cell(value) == cell


def test_the_csv_has_the_lists_columns_and_values(api, team, clinician, make_course):
    course = make_course(team, clinician)
    client = api(clinician)
    response = client.get(URL, {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="courses-2026-11-24.csv"'
    (row,) = read_csv(response)
    (item,) = client.get(URL).json()["results"]
    assert list(row) == [k for k in item if k != "allowed_transitions"]
    assert row["id"] == str(course.pk)
    assert row["patient_reference"] == item["patient_reference"]
    assert row["risk_group"] == "A"
    assert row["decision_confirmed"] == "true"
    assert row["hsct_proposed"] == ""  # null
    assert row["start_date"] == item["start_date"] == "2026-11-24"
    assert row["stratified_at"] == item["stratified_at"]


def test_the_csv_holds_every_matching_row_not_one_page(
    api, team, clinician, make_course, monkeypatch
):
    monkeypatch.setattr(Pagination, "page_size", 2)
    for _ in range(5):
        make_course(team, clinician)
    client = api(clinician)
    page = client.get(URL).json()
    assert (page["count"], len(page["results"])) == (5, 2)
    rows = read_csv(client.get(URL, {"format": "csv", "ordering": "start_date"}))
    assert sorted(int(r["id"]) for r in rows) == sorted(
        TreatmentCourse.objects.values_list("pk", flat=True)
    )
    # page and page_size do not cut the export.
    assert len(read_csv(client.get(URL, {"format": "csv", "page": 2, "page_size": 1}))) == 5


def test_the_csv_applies_the_lists_filters(api, team, clinician, make_course):
    from datetime import date

    a = make_course(team, clinician)
    make_course(team, clinician, relapse_date=date(2024, 8, 1))  # late: group B
    registered = make_course(team, clinician, confirm=False)
    client = api(clinician)
    assert [r["id"] for r in read_csv(client.get(URL, {"format": "csv", "risk_group": "A"}))] == [
        str(a.pk)
    ]
    only_registered = read_csv(client.get(URL, {"format": "csv", "state": "registered"}))
    assert [r["id"] for r in only_registered] == [str(registered.pk)]
    json_ids = [c["id"] for c in client.get(URL, {"state": "stratified"}).json()["results"]]
    csv_ids = [
        int(r["id"]) for r in read_csv(client.get(URL, {"format": "csv", "state": "stratified"}))
    ]
    assert csv_ids == json_ids  # same filter, same ordering


def test_a_bad_filter_answers_the_json_error_shape(api, clinician):
    response = api(clinician).get(URL, {"format": "csv", "state": "bogus"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["fields"].keys() == {"state"}


def test_formula_cells_are_escaped_in_the_export(api, team, clinician, make_course):
    course = make_course(team, clinician)
    # Values no API path lets through today, written behind the services' back.
    TreatmentCourse.objects.filter(pk=course.pk).update(
        hsct_proposal_basis='=HYPERLINK("http://evil.example","click")'
    )
    Patient.objects.filter(pk=course.patient_id).update(reference="@SUM(1+1)")
    (row,) = read_csv(api(clinician).get(URL, {"format": "csv"}))
    assert row["hsct_proposal_basis"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["patient_reference"] == "'@SUM(1+1)"


def test_another_teams_courses_never_appear_in_the_export(
    api, team, other_team, clinician, member, make_course
):
    mine = make_course(team, clinician)
    make_course(other_team, member(other_team, Role.COORDINATOR))
    client = api(clinician)
    assert [r["id"] for r in read_csv(client.get(URL, {"format": "csv"}))] == [str(mine.pk)]
    assert read_csv(client.get(URL, {"format": "csv", "team": other_team.pk})) == []


def test_the_csv_is_only_offered_on_the_list(api, team, clinician, make_course):
    course = make_course(team, clinician)
    assert api(clinician).get(f"{URL}{course.pk}/", {"format": "csv"}).status_code == 404


def test_the_export_costs_the_same_queries_for_few_or_many_courses(
    api, team, clinician, make_course
):
    client = api(clinician)
    counts = []
    for size in (1, 6):
        while TreatmentCourse.objects.count() < size:
            make_course(team, clinician)
        with CaptureQueriesContext(connection) as ctx:
            rows = read_csv(client.get(URL, {"format": "csv"}))
        assert len(rows) == size
        counts.append(len(ctx.captured_queries))
    # token+user, roles, the rows (one query, fetched in chunks)
    assert counts == [3, 3]
