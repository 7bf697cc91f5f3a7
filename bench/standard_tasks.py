"""The standard (Django Tasks API) task the bench runs beside demo.echo."""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef, unused-ignore]


@task()
def echo(text: str = "") -> str:
    """What demo.echo does, written with Django's @task."""
    return text
