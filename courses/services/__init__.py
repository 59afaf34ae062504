"""Writes on patients, relapses, courses, steps and clinical records: the public API.

Every service is one visible transaction. Services that change a course lock its row
first (``select_for_update``), so two clinicians acting on the same course at once are
serialized: the second sees the first one's result and is refused (a domain error,
config/errors.py) if its action no longer applies -- never a lost update. Every write
leaves an audit entry or a CourseTransition. ``now`` is read once by the caller and
passed down; clinical dates are judged on the team's calendar (``Team.today``).

Modules: ``patients`` (patients and relapses), ``courses`` (open a course, stratify it
again, confirm the stratification and the HSCT indication, lay out the schedule),
``transitions`` (the state machine), ``steps`` (planned steps), ``records`` (clinical
records, their voids and amendments), ``hsct`` (the HSCT decision: the deciding sample,
its basis, the confirmation and its review); ``facts`` (the stratification facts the records
hold) and ``common`` hold what they share and are not part of the API, apart from
``relapse_facts``.
"""

from courses.services.courses import (
    course_confirm_hsct,
    course_confirm_stratification,
    course_create,
    course_restratify,
)
from courses.services.facts import relapse_facts
from courses.services.hsct import decision_summary as hsct_decision_summary
from courses.services.patients import (
    RELAPSE_FIELDS,
    patient_create,
    patient_errors,
    patient_update,
    relapse_create,
    relapse_errors,
    relapse_update,
)
from courses.services.records import (
    RECORD_SERVICES,
    amend_errors,
    amendable_fields,
    assessment_record,
    block_record,
    event_record,
    mrd_entry,
    mrd_record,
    record_amend,
    record_errors,
    record_void,
    referral_save,
)
from courses.services.steps import step_add, step_update
from courses.services.transitions import TransitionRefused, course_transition

__all__ = [
    "RELAPSE_FIELDS",
    "RECORD_SERVICES",
    "TransitionRefused",
    "amend_errors",
    "amendable_fields",
    "assessment_record",
    "block_record",
    "course_confirm_hsct",
    "course_confirm_stratification",
    "course_create",
    "course_restratify",
    "course_transition",
    "event_record",
    "hsct_decision_summary",
    "mrd_entry",
    "mrd_record",
    "patient_create",
    "patient_errors",
    "patient_update",
    "record_amend",
    "record_errors",
    "record_void",
    "referral_save",
    "relapse_create",
    "relapse_errors",
    "relapse_facts",
    "relapse_update",
    "step_add",
    "step_update",
]
