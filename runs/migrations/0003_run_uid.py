"""Give every run a UUID (the name of its budget state in Redis).

Three steps, as Django documents for unique fields with a callable default: a nullable column,
one fresh UUID per existing row, then unique and not null.
"""

import uuid

from django.db import migrations, models


def fill_uids(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    for run in Run.objects.filter(uid__isnull=True).only("pk").iterator():
        Run.objects.filter(pk=run.pk).update(uid=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0002_task_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="uid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(fill_uids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="run",
            name="uid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
