"""courses 0009: an HSCT proposal made before its date was kept dates from its
deciding sample (the latest valid end-of-induction MRD); without one it stays empty
(the alert rule then counts from the course's last write, never from a guess)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from teams.models import Team

BEFORE = [("courses", "0008_indexes_for_the_sweep_and_dashboards")]
AFTER = [("courses", "0009_hsct_proposed_on")]
AT = datetime.fromisoformat("2026-10-20T12:00:00+00:00")


@pytest.mark.django_db(transaction=True)
def test_existing_proposals_are_dated_by_their_deciding_sample():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="before-the-migration")
    team = Team.objects.create(name="Berlin", slug="ber", time_zone="Europe/Berlin")
    Patient = old.get_model("courses", "Patient")
    Relapse = old.get_model("courses", "Relapse")
    Course = old.get_model("courses", "TreatmentCourse")
    Mrd = old.get_model("courses", "MrdResult")

    def course(reference: str, **fields: object) -> object:
        patient = Patient.objects.create(
            team_id=team.pk,
            reference=reference,
            birth_year=2015,
            sex="male",
            immunophenotype="B",
            initial_diagnosis_date=date(2020, 1, 10),
        )
        relapse = Relapse.objects.create(
            patient=patient, relapse_date=date(2024, 9, 1), site="isolated_bm", immunophenotype="B"
        )
        return Course.objects.create(
            patient=patient,
            relapse=relapse,
            protocol_slug="all-rez-bfm-2002",
            protocol_version="1.1",
            state="response_assessment",
            risk_group="S2",
            last_activity_at=AT,
            **fields,
        )

    def mrd(on: object, sampled_on: date, time_point: str, **fields: object) -> None:
        Mrd.objects.create(
            course=on,
            sampled_on=sampled_on,
            time_point=time_point,
            value=0.005,
            recorded_by=user,
            recorded_at=AT,
            **fields,
        )

    proposed = course("S2-1", hsct_proposed=True)
    mrd(proposed, date(2026, 10, 13), "end_of_induction")
    mrd(proposed, date(2026, 10, 16), "end_of_induction", voided_at=AT)  # counts for nothing
    mrd(proposed, date(2026, 10, 18), "pre_hsct")  # not the deciding time point
    without_sample = course("S2-2", hsct_proposed=False)
    no_proposal = course("S2-3")
    mrd(no_proposal, date(2026, 10, 13), "end_of_induction")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    dates = dict(
        new.get_model("courses", "TreatmentCourse").objects.values_list("pk", "hsct_proposed_on")
    )
    assert dates == {
        proposed.pk: date(2026, 10, 13),
        without_sample.pk: None,
        no_proposal.pk: None,
    }
