"""The facts the stratification reads, on the patient and the relapse (issue 12), and
the course's record of a decision going stale (issue 11).

Data:
* Front-line status: an end date means ``completed``; no end date becomes ``unknown`` --
  never ``on_therapy`` (a missing date used to be read as "relapse during therapy").
* Relapse numbers: a patient's relapses are numbered by date (1, 2, ...). Two relapses
  of one patient on the same date stop the migration, naming them: they are one relapse
  entered twice, and a person must say which one stays.
* The proposed group of a needs-review course is NULL ("no group"), not "".
* A course whose decision read other inputs than the patient and relapse now show is
  marked stale: decisions made before version 1.1 read a missing front-line end date as
  "on therapy" (now ``unknown``), and a renumbered relapse was stratified as a first one.
"""

from collections import defaultdict

import django.core.validators
from django.db import migrations, models
from django.utils import timezone


def frontline_status_from_end_date(apps, schema_editor):
    Patient = apps.get_model("courses", "Patient")
    Patient.objects.filter(frontline_end_date__isnull=False).update(frontline_status="completed")
    Patient.objects.filter(frontline_end_date__isnull=True).update(frontline_status="unknown")


def number_relapses_by_date(apps, schema_editor):
    Relapse = apps.get_model("courses", "Relapse")
    by_patient = defaultdict(list)
    for relapse in Relapse.objects.order_by("patient_id", "relapse_date", "id"):
        by_patient[relapse.patient_id].append(relapse)
    for relapses in by_patient.values():
        for earlier, later in zip(relapses, relapses[1:]):
            if earlier.relapse_date == later.relapse_date:
                raise RuntimeError(
                    f"relapses {earlier.pk} and {later.pk} belong to one patient and share a "
                    "date: remove the one entered twice before migrating"
                )
        for number, relapse in enumerate(relapses, start=1):
            if relapse.relapse_number != number:
                relapse.relapse_number = number
                relapse.save(update_fields=["relapse_number"])


def no_group_is_null(apps, schema_editor):
    TreatmentCourse = apps.get_model("courses", "TreatmentCourse")
    TreatmentCourse.objects.filter(proposed_group="").update(proposed_group=None)


def no_group_is_blank(apps, schema_editor):
    TreatmentCourse = apps.get_model("courses", "TreatmentCourse")
    TreatmentCourse.objects.filter(proposed_group__isnull=True).update(proposed_group="")


def mark_stale_decisions(apps, schema_editor):
    TreatmentCourse = apps.get_model("courses", "TreatmentCourse")
    today = timezone.now().date()
    courses = TreatmentCourse.objects.filter(decision__isnull=False).select_related(
        "decision", "relapse", "patient"
    )
    for course in courses.iterator():
        snapshot = course.decision.input_snapshot or {}
        stale = []
        # Before 1.1 the snapshot had no frontline_status: the engine read "no end date"
        # as a relapse during front-line therapy.
        read = snapshot.get("frontline_status") or (
            "completed" if snapshot.get("frontline_therapy_end_date") else "on_therapy"
        )
        if read != course.patient.frontline_status:
            stale.append("frontline_status")
        if snapshot.get("relapse_number", 1) != course.relapse.relapse_number:
            stale.append("relapse_number")
        if stale:
            course.decision_stale_fields = stale
            course.decision_stale_since = today
            course.save(update_fields=["decision_stale_fields", "decision_stale_since"])


class Migration(migrations.Migration):
    dependencies = [
        ("courses", "0003_immunophenotype_mpal"),
        ("stratification", "0003_decision_warnings_cut_offs_undetermined_time_point"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="birth_month",
            field=models.PositiveSmallIntegerField(
                blank=True,
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(12),
                ],
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="bcr_abl1",
            field=models.CharField(
                choices=[
                    ("positive", "positive (Ph+)"),
                    ("negative", "negative"),
                    ("unknown", "unknown"),
                ],
                default="unknown",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="frontline_status",
            field=models.CharField(
                choices=[
                    ("completed", "completed (end date known)"),
                    ("on_therapy", "on front-line therapy at the relapse"),
                    ("unknown", "unknown"),
                ],
                default="unknown",
                max_length=10,
            ),
        ),
        migrations.RunPython(frontline_status_from_end_date, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("frontline_end_date__isnull", False), ("frontline_status", "completed")
                    ),
                    models.Q(
                        ("frontline_end_date__isnull", True),
                        ("frontline_status__in", ["on_therapy", "unknown"]),
                    ),
                    _connector="OR",
                ),
                name="patient_frontline_end_date_iff_completed",
                violation_error_message="frontline_end_date is required when frontline_status "
                "is completed, and must be empty otherwise.",
            ),
        ),
        migrations.AddField(
            model_name="relapse",
            name="prior_hsct",
            field=models.BooleanField(default=False, help_text="an HSCT before this relapse"),
        ),
        migrations.AddField(
            model_name="relapse",
            name="relapse_number",
            field=models.PositiveSmallIntegerField(
                default=1, validators=[django.core.validators.MinValueValidator(1)]
            ),
        ),
        migrations.RunPython(number_relapses_by_date, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="relapse",
            constraint=models.UniqueConstraint(
                fields=("patient", "relapse_date"),
                name="relapse_unique_patient_date",
                violation_error_message="This patient already has a relapse on this date.",
            ),
        ),
        migrations.AddConstraint(
            model_name="relapse",
            constraint=models.CheckConstraint(
                condition=models.Q(("relapse_number__gte", 1)),
                name="relapse_number_at_least_one",
                violation_error_message="relapse_number must be at least 1.",
            ),
        ),
        migrations.AlterField(
            model_name="treatmentcourse",
            name="proposed_group",
            field=models.CharField(blank=True, max_length=10, null=True),
        ),
        migrations.RunPython(no_group_is_null, no_group_is_blank),
        migrations.AddField(
            model_name="treatmentcourse",
            name="decision_stale_fields",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="treatmentcourse",
            name="decision_stale_since",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.RunPython(mark_stale_decisions, migrations.RunPython.noop),
    ]
