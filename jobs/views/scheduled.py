"""The scheduled screen: what runs later, with "run now" for operators."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from jobs.selectors.scheduled import scheduled_list as read_scheduled

#: One Redis range read per queue lane; more rows than this is a search, not a glance.
LIMIT = 200


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
def scheduled_list(request: HtmxHttpRequest) -> HttpResponse:
    listing = read_scheduled(list(settings.JOB_QUEUES), limit=LIMIT)
    template = "jobs/scheduled.html#table" if request.htmx else "jobs/scheduled.html"
    return render(request, template, {"listing": listing})
