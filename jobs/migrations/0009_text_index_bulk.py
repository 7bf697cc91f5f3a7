"""SQLite: the text index's insert trigger stands aside while a bulk insert
indexes its rows with one statement (jobs.textindex.indexed_at_end)."""

from django.db import migrations

from jobs import textindex


def forward(apps, schema_editor):
    textindex.pausable_insert_trigger(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0008_text_index")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
