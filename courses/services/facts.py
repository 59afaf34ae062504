"""The stratification facts of a relapse, read from its patient and relapse records, and
which of them changed since a decision was made.

Not part of the public API (courses.services re-exports ``relapse_facts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from courses.models import Patient, Relapse
from stratification.facts import FIELDS, RelapseFacts, derive_age_at_diagnosis_months

# The facts a decision reads from the patient and the relapse records: a later change to
# any of them makes the decision stale. (MRD at the end of induction never comes from the
# records: the course's MRD results decide S2's HSCT separately; the implausibility
# confirmation belongs to the request, not to the records.)
RECORDED_FACTS: tuple[str, ...] = tuple(
    f
    for f in FIELDS
    if f not in ("mrd_end_of_induction", "confirm_implausible", "implausible_reason")
)


def age_at_diagnosis_months(patient: Patient) -> int | None:
    """Completed months of age at the initial diagnosis; None while the birth month is
    not recorded (or the dates contradict each other, which patient_errors refuses)."""
    if patient.birth_month is None or patient.initial_diagnosis_date is None:
        return None
    try:
        return derive_age_at_diagnosis_months(
            patient.birth_year, patient.birth_month, patient.initial_diagnosis_date
        )
    except (TypeError, ValueError):
        return None


def relapse_facts(
    patient: Patient,
    relapse: Relapse | Mapping[str, Any],
    *,
    confirm_implausible: bool = False,
    implausible_reason: str = "",
) -> dict[str, Any]:
    """The engine's input for ``relapse`` (a record, or the values of one about to be
    stored) of ``patient``. A relapse without its own immunophenotype has the one at
    diagnosis; a relapse number or prior HSCT stored as unknown (None) stays unknown,
    which the protocol's population sends to review."""
    get = relapse.get if isinstance(relapse, Mapping) else lambda k, d=None: getattr(relapse, k, d)
    return {
        "initial_diagnosis_date": patient.initial_diagnosis_date,
        "frontline_status": patient.frontline_status,
        "frontline_therapy_end_date": patient.frontline_end_date,
        "relapse_date": get("relapse_date"),
        "immunophenotype": get("immunophenotype") or patient.immunophenotype,
        "site": get("site"),
        "em_sites": list(get("em_sites") or []),
        "bm_blast_percent": get("bm_blast_percent"),
        "mrd_end_of_induction": None,
        "relapse_number": get("relapse_number"),
        "prior_hsct": get("prior_hsct"),
        "bcr_abl1": patient.bcr_abl1,
        "age_at_diagnosis_months": age_at_diagnosis_months(patient),
        "confirm_implausible": confirm_implausible,
        "implausible_reason": implausible_reason,
    }


def decided_facts(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The facts a stored decision read, in today's vocabulary. Snapshots from before
    the front-line status existed (protocol versions 1.0) hold none: that engine read a
    missing end date as a relapse during front-line therapy, so that is what they read.
    Snapshots without a relapse number or prior HSCT are older than those facts: that
    engine read a first relapse without a prior HSCT (an unknown one is stored as null)."""
    values = dict(snapshot)
    if values.get("frontline_status") is None:
        end = values.get("frontline_therapy_end_date")
        values["frontline_status"] = "completed" if end else "on_therapy"
    values.setdefault("relapse_number", 1)
    values.setdefault("prior_hsct", False)
    return RelapseFacts.from_mapping(values).as_json()


def changed_facts(snapshot: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The recorded facts whose current value differs from what the decision read, in
    the facts' order."""
    before = decided_facts(snapshot)
    now = RelapseFacts.from_mapping(current).as_json()
    return [f for f in RECORDED_FACTS if before.get(f) != now.get(f)]
