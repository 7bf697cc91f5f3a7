"""The text index behind "payload has" and "error has" (see jobs.textindex):
FTS5 with triggers on SQLite, pg_trgm GIN indexes on PostgreSQL. Existing rows
are indexed here. Not atomic: PostgreSQL builds its indexes CONCURRENTLY."""

from django.db import migrations

from jobs import textindex


def install(apps, schema_editor):
    textindex.install(schema_editor.connection)


def remove(apps, schema_editor):
    textindex.remove(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("jobs", "0007_failure_groups_index")]
    operations = [migrations.RunPython(install, remove)]
