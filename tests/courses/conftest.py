from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from django.utils import timezone

from courses import services
from courses.models import Patient, TreatmentCourse
from teams.models import Team


@pytest.fixture(autouse=True)
def frozen_time(time_machine: Any) -> datetime:
    time_machine.move_to(datetime.fromisoformat("2026-11-24T10:00:00+00:00"), tick=False)
    return timezone.now()


@pytest.fixture
def make_patient(db: None) -> Callable[..., Patient]:
    counter = iter(range(1, 10_000))

    def make(team: Team, **fields: Any) -> Patient:
        data = {
            "reference": f"P-{next(counter):04d}",
            "birth_year": 2015,
            "sex": "male",
            "immunophenotype": "B",
            "initial_diagnosis_date": date(2022, 1, 10),
            "frontline_protocol": "AIEOP-BFM ALL 2017",
            "frontline_end_date": date(2024, 1, 10),
            **fields,
        }
        return services.patient_create(team_id=team.pk, data=data, now=timezone.now())

    return make


@pytest.fixture
def make_course(make_patient: Callable[..., Patient]) -> Callable[..., TreatmentCourse]:
    """make_course(team, actor, protocol=..., confirm=True, **relapse) -> a course.

    Defaults: a B-lineage isolated marrow relapse 2024-03-01, which is "early" (>= 18
    months after diagnosis 2022-01-10, < 6 months after front-line end 2024-01-10):
    group A under ALL-REZ BFM 90 (HSCT indicated), S3 under ALL-REZ BFM 2002."""

    def make(
        team: Team,
        actor: Any,
        *,
        protocol: str = "all-rez-bfm-90",
        confirm: bool = True,
        patient: Patient | None = None,
        **relapse: Any,
    ) -> TreatmentCourse:
        patient = patient or make_patient(team)
        data = {
            "relapse_date": date(2024, 3, 1),
            "site": "isolated_bm",
            "em_sites": [],
            "bm_blast_percent": 80.0,
            **relapse,
        }
        rel = services.relapse_create(patient=patient, data=data, now=timezone.now())
        course = services.course_create(
            relapse=rel, protocol_slug=protocol, actor=actor, now=timezone.now()
        )
        if confirm:
            course = services.course_confirm_stratification(
                course,
                risk_group=course.proposed_group,
                reason="",
                actor=actor,
                now=timezone.now(),
            )
        return course

    return make
