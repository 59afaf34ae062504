"""The clinical-dates migration (courses 0006): existing transitions get ``on`` = the
date of ``at`` on the course's team's calendar, and each course its latest clinical
date."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from teams.models import Team

BEFORE = [("courses", "0005_decision_history_and_mrd_entry")]
AFTER = [("courses", "0007_record_corrections_and_follow_up")]


@pytest.mark.django_db(transaction=True)
def test_existing_transitions_are_dated_on_their_teams_calendar():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User = old.get_model("auth", "User")
    user = User.objects.create(username="before-the-migration")
    # Auckland is 13 hours ahead in March: noon UTC on the 1st is the 2nd there. (The
    # teams app is not migrated back: its current model fits its table.)
    team = Team.objects.create(name="Auckland", slug="akl", time_zone="Pacific/Auckland")
    patient = old.get_model("courses", "Patient").objects.create(
        team_id=team.pk,
        reference="AKL-1",
        birth_year=2015,
        sex="male",
        immunophenotype="B",
        initial_diagnosis_date=date(2022, 1, 10),
    )
    relapse = old.get_model("courses", "Relapse").objects.create(
        patient=patient, relapse_date=date(2024, 3, 1), site="isolated_bm", immunophenotype="B"
    )
    course = old.get_model("courses", "TreatmentCourse").objects.create(
        patient=patient,
        relapse=relapse,
        protocol_slug="all-rez-bfm-90",
        protocol_version="1.1",
        state="induction",
        start_date=date(2026, 2, 20),
        last_activity_at=datetime.fromisoformat("2026-03-01T12:00:00+00:00"),
    )
    Transition = old.get_model("courses", "CourseTransition")
    for name, at in (
        ("stratify", "2026-02-20T09:00:00+00:00"),
        ("start_induction", "2026-03-01T12:00:00+00:00"),
    ):
        Transition.objects.create(
            course=course,
            name=name,
            from_state="x",
            to_state="y",
            actor=user,
            at=datetime.fromisoformat(at),
        )
    old.get_model("courses", "BlockAdministration").objects.create(
        course=course,
        block_type="R2",
        start_date=date(2026, 2, 21),
        recorded_by=user,
        recorded_at=datetime.fromisoformat("2026-03-01T12:00:00+00:00"),
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    ons = dict(new.get_model("courses", "CourseTransition").objects.values_list("name", "on"))
    assert ons == {"stratify": date(2026, 2, 20), "start_induction": date(2026, 3, 2)}
    migrated = new.get_model("courses", "TreatmentCourse").objects.get(pk=course.pk)
    assert migrated.last_clinical_on == date(2026, 3, 2)  # the latest: the induction's day
    assert migrated.previous_course_id is None
