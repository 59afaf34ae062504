"""A course's decision history (re-stratification appends a decision), and MRD results
that cannot be misread (issue 12).

Data:
* Every course's current decision becomes the first entry of its history.
* MRD: existing values were entered as fractions (the only unit the API took). A stored
  value of 0 was how "negative" had to be written: it becomes the qualitative result
  ``negative`` (its sensitivity kept). Time points outside the vocabulary are left as
  they are (the choices are checked on entry, not in the database).
"""

import django.db.models.deletion
from django.db import migrations, models


def link_current_decisions(apps, schema_editor):
    TreatmentCourse = apps.get_model("courses", "TreatmentCourse")
    CourseDecision = apps.get_model("courses", "CourseDecision")
    rows = [
        CourseDecision(course_id=pk, decision_id=decision_id, at=at)
        for pk, decision_id, at in TreatmentCourse.objects.filter(
            decision__isnull=False
        ).values_list("pk", "decision_id", "decision__created_at")
    ]
    CourseDecision.objects.bulk_create(rows, batch_size=2000)


def zero_is_negative(apps, schema_editor):
    MrdResult = apps.get_model("courses", "MrdResult")
    MrdResult.objects.filter(value=0).update(value=None, qualitative="negative")


def negative_is_zero(apps, schema_editor):
    MrdResult = apps.get_model("courses", "MrdResult")
    MrdResult.objects.filter(qualitative="negative").update(value=0, qualitative="")


class Migration(migrations.Migration):
    dependencies = [
        ("courses", "0004_stratification_inputs"),
        ("stratification", "0003_decision_warnings_cut_offs_undetermined_time_point"),
    ]

    operations = [
        migrations.CreateModel(
            name="CourseDecision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField()),
                (
                    "course",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="decision_links",
                        to="courses.treatmentcourse",
                    ),
                ),
                (
                    "decision",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="course_link",
                        to="stratification.stratificationdecision",
                    ),
                ),
            ],
            options={"ordering": ["at", "id"]},
        ),
        migrations.RunPython(link_current_decisions, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="treatmentcourse",
            name="hsct_proposal_basis",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="mrdresult",
            name="entered_unit",
            field=models.CharField(
                choices=[
                    ("fraction", "fraction (0.001 = 10⁻³)"),
                    ("percent", "percent (0.1 % = 10⁻³)"),
                ],
                default="fraction",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="mrdresult",
            name="qualitative",
            field=models.CharField(
                blank=True,
                choices=[
                    ("negative", "negative"),
                    ("positive_not_quantifiable", "positive, not quantifiable"),
                ],
                max_length=26,
            ),
        ),
        migrations.AlterField(
            model_name="mrdresult",
            name="value",
            field=models.FloatField(
                blank=True, help_text="fraction of cells, e.g. 0.001 = 10^-3", null=True
            ),
        ),
        migrations.AlterField(
            model_name="mrdresult",
            name="sensitivity",
            field=models.FloatField(
                blank=True, help_text="fraction, e.g. 0.0001 = 10^-4", null=True
            ),
        ),
        migrations.AlterField(
            model_name="mrdresult",
            name="time_point",
            field=models.CharField(
                choices=[
                    ("at_relapse", "at relapse"),
                    ("end_of_induction", "end of induction"),
                    ("pre_hsct", "before HSCT"),
                    ("post_hsct", "after HSCT"),
                    ("follow_up", "during follow-up"),
                ],
                max_length=30,
            ),
        ),
        migrations.RunPython(zero_is_negative, negative_is_zero),
        migrations.AddConstraint(
            model_name="mrdresult",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("qualitative", ""), ("value__isnull", False)),
                    models.Q(
                        ("qualitative__in", ["negative", "positive_not_quantifiable"]),
                        ("value__isnull", True),
                    ),
                    _connector="OR",
                ),
                name="mrd_value_or_qualitative",
                violation_error_message="Give a measured value or a qualitative result, not both.",
            ),
        ),
    ]
