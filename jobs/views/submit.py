"""The Submit screen: a form over job_submit, with the chosen task's schema.

The form goes through the same service as the API and the CLI; only the
schema panel is the screen's own (changing the task swaps it with htmx; without
JavaScript a separate small GET form reloads the page with ?task=...).
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from jobs import registry, services
from jobs.forms import SubmitForm
from jobs.models import JobRecord, Origin
from jobs.selectors.task_schema import TaskSchema, task_schema


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_http_methods(["GET", "POST"])
def submit(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = SubmitForm(request.POST)
        schema = _schema(request.POST.get("task"))
        if form.is_valid():
            started = timezone.now()
            try:
                record = services.job_submit(
                    **form.submission(), actor=request.user, origin=Origin.WEB
                )
            except services.InvalidInput as exc:
                form.add_service_errors(exc.errors)
            else:
                messages.success(request, _submitted(record, started))
                return redirect("jobs:job", job_id=record.pk)
    else:
        schema = _schema(request.GET.get("task"))
        form = SubmitForm(initial=_initial(request, schema))
    template = "jobs/submit.html"
    if _wants_panel(request):
        template += "#task-panel"
    context = {"form": form, "schema": schema}
    return render(request, template, context, status=400 if form.errors else 200)


def _wants_panel(request: HtmxHttpRequest) -> bool:
    """An htmx request from the task select, which swaps only the panel."""
    htmx = request.htmx
    return bool(
        request.method == "GET"
        and htmx
        and not htmx.boosted
        and not htmx.history_restore_request
    )


def _schema(name: str | None) -> TaskSchema | None:
    """The named task's schema; the first task's if the name is unknown."""
    try:
        return task_schema(registry.get(name or ""))
    except registry.UnknownTask:
        tasks = registry.all_tasks()
        return task_schema(tasks[0]) if tasks else None


def _initial(request: HttpRequest, schema: TaskSchema | None) -> dict[str, str]:
    """The query string's values (a link may pre-fill any field), with the
    chosen task's example payload when the link gives none."""
    initial = request.GET.dict()
    if schema is not None:
        initial["task"] = schema.task.name
        initial.setdefault("payload", schema.example_json)
    return initial


def _submitted(record: JobRecord, started: datetime) -> str:
    if record.idempotency_key and record.submitted_at < started:
        return (
            f"Idempotency key {record.idempotency_key!r} was used before: this is "
            f"job {record.pk}, submitted earlier. Nothing new was submitted."
        )
    return f"Submitted {record.task} as job {record.pk}."
