"""Durable history and control state. No I/O beyond the ORM lives here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce


class Priority(models.TextChoices):
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"
    LOW = "low", "Low"


class Origin(models.TextChoices):
    WEB = "web", "Web console"
    ADMIN = "admin", "Django admin"
    API = "api", "JSON API"
    CLI = "cli", "Command line"
    SCHEDULE = "schedule", "Schedule"
    CODE = "code", "Application code"
    #: Written into our Redis by another RQ client (a plain `rq` producer):
    #: recorded when a worker refuses it or reconciliation finds it.
    FOREIGN = "foreign", "Another RQ client"
    #: Enqueued through Django's standard Tasks API (jobs.tasks_backend).
    DJANGO_TASKS = "django.tasks", "Django Tasks API"


class JobRecord(models.Model):
    """One job for its whole life; its primary key is the RQ job id."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # written, not yet in Redis (outbox)
        QUEUED = "queued", "Queued"
        SCHEDULED = "scheduled", "Scheduled"
        DEFERRED = "deferred", "Deferred"  # waiting on dependencies
        STARTED = "started", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        RETRYING = "retrying", "Retrying"  # failed, next attempt scheduled
        DEAD = "dead", "Dead"  # attempts exhausted
        CANCELED = "canceled", "Canceled"

    #: Which moves between statuses are allowed: jobs.services.transitions.
    FINAL_STATUSES = (Status.SUCCEEDED, Status.DEAD, Status.CANCELED)

    id = models.CharField(primary_key=True, max_length=64)
    task = models.CharField(max_length=200, db_index=True)
    queue = models.CharField(max_length=64)
    priority = models.CharField(
        max_length=8, choices=Priority.choices, default=Priority.NORMAL
    )
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    retry_policy = models.JSONField(default=dict, blank=True)
    timeout = models.PositiveIntegerField(default=180)
    origin = models.CharField(
        max_length=16, choices=Origin.choices, default=Origin.CODE
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    submitted_at = models.DateTimeField(db_index=True)
    run_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    worker_name = models.CharField(max_length=200, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    #: Groups failures by task, exception type and normalised message.
    error_fingerprint = models.CharField(max_length=40, blank=True, db_index=True)
    idempotency_key = models.CharField(
        max_length=200, null=True, blank=True, unique=True
    )
    schedule = models.ForeignKey(
        "Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    parents: models.ManyToManyField[JobRecord, JobDependency] = models.ManyToManyField(
        "self", through="JobDependency", symmetrical=False, related_name="children"
    )

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [
            models.Index(fields=["status", "-submitted_at"]),
            models.Index(fields=["queue", "status"]),
            models.Index(fields=["task", "status"]),
            models.Index(fields=["status", "error_fingerprint"]),
            models.Index(fields=["status", "finished_at"]),
            # The Failures screen's groups, for failing jobs only: it counts
            # them in this small index and seeks each group's first and last
            # failure (jobs.selectors.failures), never reading the rows.
            models.Index(
                "status",
                "task",
                "error_type",
                "error_fingerprint",
                Coalesce("finished_at", "started_at", "submitted_at"),
                "id",
                condition=models.Q(status__in=["dead", "retrying"]),
                name="jobs_failure_groups",
            ),
        ]
        permissions = [("operate", "Can act on jobs, queues and schedules")]

    def __str__(self) -> str:
        return f"{self.task} [{self.id}]"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class JobDependency(models.Model):
    child = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="+")
    parent = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="+")
    allow_failure = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["child", "parent"], name="unique_dependency"
            )
        ]

    def __str__(self) -> str:
        return f"{self.child_id} after {self.parent_id}"


class Attempt(models.Model):
    """One execution of a job by a worker."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        LOST = "lost", "Worker lost"

    job = models.ForeignKey(
        JobRecord, on_delete=models.CASCADE, related_name="attempt_set"
    )
    number = models.PositiveIntegerField()
    worker_name = models.CharField(max_length=200, blank=True)
    hostname = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.RUNNING
    )
    exc_type = models.CharField(max_length=200, blank=True)
    exc_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "number"]
        # Failed attempts in a window (jobs.selectors.figures), counted from
        # the index alone: the overview asks every 2 s.
        indexes = [models.Index(fields=["outcome", "finished_at", "job"])]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="unique_attempt")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number}"


class JobEvent(models.Model):
    """The timeline of a job: what happened, when, and who did it."""

    class Kind(models.TextChoices):
        ENQUEUED = "enqueued", "Enqueued"
        SCHEDULED = "scheduled", "Scheduled"
        DEFERRED = "deferred", "Waiting on dependencies"
        BLOCKED = "blocked", "Blocked by a failed dependency"
        STARTED = "started", "Started"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
        DEAD = "dead", "Dead-lettered"
        LOST = "lost", "Worker lost"
        RECOVERED = "recovered", "Recovered after a crash"
        RETRIED = "retried", "Retried by an operator"
        CANCELED = "canceled", "Canceled"
        RECONCILED = "reconciled", "Repaired by reconcile"

    job = models.ForeignKey(JobRecord, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    message = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    #: The Redis stream entry this came from: replays of a batch are no-ops.
    stream_id = models.CharField(max_length=100, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["job", "at"])]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind}"


class QueueState(models.Model):
    """Operator-controlled state of a queue (the source of truth for pause)."""

    name = models.CharField(primary_key=True, max_length=64)
    paused = models.BooleanField(default=False)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'running'})"


class OperatorAction(models.Model):
    """The audit log: every action an operator takes, from any front door."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=300, blank=True)
    count = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=500, blank=True)
    origin = models.CharField(
        max_length=16, choices=Origin.choices, default=Origin.CODE
    )
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target}"


class ApiToken(models.Model):
    """A per-user API token, stored hashed; the secret is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Schedule(models.Model):
    """A cron or interval schedule; the database is the source of truth and
    rq-scheduler's sorted set only says when each schedule is next due."""

    name = models.CharField(max_length=100, unique=True)
    task = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    queue = models.CharField(
        max_length=64, blank=True, help_text="Empty: the task's default queue."
    )
    priority = models.CharField(max_length=8, choices=Priority.choices, blank=True)
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text="Five-field cron expression, e.g. */5 * * * *",
    )
    timezone = models.CharField(max_length=64, default="UTC")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    catch_up = models.BooleanField(
        default=False,
        help_text="Run once on recovery for a firing missed while everything was "
        "down (otherwise skip it).",
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(
        JobRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_outcome = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def every(self) -> str:
        if self.cron:
            return f"cron {self.cron} ({self.timezone})"
        return f"every {self.interval_seconds} s"

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing strictly after `moment`, within start and end."""
        if self.start_at and moment < self.start_at:
            moment = self.start_at - timedelta(microseconds=1)
        if self.cron:
            zone = ZoneInfo(self.timezone or "UTC")
            found = croniter(self.cron, moment.astimezone(zone)).get_next(datetime)
        elif self.interval_seconds:
            anchor = self.start_at or self.created_at or moment
            periods = (
                int((moment - anchor).total_seconds() // self.interval_seconds) + 1
            )
            found = anchor + timedelta(seconds=periods * self.interval_seconds)
        else:
            return None
        if self.end_at and found > self.end_at:
            return None
        return found.astimezone(UTC)


class AlertRule(models.Model):
    """A condition the monitor evaluates every few seconds."""

    class Kind(models.TextChoices):
        QUEUE_DEPTH = "queue_depth", "Queue depth over N"
        OLDEST_WAIT = "oldest_wait", "Oldest waiting job older than T seconds"
        FAILURE_RATE = "failure_rate", "Failure rate over X % in the window"
        NO_WORKER = "no_worker", "No live worker for a queue that has work"
        DEAD_GROWTH = "dead_growth", "Dead jobs growing by N in the window"
        SCHEDULER_DOWN = "scheduler_down", "Scheduler not seen for T seconds"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    queue = models.CharField(max_length=64, blank=True, help_text="Empty: every queue.")
    threshold = models.FloatField(help_text="N jobs, T seconds or X percent.")
    window_seconds = models.PositiveIntegerField(default=300)
    min_attempts = models.PositiveIntegerField(
        default=20,
        help_text="Failure rate only: finished attempts the window must hold "
        "before the rate counts (one job failing a few times is not a spike).",
    )
    min_failing_jobs = models.PositiveIntegerField(
        default=2,
        help_text="Failure rate only: distinct jobs that must have failed in "
        "the window (one job failing over and over is that job's problem).",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One opening of a rule, until its condition clears."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=200, help_text="e.g. the queue concerned")
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_alert_per_rule_and_subject",
            ),
        ]

    def __str__(self) -> str:
        return self.summary

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
