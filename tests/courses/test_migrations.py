"""The data migration of existing patients, relapses and courses (courses 0004/0005),
run with Django's migration executor on rows written in the schema before it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import TeamFactory, UserFactory

BEFORE = [("courses", "0003_immunophenotype_mpal")]
AFTER = [("courses", "0005_decision_history_and_mrd_entry")]
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _team(apps):
    # The teams tables are at their latest migration (only courses moved back): the
    # current model writes them.
    return TeamFactory(name="T", slug="t")


def _patient(apps, team, reference: str, end: date | None):
    return apps.get_model("courses", "Patient").objects.create(
        team_id=team.pk,
        reference=reference,
        birth_year=2014,
        sex="male",
        immunophenotype="B",
        initial_diagnosis_date=date(2018, 3, 1),
        frontline_end_date=end,
    )


def _course(apps, patient, relapse, snapshot: dict):
    decision = apps.get_model("stratification", "StratificationDecision").objects.create(
        input_snapshot=snapshot,
        protocol_slug="all-rez-bfm-90",
        protocol_version="1.0",
        time_point="early",
        site="isolated_bm",
        proposed_group="A",
        status="assigned",
        hsct_indicated=True,
        reasons=[],
        created_at=NOW,
    )
    return apps.get_model("courses", "TreatmentCourse").objects.create(
        patient=patient,
        relapse=relapse,
        protocol_slug="all-rez-bfm-90",
        protocol_version="1.0",
        decision=decision,
        proposed_group="A",
        risk_group="A",
        decision_confirmed=True,
        state="stratified",
        last_activity_at=NOW,
    )


def test_existing_patients_relapses_and_courses_are_migrated(old_apps):
    team = _team(old_apps)
    Relapse = old_apps.get_model("courses", "Relapse")
    no_end = _patient(old_apps, team, "NO-END", None)
    ended = _patient(old_apps, team, "ENDED", date(2020, 4, 1))
    late, early = (
        Relapse.objects.create(
            patient=ended,
            relapse_date=day,
            site="isolated_bm",
            bm_blast_percent=70,
            immunophenotype="B",
        )
        for day in (date(2024, 5, 1), date(2021, 2, 1))
    )
    during = Relapse.objects.create(
        patient=no_end,
        relapse_date=date(2020, 6, 1),
        site="isolated_bm",
        bm_blast_percent=70,
        immunophenotype="B",
    )
    # Decisions of version 1.0: no front-line status, no relapse number in the snapshot.
    old_snapshot = {
        "initial_diagnosis_date": "2018-03-01",
        "relapse_date": "2020-06-01",
        "immunophenotype": "B",
        "site": "isolated_bm",
        "em_sites": [],
        "bm_blast_percent": 70.0,
        "mrd_end_of_induction": None,
    }
    read_as_on_therapy = _course(
        old_apps, no_end, during, {**old_snapshot, "frontline_therapy_end_date": None}
    )
    second_relapse = _course(
        old_apps,
        ended,
        late,
        {**old_snapshot, "relapse_date": "2024-05-01", "frontline_therapy_end_date": "2020-04-01"},
    )
    old_apps.get_model("courses", "MrdResult").objects.create(
        course=second_relapse,
        sampled_on=date(2024, 6, 1),
        time_point="end_of_induction",
        value=0.0,
        recorded_by_id=UserFactory().pk,
        recorded_at=NOW,
    )

    apps = migrate(AFTER)

    Patient = apps.get_model("courses", "Patient")
    # A missing end date is "unknown" -- never "on_therapy"; an end date is "completed".
    assert Patient.objects.get(reference="NO-END").frontline_status == "unknown"
    assert Patient.objects.get(reference="ENDED").frontline_status == "completed"
    Relapse = apps.get_model("courses", "Relapse")
    numbers = {r.pk: r.relapse_number for r in Relapse.objects.all()}
    assert numbers == {early.pk: 1, late.pk: 2, during.pk: 1}
    Course = apps.get_model("courses", "TreatmentCourse")
    # The 1.0 engine read "no end date" as on therapy; the later relapse was stratified
    # as a first one: both decisions are stale now.
    assert Course.objects.get(pk=read_as_on_therapy.pk).decision_stale_fields == [
        "frontline_status"
    ]
    assert Course.objects.get(pk=second_relapse.pk).decision_stale_fields == ["relapse_number"]
    assert Course.objects.get(pk=second_relapse.pk).decision_stale_since is not None
    links = apps.get_model("courses", "CourseDecision").objects.values_list("course_id", flat=True)
    assert sorted(links) == sorted([read_as_on_therapy.pk, second_relapse.pk])
    mrd = apps.get_model("courses", "MrdResult").objects.get()
    assert (mrd.value, mrd.qualitative, mrd.entered_unit) == (None, "negative", "fraction")


def test_two_relapses_of_one_patient_on_one_date_stop_the_migration_naming_them(old_apps):
    team = _team(old_apps)
    patient = _patient(old_apps, team, "TWICE", date(2020, 4, 1))
    Relapse = old_apps.get_model("courses", "Relapse")
    twice = [
        Relapse.objects.create(
            patient=patient,
            relapse_date=date(2024, 5, 1),
            site="isolated_bm",
            bm_blast_percent=70,
            immunophenotype="B",
        )
        for _ in range(2)
    ]
    with pytest.raises(RuntimeError, match=f"relapses {twice[0].pk} and {twice[1].pk}"):
        migrate(AFTER)
    Relapse.objects.filter(pk=twice[1].pk).delete()
