"""courses 0013: the relapse number and prior HSCT may be unknown (null) and lose their
defaults; existing relapses keep the values they were stratified on (no data change)."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from teams.models import Team

BEFORE = [("courses", "0012_transition_overridden_and_warnings")]
AFTER = [("courses", "0013_relapse_number_and_prior_hsct_may_be_unknown")]


@pytest.mark.django_db(transaction=True)
def test_existing_relapses_keep_their_number_and_prior_hsct():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    team = Team.objects.create(name="Berlin", slug="ber", time_zone="Europe/Berlin")
    patient = old.get_model("courses", "Patient").objects.create(
        team_id=team.pk,
        reference="MIG-11",
        birth_year=2015,
        sex="male",
        immunophenotype="B",
        initial_diagnosis_date=date(2019, 1, 10),
    )
    Relapse = old.get_model("courses", "Relapse")
    first = Relapse.objects.create(
        patient=patient, relapse_date=date(2021, 9, 1), site="isolated_bm", immunophenotype="B"
    )  # the old defaults: 1, false
    second = Relapse.objects.create(
        patient=patient,
        relapse_date=date(2024, 2, 5),
        site="isolated_bm",
        immunophenotype="B",
        relapse_number=2,
        prior_hsct=True,
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    stored = new.get_model("courses", "Relapse").objects.values_list(
        "pk", "relapse_number", "prior_hsct"
    )
    assert {pk: (n, p) for pk, n, p in stored} == {
        first.pk: (1, False),
        second.pk: (2, True),
    }
    field = new.get_model("courses", "Relapse")._meta.get_field("relapse_number")
    assert (field.null, field.has_default()) == (True, False)
