"""Plausibility bounds of every clinical value, declared once, as data.

Two readers use them:

* the services (``value_errors``, ``planned_date_errors``) refuse a value out of its
  bound with :class:`config.errors.Invalid` naming the field (the API answers 400, the
  admin and the web app show the message under the field);
* ``manage.py check_data`` reports existing rows that break a bound (rows stored before
  a bound existed, or written around the services), and changes nothing.

What the API's input layer already refuses is the range *any* value can have
(config/serializers.py: dates 1900-01-01..2200-12-31, free text 5,000 characters,
32-bit integers). These are the clinical bounds above it. The relational date checks
(a record not before its relapse, nothing in the future, a diagnosis not before birth)
live with the services that judge each record (courses/services/common.py,
patients.py, transitions.py, courses.py); ``DATE_BOUNDS`` below declares the same rules
for the check over existing rows, and ``tests/courses/test_bounds.py`` holds the two
readings together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class NumberBound:
    """``low <= value <= high`` (``low_open``: ``low < value``). ``why`` is the source."""

    model: str
    field: str
    low: float
    high: float
    why: str
    low_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def message(self) -> str:
        low = f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        return f"must be {low} and at most {self.high:g}."


# MRD is stored as a fraction of cells (courses.models.MrdResult; the unit given at
# entry is converted before these checks run).
# - Sensitivity: the best assays reach 10^-6 (next-generation sequencing of Ig/TCR
#   rearrangements), RQ-PCR 10^-4..10^-5 and flow cytometry 10^-4 (Eckert 2013, JCO:
#   RQ-PCR at 10^-4, clinical-notes.md). An assay that cannot see 10^-1 (one cell in
#   ten) measures nothing an M1/M2/M3 marrow count does not, so 10^-1 is the ceiling.
#   A sensitivity of 1e-30 (issue #15, finding 4) is a typing or unit error.
# - A measured value cannot lie below what the best assay can see (10^-6), and a
#   fraction of cells is at most 1 (the whole sample).
MRD_SENSITIVITY_MIN = 1e-6
MRD_SENSITIVITY_MAX = 1e-1
MRD_VALUE_MIN = 1e-6
MRD_VALUE_MAX = 1.0

NUMBER_BOUNDS: tuple[NumberBound, ...] = (
    NumberBound(
        "MrdResult",
        "sensitivity",
        MRD_SENSITIVITY_MIN,
        MRD_SENSITIVITY_MAX,
        "assays reach 10^-6 (NGS) at best; above 10^-1 an assay measures nothing",
    ),
    NumberBound(
        "MrdResult",
        "value",
        MRD_VALUE_MIN,
        MRD_VALUE_MAX,
        "a fraction of cells: no assay sees below 10^-6, none above the whole sample",
    ),
    NumberBound("Relapse", "bm_blast_percent", 0, 100, "a percentage of marrow cells"),
    NumberBound("Patient", "birth_month", 1, 12, "a month"),
)


def text_max_length() -> int:
    """Free text (notes, reasons) on every channel: the API's input cap, the web
    forms' and the admin's (README: "Limits")."""
    return settings.REZCOURSE_TEXT_MAX_LENGTH


# Every free-text field of a clinical row that carries no max_length of its own (a
# CharField's max_length is its bound; PostgreSQL enforces it, SQLite does not, so
# check_data reads those too).
TEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("PlannedStep", "note"),
    ("PlannedStep", "team_reason"),
    ("CourseTransition", "reason"),
    ("BlockAdministration", "delay_reason"),
    ("BlockAdministration", "void_reason"),
    ("ResponseAssessment", "void_reason"),
    ("MrdResult", "void_reason"),
    ("HsctReferral", "void_reason"),
    ("ClinicalEvent", "note"),
    ("ClinicalEvent", "void_reason"),
)

# How far ahead a planned date may lie: from the relapse, 15 years. The built-in
# protocols plan about two years of therapy (the last template step is 632 days after
# the start) and follow-up after that; a step rescheduled to 2199 is a typing error.
# A local default, not a clinical source.
PLANNED_HORIZON = timedelta(days=15 * 365 + 4)


@dataclass(frozen=True)
class DateBound:
    """A clinical date's plausible range on existing rows.

    ``floor``: the path (from the row) to the date it must not precede, or ``BIRTH``
    (the patient's birth year and month, path to the patient in ``patient``).
    ``ceiling``: ``TODAY`` (the team's today) or ``HORIZON`` (``PLANNED_HORIZON`` after
    the floor). ``team``: the path to the row's team; ``patient``: to its patient."""

    model: str
    field: str
    floor: str | None
    ceiling: str
    team: str
    patient: str


TODAY = "today"
HORIZON = "horizon"
BIRTH = "birth"

_ON_COURSE = {"team": "course__patient__team", "patient": "course__patient"}
_RELAPSE = "course__relapse__relapse_date"

DATE_BOUNDS: tuple[DateBound, ...] = (
    DateBound("Patient", "initial_diagnosis_date", BIRTH, TODAY, "team", ""),
    DateBound("Patient", "frontline_end_date", "initial_diagnosis_date", TODAY, "team", ""),
    DateBound(
        "Relapse",
        "relapse_date",
        "patient__initial_diagnosis_date",
        TODAY,
        "patient__team",
        "patient",
    ),
    DateBound(
        "TreatmentCourse", "start_date", "relapse__relapse_date", TODAY, "patient__team", "patient"
    ),
    DateBound("CourseTransition", "on", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("BlockAdministration", "start_date", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("BlockAdministration", "end_date", "start_date", TODAY, **_ON_COURSE),
    DateBound("ResponseAssessment", "assessed_on", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("MrdResult", "sampled_on", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("ClinicalEvent", "occurred_on", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("HsctReferral", "referred_on", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("HsctReferral", "performed_on", "referred_on", TODAY, **_ON_COURSE),
    DateBound("HsctReferral", "planned_on", "referred_on", HORIZON, **_ON_COURSE),
    DateBound("PlannedStep", "done_on", _RELAPSE, TODAY, **_ON_COURSE),
    DateBound("PlannedStep", "due_on", _RELAPSE, HORIZON, **_ON_COURSE),
    DateBound("PlannedStep", "rescheduled_on", _RELAPSE, HORIZON, **_ON_COURSE),
)


def number_bound(model: str, field: str) -> NumberBound:
    return next(b for b in NUMBER_BOUNDS if (b.model, b.field) == (model, field))


def value_errors(model: str, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The number and text bounds ``data`` (a row's values by field name) breaks:
    ``{field: [message]}``, empty when fine. Absent and null values are not judged
    (whether a value is required is the record's own validator's business)."""
    errors: dict[str, list[str]] = {}
    for bound in NUMBER_BOUNDS:
        value = data.get(bound.field) if bound.model == model else None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and not bound.holds(value):
            errors.setdefault(bound.field, []).append(bound.message())
    limit = text_max_length()
    for owner, field in TEXT_FIELDS:
        value = data.get(field) if owner == model else None
        if isinstance(value, str) and len(value) > limit:
            errors.setdefault(field, []).append(
                f"must be at most {limit} characters (it has {len(value)})."
            )
    return errors


def text_errors(field: str, value: str | None) -> dict[str, list[str]]:
    """A free-text input that is no model field of its own (a transition's reason, a
    void's reason) under the same cap."""
    limit = text_max_length()
    if value is not None and len(value) > limit:
        return {field: [f"must be at most {limit} characters (it has {len(value)})."]}
    return {}


def planned_date_errors(field: str, value: date | None, relapse_date: date) -> dict[str, list[str]]:
    """A planned date (a step's due date, a planned transplant): not before the
    relapse, not beyond ``PLANNED_HORIZON`` after it."""
    if value is None:
        return {}
    if value < relapse_date:
        return {field: [f"must not be before the relapse date ({relapse_date})."]}
    last = relapse_date + PLANNED_HORIZON
    if value > last:
        return {
            field: [
                f"must not be later than {last}, {PLANNED_HORIZON.days // 365} years after the "
                "relapse (the planning horizon)."
            ]
        }
    return {}
