"""Writes. Every front door (console, admin, CLI, API, schedules) calls these."""

from jobs.services.control import (
    BULK_CAP,
    JOB_ACTIONS,
    BulkResult,
    audit,
    history_purge,
    job_act,
    job_cancel,
    job_retry,
    job_run_now,
    jobs_act,
    jobs_cancel,
    jobs_delete,
    jobs_retry,
)
from jobs.services.queues import (
    queue_empty,
    queue_pause,
    queue_resume,
    queue_set_paused,
    queue_sync_paused,
)
from jobs.services.submit import job_submit, job_submit_many, outbox_relay
from jobs.services.validation import InvalidInput, InvalidSubmission, SubmitRequest
from jobs.services.workers import worker_stop

__all__ = [
    "BULK_CAP",
    "JOB_ACTIONS",
    "BulkResult",
    "InvalidInput",
    "InvalidSubmission",
    "SubmitRequest",
    "audit",
    "history_purge",
    "job_act",
    "job_cancel",
    "job_retry",
    "job_submit",
    "job_submit_many",
    "jobs_act",
    "jobs_cancel",
    "jobs_retry",
    "job_run_now",
    "jobs_delete",
    "queue_empty",
    "outbox_relay",
    "queue_pause",
    "queue_resume",
    "queue_set_paused",
    "queue_sync_paused",
    "worker_stop",
]
