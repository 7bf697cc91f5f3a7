from __future__ import annotations

from django.urls import path, register_converter

from jobs.converters import JobActionConverter, TextConverter
from jobs.views import (
    alerts,
    audit,
    failures,
    job_page,
    jobs,
    overview,
    queues,
    scheduled,
    submit,
    workers,
)
from jobs.views.access import viewer_required

app_name = "jobs"
# Namespaced: converters are global to the host project.
register_converter(TextConverter, "jobs_text")
register_converter(JobActionConverter, "jobs_action")

urlpatterns = [
    path("", overview.overview, name="home"),
    path("overview/live/", overview.overview_live, name="overview-live"),
    path("queues/<jobs_text:name>/", queues.queue_detail, name="queue"),
    path("queues/<jobs_text:name>/pause/", queues.queue_pause, name="queue-pause"),
    path("queues/<jobs_text:name>/resume/", queues.queue_resume, name="queue-resume"),
    path("queues/<jobs_text:name>/empty/", queues.queue_empty, name="queue-empty"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/bulk/", jobs.job_bulk, name="jobs-bulk"),
    path("jobs/<jobs_text:job_id>/", job_page.job_detail, name="job"),
    path("jobs/<jobs_text:job_id>/live/", job_page.job_live, name="job-live"),
    path(
        "jobs/<jobs_text:job_id>/<jobs_action:action>/",
        job_page.job_action,
        name="job-action",
    ),
    path("jobs/<jobs_text:job_id>/delete/", job_page.job_delete, name="job-delete"),
    path("jobs/<jobs_text:job_id>/run-now/", job_page.job_run_now, name="job-run-now"),
    path("failures/", failures.failure_groups, name="failures"),
    path(
        "failures/<jobs_text:fingerprint>/retry/",
        failures.group_retry,
        name="failures-retry",
    ),
    path(
        "failures/<jobs_text:fingerprint>/discard/",
        failures.group_discard,
        name="failures-discard",
    ),
    path("workers/", workers.worker_list, name="workers"),
    path("workers/<jobs_text:name>/stop/", workers.worker_stop, name="worker-stop"),
    path("scheduled/", scheduled.scheduled_list, name="scheduled"),
    path(
        "schedules/<int:pk>/enable/", scheduled.schedule_enable, name="schedule-enable"
    ),
    path(
        "schedules/<int:pk>/disable/",
        scheduled.schedule_disable,
        name="schedule-disable",
    ),
    path(
        "schedules/<int:pk>/run-now/",
        scheduled.schedule_run_now,
        name="schedule-run-now",
    ),
    path("operator-log/", audit.operator_log, name="operator-log"),
    path("alerts/", alerts.alert_list, name="alerts"),
    path("submit/", submit.submit, name="submit"),
]

# Every page needs the viewer permission, here in one place so that no new
# screen can forget it; operator actions check jobs.operate as well.
for _pattern in urlpatterns:
    _pattern.callback = viewer_required(_pattern.callback)
