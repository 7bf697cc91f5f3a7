from __future__ import annotations

from django.urls import path

from jobs import api

app_name = "api"

urlpatterns = [
    path("jobs/", api.jobs_collection, name="jobs"),
    path("jobs/<str:job_id>/", api.job_detail, name="job"),
    path("jobs/<str:job_id>/retry/", api.job_retry, name="job-retry"),
    path("jobs/<str:job_id>/cancel/", api.job_cancel, name="job-cancel"),
    path("queues/", api.queue_collection, name="queues"),
    path("stats/", api.stats, name="stats"),
    path("queues/<str:name>/pause/", api.queue_pause, name="queue-pause"),
    path("queues/<str:name>/resume/", api.queue_resume, name="queue-resume"),
    path("schema/", api.schema, name="schema"),
]
