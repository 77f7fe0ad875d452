from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0010_api_tokens")]

    operations = [
        migrations.AddField(
            model_name="task",
            name="holder",
            field=models.CharField(
                blank=True,
                help_text="The worker process running it (harness_site.liveness); '' when none.",
                max_length=200,
            ),
        ),
        migrations.AddField(
            model_name="task",
            name="retry_at",
            field=models.DateTimeField(
                blank=True, help_text="When a retrying agent's delayed message is due.", null=True
            ),
        ),
    ]
