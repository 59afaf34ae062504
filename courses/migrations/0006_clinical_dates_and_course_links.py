"""Clinical dates (issue 11): every transition gets its clinical date ``on``; a course
gets the link to the course of the patient's earlier relapse and its latest clinical
date; a planned step keeps the team's reason beside the protocol's note and says what
closed it.

Existing data:
* ``CourseTransition.on`` = the date of ``at`` on the course's team's calendar (what
  was recorded is the best evidence of when it happened; a course back-entered before
  this migration keeps the typing dates it had).
* ``TreatmentCourse.last_clinical_on`` = the latest clinical date its record holds.
* ``PlannedStep.done_by`` stays empty: a step closed by a record before this migration
  is adopted by that record the next time the course's records are linked (a record
  dated the step's done date claims it, courses.schedule.link), so no step is closed
  twice.
* ``team_reason`` starts empty: earlier reschedule/skip reasons overwrote the note and
  are kept in the audit trail (action ``step_updated``).
"""

import zoneinfo
from datetime import date

from django.db import migrations, models
from django.db.models import DateField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, NullIf

NO_DATE = date(1, 1, 1)


def fill_transition_dates(apps, schema_editor):
    CourseTransition = apps.get_model("courses", "CourseTransition")
    zones = {}
    rows = CourseTransition.objects.select_related("course__patient__team").only(
        "at", "course__patient__team__time_zone"
    )
    changed = []
    for transition in rows.iterator(chunk_size=2000):
        name = transition.course.patient.team.time_zone
        zone = zones.setdefault(name, zoneinfo.ZoneInfo(name))
        transition.on = transition.at.astimezone(zone).date()
        changed.append(transition)
        if len(changed) >= 2000:
            CourseTransition.objects.bulk_update(changed, ["on"])
            changed = []
    if changed:
        CourseTransition.objects.bulk_update(changed, ["on"])


def fill_last_clinical_on(apps, schema_editor):
    """The same derivation as courses.services.common.latest_clinical_date, frozen
    here (no record is voided yet)."""
    TreatmentCourse = apps.get_model("courses", "TreatmentCourse")

    def latest(model_name, field, **filters):
        model = apps.get_model("courses", model_name)
        rows = (
            model.objects.filter(course=OuterRef("pk"), **{f"{field}__isnull": False}, **filters)
            .order_by(f"-{field}")
            .values(field)[:1]
        )
        return Coalesce(Subquery(rows, output_field=DateField()), Value(NO_DATE))

    dates = [
        Coalesce("start_date", Value(NO_DATE)),
        latest("CourseTransition", "on"),
        latest("BlockAdministration", "start_date"),
        latest("BlockAdministration", "end_date"),
        latest("ResponseAssessment", "assessed_on"),
        latest("MrdResult", "sampled_on"),
        latest("HsctReferral", "referred_on"),
        latest("HsctReferral", "performed_on"),
        latest("ClinicalEvent", "occurred_on"),
        latest("PlannedStep", "done_on", status="done"),
    ]
    TreatmentCourse.objects.update(
        last_clinical_on=NullIf(Greatest(*dates, output_field=DateField()), Value(NO_DATE))
    )


class Migration(migrations.Migration):

    dependencies = [
        ("courses", "0005_decision_history_and_mrd_entry"),
        ("teams", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="coursetransition",
            name="on",
            field=models.DateField(null=True),
        ),
        migrations.AddField(
            model_name="treatmentcourse",
            name="previous_course",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.PROTECT,
                related_name="later_courses",
                to="courses.treatmentcourse",
            ),
        ),
        migrations.AddField(
            model_name="treatmentcourse",
            name="last_clinical_on",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="treatmentcourse",
            name="off_protocol_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("refractory", "Refractory (no CR2)"),
                    (
                        "treatment_failure_alternative_therapy",
                        "Treatment failure, alternative therapy (e.g. CAR-T, blinatumomab)",
                    ),
                    ("second_relapse", "Second relapse"),
                    ("death", "Death"),
                    ("withdrawal", "Withdrawal"),
                    ("lost_to_follow_up", "Lost to follow-up"),
                    ("entered_in_error", "Entered in error"),
                ],
                max_length=40,
            ),
        ),
        migrations.AddField(
            model_name="plannedstep",
            name="team_reason",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="plannedstep",
            name="done_by",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.RunPython(fill_transition_dates, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="coursetransition",
            name="on",
            field=models.DateField(),
        ),
        migrations.RunPython(fill_last_clinical_on, migrations.RunPython.noop),
    ]
