"""Sensible default alert rules (editable in the admin)."""

from django.db import migrations

from jobs.defaults import DEFAULT_ALERT_RULES, ensure_default_alert_rules


def create(apps, schema_editor):
    ensure_default_alert_rules(apps.get_model("jobs", "AlertRule"))


def remove(apps, schema_editor):
    apps.get_model("jobs", "AlertRule").objects.filter(
        name__in=[d[0] for d in DEFAULT_ALERT_RULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("jobs", "0005_alerts")]
    operations = [migrations.RunPython(create, remove)]
