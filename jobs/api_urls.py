from __future__ import annotations

from django.urls import path, re_path

from jobs import api
from jobs.converters import JobActionConverter

app_name = "api"

urlpatterns = [
    path("jobs/", api.jobs_collection, name="jobs"),
    path("jobs/<str:job_id>/", api.job_detail, name="job"),
    re_path(
        rf"^jobs/(?P<job_id>[^/]+)/(?P<action>{JobActionConverter.regex})/$",
        api.job_action,
        name="job-action",
    ),
    path("queues/", api.queue_collection, name="queues"),
    path("stats/", api.stats, name="stats"),
    re_path(
        r"^queues/(?P<name>[^/]+)/(?P<switch>pause|resume)/$",
        api.queue_switch,
        name="queue-switch",
    ),
    re_path(r"^workers/(?P<name>[^/]+)/stop/$", api.worker_stop, name="worker-stop"),
    path("schema/", api.schema, name="schema"),
]
