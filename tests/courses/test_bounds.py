"""Plausibility bounds (courses/bounds.py): the services refuse a value out of bounds
with a 400 naming the field (issue #15, finding 4: "nonsense stored with 2xx"), and
``manage.py check_data`` reports rows stored before a bound existed, changing nothing."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from courses import integrity
from courses import services as course_services
from courses.bounds import DATE_BOUNDS, NUMBER_BOUNDS, PLANNED_HORIZON, TEXT_FIELDS
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    HsctReferral,
    MrdResult,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    TreatmentCourse,
)
from teams.models import Role
from tests.conftest import induction_blocks

MODELS = {
    m.__name__: m
    for m in (
        Patient,
        Relapse,
        TreatmentCourse,
        CourseTransition,
        BlockAdministration,
        ResponseAssessment,
        MrdResult,
        HsctReferral,
        ClinicalEvent,
        PlannedStep,
    )
}


@pytest.fixture
def full(team, member, make_course) -> dict[str, Any]:
    """A confirmed course (relapse 2024-03-01, start 2026-11-24, the frozen today) with
    one record of each kind, all dated within bounds."""
    coordinator = member(team, Role.COORDINATOR)
    course = make_course(team, coordinator)
    now = timezone.now()
    course_services.referral_save(
        course,
        data={"referred_on": date(2024, 3, 20), "planned_on": date(2024, 6, 1)},
        actor=coordinator,
        now=now,
    )
    # Induction (R2 from 2024-03-15, R1 from 2024-04-05): CR2 is judged no earlier
    # than its end (2024-04-10).
    for block_type, start in induction_blocks(date(2024, 3, 15)):
        course_services.block_record(
            course,
            data={
                "block_type": block_type,
                "start_date": start,
                "end_date": start + timedelta(days=5),
            },
            actor=coordinator,
            now=now,
        )
    course_services.assessment_record(
        course,
        data={"assessed_on": date(2024, 4, 26), "marrow": "M1", "cr2": True, "em_status": "none"},
        actor=coordinator,
        now=now,
    )
    course_services.mrd_record(
        course,
        data={
            "sampled_on": date(2024, 4, 1),
            "time_point": "pre_hsct",
            "unit": "fraction",
            "qualitative": "negative",
            "sensitivity": 1e-4,
        },
        actor=coordinator,
        now=now,
    )
    course_services.event_record(
        course,
        data={"kind": "secondary_malignancy", "occurred_on": date(2024, 4, 2)},
        actor=coordinator,
        now=now,
    )
    step = course.steps.order_by("sequence").first()
    PlannedStep.objects.filter(pk=step.pk).update(
        done_on=date(2024, 3, 15), rescheduled_on=date(2024, 3, 15)
    )
    HsctReferral.objects.filter(course=course).update(performed_on=date(2024, 7, 1))
    return {"coordinator": coordinator, "course": course}


# --- finding 4 through the API -------------------------------------------------------


def _patient(**change: Any) -> dict[str, Any]:
    return {
        "reference": "REZ-0042",
        "birth_year": 2012,
        "birth_month": 5,
        "sex": "female",
        "immunophenotype": "B",
        "initial_diagnosis_date": "2019-02-11",
        "frontline_status": "unknown",
        **change,
    }


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        # A diagnosis on 0001-01-01 for a child born in 2012.
        ({"initial_diagnosis_date": "0001-01-01"}, "initial_diagnosis_date", "1900-01-01"),
        (
            {"initial_diagnosis_date": "2011-06-30"},
            "initial_diagnosis_date",
            "birth month (2012-05)",
        ),
        (
            {"initial_diagnosis_date": "2011-06-30", "birth_month": None},
            "initial_diagnosis_date",
            "birth year (2012)",
        ),
        ({"initial_diagnosis_date": "2012-04-30"}, "initial_diagnosis_date", "birth month"),
        ({"initial_diagnosis_date": "2027-01-04"}, "initial_diagnosis_date", "future"),
        # Birth year 2099.
        ({"birth_year": 2099}, "birth_year", "future"),
        ({"birth_year": 2026, "birth_month": 12}, "birth_month", "future"),
        ({"birth_month": 13}, "birth_month", "12"),
    ],
)
def test_an_implausible_patient_is_a_400_naming_the_field(
    api, team, coordinator, change, field, words
) -> None:
    response = api(coordinator).post("/api/v1/patients/", _patient(**change))
    assert response.status_code == 400, response.content
    messages = response.json()["error"]["fields"][field]
    assert any(words in m for m in messages), messages
    assert not Patient.objects.exists()


def test_a_birth_year_after_the_diagnosis_is_refused_on_update_too(api, team, coordinator) -> None:
    created = api(coordinator).post("/api/v1/patients/", _patient())
    assert created.status_code == 201, created.content
    response = api(coordinator).patch(
        f"/api/v1/patients/{created.json()['id']}/", {"birth_year": 2020}
    )
    assert response.status_code == 400
    assert "initial_diagnosis_date" in response.json()["error"]["fields"]
    assert Patient.objects.get().birth_year == 2012


def test_a_relapse_before_the_diagnosis_or_in_the_future_is_refused(api, team, coordinator) -> None:
    patient = api(coordinator).post("/api/v1/patients/", _patient()).json()["id"]
    for day, words in (("2018-12-31", "initial_diagnosis_date"), ("2026-12-01", "future")):
        response = api(coordinator).post(
            "/api/v1/relapses/",
            {
                "patient": patient,
                "relapse_date": day,
                "site": "isolated_bm",
                "bm_blast_percent": 80,
            },
        )
        assert response.status_code == 400, response.content
        assert words in str(response.json()["error"]["fields"]["relapse_date"])
    assert not Relapse.objects.exists()


def test_records_dated_year_one_are_refused_and_the_worklist_stays_sane(api, full) -> None:
    """Finding 4: records dated year 1 showed delay_days -739,960 and a worklist row
    739,910 days overdue."""
    course, client = full["course"], api(full["coordinator"])
    for url, body, field in (
        (
            f"/courses/{course.pk}/blocks/",
            {"block_type": "R2", "start_date": "0001-01-01"},
            "start_date",
        ),
        (
            f"/courses/{course.pk}/blocks/",
            {"block_type": "R2", "start_date": "2024-02-01"},
            "start_date",
        ),
        (
            f"/courses/{course.pk}/events/",
            {
                "kind": "follow_up_contact",
                "occurred_on": "1901-01-01",
                "contact_status": "alive_in_cr",
            },
            "occurred_on",
        ),
    ):
        response = client.post("/api/v1" + url, body)
        assert response.status_code == 400, response.content
        assert list(response.json()["error"]["fields"]) == [field]
    step = course.steps.order_by("sequence")[1]
    for day, words in (("1901-01-01", "relapse date"), ("2199-01-01", "planning horizon")):
        response = client.patch(
            f"/api/v1/courses/{course.pk}/steps/{step.pk}/", {"due_on": day, "reason": "late count"}
        )
        assert response.status_code == 400, response.content
        assert words in response.json()["error"]["fields"]["due_on"][0]
    within = client.patch(
        f"/api/v1/courses/{course.pk}/steps/{step.pk}/",
        {"due_on": "2026-12-07", "reason": "count recovery"},
    )
    assert within.status_code == 200, within.content
    assert within.json()["due_on"] == "2026-12-07"


def test_an_added_step_beyond_the_planning_horizon_is_a_400_on_its_offset(api, full) -> None:
    course, client = full["course"], api(full["coordinator"])
    last = course.steps.order_by("-sequence").first()
    url = f"/api/v1/courses/{course.pk}/steps/"
    # Ten years after the end of therapy (about 2028) is still within 15 years of the
    # relapse (2024-03-01); ten more years after that step are not.
    first = client.post(url, {"kind": "maintenance_start", "after": last.key, "offset_days": 3650})
    assert first.status_code == 201, first.content
    response = client.post(
        url, {"kind": "maintenance_start", "after": first.json()["key"], "offset_days": 3650}
    )
    assert response.status_code == 400, response.content
    assert "planning horizon" in response.json()["error"]["fields"]["offset_days"][0]
    assert course.steps.count() == last.sequence + 2


def test_a_planned_transplant_beyond_the_horizon_is_refused(api, full) -> None:
    course = full["course"]
    response = api(full["coordinator"]).patch(
        f"/api/v1/courses/{course.pk}/hsct-referral/",
        {"planned_on": "2150-01-01", "reason": "transplant moved"},
    )
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["planned_on"]


@pytest.mark.parametrize(
    ("unit", "value", "sensitivity", "field"),
    [
        ("fraction", None, 1e-30, "sensitivity"),  # finding 4
        ("fraction", None, 0.5, "sensitivity"),
        ("percent", None, 1e-5, "sensitivity"),  # 10^-7 as a fraction
        ("fraction", 1e-9, 1e-4, "value"),
        ("percent", 150.0, 0.01, "value"),
    ],
)
def test_an_implausible_mrd_result_is_a_400(api, full, unit, value, sensitivity, field) -> None:
    course = full["course"]
    body: dict[str, Any] = {
        "sampled_on": "2024-05-01",
        "time_point": "pre_hsct",
        "unit": unit,
        "sensitivity": sensitivity,
    }
    if value is None:
        body["qualitative"] = "negative"
    else:
        body["value"] = value
    response = api(full["coordinator"]).post(f"/api/v1/courses/{course.pk}/mrd/", body)
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]
    assert MrdResult.objects.filter(course=course).count() == 1


@pytest.mark.parametrize(("unit", "sensitivity"), [("fraction", 1e-6), ("percent", 0.01)])
def test_a_realistic_mrd_sensitivity_is_stored(api, full, unit, sensitivity) -> None:
    course = full["course"]
    response = api(full["coordinator"]).post(
        f"/api/v1/courses/{course.pk}/mrd/",
        {
            "sampled_on": "2024-05-01",
            "time_point": "pre_hsct",
            "unit": unit,
            "qualitative": "negative",
            "sensitivity": sensitivity,
        },
    )
    assert response.status_code == 201, response.content


def test_an_mrd_amendment_to_an_implausible_sensitivity_is_refused(api, full) -> None:
    result = MrdResult.objects.get(course=full["course"])
    response = api(full["coordinator"]).patch(
        f"/api/v1/courses/{full['course'].pk}/mrd/{result.pk}/",
        {"unit": "fraction", "sensitivity": 1e-30, "reason": "the lab's limit, re-read"},
    )
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["sensitivity"]
    result.refresh_from_db()
    assert result.sensitivity == 1e-4


def test_long_text_is_refused_by_the_services_on_every_channel(full) -> None:
    """The API's input layer caps text at 5,000 characters; the services hold the same
    cap for the admin and commands, which bypass it."""
    from config.errors import Invalid

    course, actor, now = full["course"], full["coordinator"], timezone.now()
    long = "x" * 5001
    calls = [
        lambda: course_services.event_record(
            course,
            data={"kind": "secondary_malignancy", "occurred_on": date(2024, 5, 2), "note": long},
            actor=actor,
            now=now,
        ),
        lambda: course_services.record_void(
            ClinicalEvent.objects.get(course=course), reason=long, actor=actor, now=now
        ),
        lambda: course_services.course_transition(
            course, name="start_induction", reason=long, actor=actor, now=now
        ),
    ]
    for call in calls:
        with pytest.raises(Invalid) as caught:
            call()
        assert set(caught.value.fields) <= {"note", "reason"}
    assert ClinicalEvent.objects.filter(course=course).count() == 1
    course.refresh_from_db()
    assert course.state == "stratified"


# --- check_data -----------------------------------------------------------------------


def _check_data() -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("check_data", stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_check_data_finds_nothing_in_plausible_data(full) -> None:
    code, out, _ = _check_data()
    assert (code, out.strip()) == (0, "No value out of bounds.")


def _snapshot() -> dict[str, list[tuple]]:
    return {
        name: sorted(model._base_manager.values_list())  # type: ignore[attr-defined]
        for name, model in MODELS.items()
    }


def _violate(bound, full: dict[str, Any], too: str) -> int:
    """Move one row's ``bound.field`` out of its bound, around the services; the row id."""
    model = MODELS[bound.model]
    course = full["course"]
    rows = model._base_manager.all()
    if bound.model == "Patient":
        row = rows.get(pk=course.patient_id)
    elif bound.model == "Relapse":
        row = rows.get(pk=course.relapse_id)
    elif bound.model == "TreatmentCourse":
        row = rows.get(pk=course.pk)
    else:
        row = rows.filter(course=course).order_by("pk").first()
    today = date(2026, 11, 24)
    if too == "late":
        day = today + timedelta(days=30)
        if bound.ceiling == "horizon":  # past 15 years after the relapse or the referral
            day = date(2024, 3, 20) + PLANNED_HORIZON + timedelta(days=1)
    else:
        day = date(2011, 6, 1) if bound.floor == "birth" else date(2001, 1, 1)
    model._base_manager.filter(pk=row.pk).update(**{bound.field: day})
    return row.pk


@pytest.mark.parametrize(
    ("bound", "too"),
    [(b, "late") for b in DATE_BOUNDS] + [(b, "early") for b in DATE_BOUNDS if b.floor],
    ids=lambda v: v if isinstance(v, str) else f"{v.model}.{v.field}",
)
def test_check_data_reports_each_date_bound_and_changes_nothing(full, bound, too) -> None:
    pk = _violate(bound, full, too)
    before = _snapshot()
    code, out, _ = _check_data()
    assert code == 1
    assert any(
        line.startswith(f"{bound.model} {pk} ") and f"): {bound.field} " in line
        for line in out.splitlines()
    ), out
    assert _snapshot() == before


def test_check_data_reports_numbers_text_and_birth_without_patient_data(full) -> None:
    course = full["course"]
    MrdResult.objects.filter(course=course).update(sensitivity=1e-30)
    ClinicalEvent.objects.filter(course=course).update(note="x" * 100_000)
    Patient.objects.filter(pk=course.patient_id).update(birth_year=2099)
    code, out, _ = _check_data()
    assert code == 1
    lines = out.splitlines()
    reference = course.patient.reference
    mrd = MrdResult.objects.get(course=course).pk
    event = ClinicalEvent.objects.get(course=course).pk
    assert (
        f"MrdResult {mrd} (team {course.patient.team.slug}, patient {reference}): "
        "sensitivity must be at least 1e-06 and at most 0.1." in lines
    )
    assert any(
        line.startswith(f"ClinicalEvent {event} ") and "note must be at most 5000" in line
        for line in lines
    )
    assert any(
        line.startswith(f"Patient {course.patient_id} ") and "birth_year" in line for line in lines
    )
    # Ids, team slugs and pseudonymous references; never a stored value.
    assert "1e-30" not in out and "2099" not in out and "xxxx" not in out


def test_every_declared_bound_has_a_check(full) -> None:
    checked = {(c.model, c.field) for c in integrity.checks(timezone.now())}
    declared = (
        {(b.model, b.field) for b in NUMBER_BOUNDS}
        | set(TEXT_FIELDS)
        | {(b.model, b.field) for b in DATE_BOUNDS}
    )
    assert declared <= checked


def test_check_data_prints_progress_on_a_large_table(full, monkeypatch) -> None:
    monkeypatch.setattr(integrity, "CHUNK", 2)
    code, _, err = _check_data()
    assert code == 0
    steps = PlannedStep.objects.count()
    assert f"PlannedStep: {steps}/{steps} rows checked" in err.splitlines()
    assert "PlannedStep: 2/" in err
