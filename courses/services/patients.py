"""Patients and their relapses: pseudonymous references, dates judged on the team's
calendar, and relapse facts checked with the stratification's own validator (so the
API, the admin and the engine refuse the same relapse with the same words)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django.db import transaction

from config.errors import Invalid
from courses.models import Patient, Relapse
from stratification.facts import validate_facts


def _frontline_errors(diagnosis: date | None, end: date | None, today: date) -> dict:
    errors: dict[str, list[str]] = {}
    if diagnosis and diagnosis > today:
        errors["initial_diagnosis_date"] = [f"must not be in the future (today is {today})."]
    if end and diagnosis and end < diagnosis:
        errors["frontline_end_date"] = [f"must not be before initial_diagnosis_date ({diagnosis})."]
    elif end and end > today:
        errors["frontline_end_date"] = [f"must not be in the future (today is {today})."]
    return errors


def patient_errors(patient: Patient, now: datetime) -> dict[str, list[str]]:
    """Why ``patient`` (new, or with its changes applied) would be refused:
    ``{field: [messages]}``, empty when fine. Shared by the services and the admin."""
    errors = _frontline_errors(
        patient.initial_diagnosis_date, patient.frontline_end_date, patient.team.today(now)
    )
    if (
        patient.pk is not None
        and patient.sex == "female"
        and any("testis" in (r.em_sites or []) for r in patient.relapses.all())
    ):
        errors["sex"] = ["a relapse of this patient involves the testis."]
    if (
        Patient.objects.filter(team_id=patient.team_id, reference=patient.reference)
        .exclude(pk=patient.pk)
        .exists()
    ):
        errors["reference"] = ["is already used in this team."]
    return errors


@transaction.atomic
def patient_create(*, team_id: int, data: Mapping[str, Any], now: datetime) -> Patient:
    patient = Patient(team_id=team_id, **data)
    Invalid.raise_if(patient_errors(patient, now))
    patient.save()
    return patient


@transaction.atomic
def patient_update(patient: Patient, data: Mapping[str, Any], now: datetime) -> Patient:
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    for key, value in data.items():
        setattr(patient, key, value)
    Invalid.raise_if(patient_errors(patient, now))
    patient.save()
    return patient


def relapse_facts(patient: Patient, relapse: Relapse | Mapping[str, Any]) -> dict[str, Any]:
    get = relapse.get if isinstance(relapse, Mapping) else lambda k, d=None: getattr(relapse, k, d)
    return {
        "initial_diagnosis_date": patient.initial_diagnosis_date,
        "frontline_therapy_end_date": patient.frontline_end_date,
        "relapse_date": get("relapse_date"),
        "immunophenotype": get("immunophenotype") or patient.immunophenotype,
        "site": get("site"),
        "em_sites": list(get("em_sites") or []),
        "bm_blast_percent": get("bm_blast_percent"),
        "mrd_end_of_induction": None,
    }


def relapse_errors(
    patient: Patient, data: Mapping[str, Any], now: datetime
) -> dict[str, list[str]]:
    """Why a relapse with ``data`` would be refused for ``patient``: the
    stratification's own fact checks, in the relapse's field names."""
    facts = relapse_facts(patient, data)
    errors = validate_facts(facts, patient.team.today(now))
    # The facts validator speaks of the stratification input; a relapse names the
    # patient's diagnosis and front-line dates, which the client did not send here.
    for field in ("initial_diagnosis_date", "frontline_therapy_end_date"):
        if field in errors:
            errors.setdefault("relapse_date", []).extend(errors.pop(field))
    if patient.sex == "female" and "testis" in facts["em_sites"]:
        errors.setdefault("em_sites", []).append(
            "'testis' is impossible for a patient recorded as female."
        )
    return errors


@transaction.atomic
def relapse_create(*, patient: Patient, data: Mapping[str, Any], now: datetime) -> Relapse:
    Invalid.raise_if(relapse_errors(patient, data, now))
    facts = relapse_facts(patient, data)
    data = {**data, "immunophenotype": facts["immunophenotype"], "em_sites": facts["em_sites"]}
    return Relapse.objects.create(patient=patient, **data)
