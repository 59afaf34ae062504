from django.db import migrations


def create_lock_row(apps, schema_editor):
    apps.get_model("notifications", "SweepRun").objects.get_or_create(name="alerts")


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_sweeprun_alert_alertevent_and_more")]

    operations = [migrations.RunPython(create_lock_row, migrations.RunPython.noop)]
