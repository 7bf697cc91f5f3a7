"""Writes. Every front door (console, admin, CLI, API, schedules) calls these."""

from jobs.services.control import (
    BULK_CAP,
    BulkResult,
    audit,
    history_purge,
    job_cancel,
    job_retry,
    job_run_now,
    jobs_cancel,
    jobs_delete,
    jobs_retry,
)
from jobs.services.queues import (
    queue_empty,
    queue_pause,
    queue_resume,
    queue_sync_paused,
)
from jobs.services.submit import job_submit, job_submit_many, outbox_relay
from jobs.services.validation import InvalidInput, InvalidSubmission, SubmitRequest

__all__ = [
    "BULK_CAP",
    "BulkResult",
    "InvalidInput",
    "InvalidSubmission",
    "SubmitRequest",
    "audit",
    "history_purge",
    "job_cancel",
    "job_retry",
    "job_submit",
    "job_submit_many",
    "jobs_cancel",
    "jobs_retry",
    "job_run_now",
    "jobs_delete",
    "queue_empty",
    "outbox_relay",
    "queue_pause",
    "queue_resume",
    "queue_sync_paused",
]
