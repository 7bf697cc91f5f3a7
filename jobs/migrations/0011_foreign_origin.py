"""Jobs written by another RQ client are recorded with origin "foreign"."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0010_alert_min_volume"),
    ]

    operations = [
        migrations.AlterField(
            model_name="jobrecord",
            name="origin",
            field=models.CharField(
                choices=[
                    ("web", "Web console"),
                    ("admin", "Django admin"),
                    ("api", "JSON API"),
                    ("cli", "Command line"),
                    ("schedule", "Schedule"),
                    ("code", "Application code"),
                    ("foreign", "Another RQ client"),
                ],
                default="code",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="operatoraction",
            name="origin",
            field=models.CharField(
                choices=[
                    ("web", "Web console"),
                    ("admin", "Django admin"),
                    ("api", "JSON API"),
                    ("cli", "Command line"),
                    ("schedule", "Schedule"),
                    ("code", "Application code"),
                    ("foreign", "Another RQ client"),
                ],
                default="code",
                max_length=16,
            ),
        ),
    ]
