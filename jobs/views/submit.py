"""The example submission form: a Django view built on job_submit."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from jobs import services
from jobs.forms import SubmitForm
from jobs.models import Origin


@login_required
@permission_required("jobs.operate", raise_exception=True)
def submit(request: HttpRequest) -> HttpResponse:
    form = SubmitForm(request.POST or None, initial=request.GET or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            record = services.job_submit(
                task=data["task"],
                payload=data["payload"],
                queue=data["queue"] or None,
                priority=data["priority"] or None,
                delay=data["delay"],
                actor=request.user,
                origin=Origin.WEB,
            )
        except services.InvalidInput as exc:
            form.add_service_errors(exc.errors)
        else:
            messages.success(request, f"Submitted {record.task} as job {record.pk}.")
            return redirect("jobs:job", job_id=record.pk)
    return render(
        request, "jobs/submit.html", {"form": form}, status=400 if form.errors else 200
    )
