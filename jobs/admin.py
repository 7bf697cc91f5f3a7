"""The Django admin: read-only history for now; actions arrive with issue 6."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from jobs.models import Attempt, JobEvent, JobRecord, OperatorAction, QueueState


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = (
        "number",
        "outcome",
        "worker_name",
        "pid",
        "started_at",
        "duration",
        "exc_type",
        "exc_message",
    )
    fields = readonly_fields


class EventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "kind", "message", "actor")
    fields = readonly_fields


@admin.register(JobRecord)
class JobRecordAdmin(ReadOnly):
    list_display = [
        "id",
        "task",
        "queue",
        "priority",
        "status",
        "attempts",
        "submitted_at",
        "finished_at",
    ]
    list_filter = ["status", "queue", "task", "submitted_at"]
    search_fields = ["id", "task", "last_error"]
    inlines = [AttemptInline, EventInline]


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnly):
    list_display = ["at", "actor_name", "action", "target", "count", "reason", "origin"]
    list_filter = ["action", "origin"]


@admin.register(QueueState)
class QueueStateAdmin(ReadOnly):
    list_display = ["name", "paused", "paused_by", "paused_at", "reason"]


admin.site.register(Attempt, ReadOnly)
admin.site.register(JobEvent, ReadOnly)
