from __future__ import annotations

from django.urls import path

from jobs.views import jobs, submit

app_name = "jobs"

urlpatterns = [
    path("", jobs.job_list, name="home"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<str:job_id>/", jobs.job_detail, name="job"),
    path("submit/", submit.submit, name="submit"),
]
