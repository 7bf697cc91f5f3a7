"""The Django admin: history read-only, actions through the same services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs import services
from jobs.forms import TextField
from jobs.models import (
    Alert,
    AlertRule,
    ApiToken,
    Attempt,
    JobEvent,
    JobRecord,
    OperatorAction,
    Origin,
    QueueState,
    Schedule,
)
from jobs.selectors.history import MatchCount
from jobs.services import schedules as schedule_services
from jobs.services.validation import MAX_REASON_LENGTH, text_problem
from jobs.tokens import token_create, token_revoke
from jobs.views.jobs import CONSEQUENCES, confirmation_problem


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = readonly_fields = (
        "number",
        "outcome",
        "worker_name",
        "pid",
        "started_at",
        "duration",
        "exc_type",
        "exc_message",
    )


class EventInline(ReadOnlyInline):
    model = JobEvent
    fields = readonly_fields = ("at", "kind", "message", "actor")


def _report(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    result: services.BulkResult,
    verb: str,
) -> None:
    level = messages.SUCCESS if result.done else messages.WARNING
    model_admin.message_user(request, result.summary(verb) + ".", level)


class CheckedSearch(admin.ModelAdmin):
    """The search box held to the front doors' text rule: a term the database
    could not take (a NUL character) or a thousand words that would nest a
    query too deep finds nothing and says why, instead of a server error."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        problem = text_problem(search_term) if search_term else None
        if problem:
            self.message_user(request, f"Search: {problem}.", messages.ERROR)
            return queryset.none(), False
        return self.search(request, queryset, search_term)

    def search(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """The search itself, for a term that passed the rule."""
        return super().get_search_results(request, queryset, search_term)


class OperateMixin:
    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.operate")


@admin.register(JobRecord)
class JobRecordAdmin(OperateMixin, CheckedSearch, ReadOnly):
    list_display = (
        "id",
        "task",
        "queue",
        "priority",
        "status",
        "attempts",
        "submitted_at",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "queue", "task", "priority", "submitted_at")
    search_fields = ("id", "task", "payload", "last_error")
    date_hierarchy = "submitted_at"
    inlines = (AttemptInline, EventInline)
    actions = ("retry", "cancel", "delete_jobs")
    list_per_page = 50
    show_full_result_count = False  # a COUNT(*) over millions of rows per page

    def search(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if search_term and JobRecord.objects.filter(pk=search_term).exists():
            return queryset.filter(pk=search_term), False
        return super().search(request, queryset, search_term)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found

    @admin.action(description="Retry selected jobs…", permissions=["operate"])
    def retry(
        self, request: HttpRequest, queryset: QuerySet[JobRecord]
    ) -> HttpResponse | None:
        return self._bulk(request, queryset, "retry")

    @admin.action(description="Cancel selected jobs…", permissions=["operate"])
    def cancel(
        self, request: HttpRequest, queryset: QuerySet[JobRecord]
    ) -> HttpResponse | None:
        return self._bulk(request, queryset, "cancel")

    @admin.action(
        description="Delete selected jobs and their history…", permissions=["operate"]
    )
    def delete_jobs(
        self, request: HttpRequest, queryset: QuerySet[JobRecord]
    ) -> HttpResponse | None:
        return self._bulk(request, queryset, "delete")

    def _bulk(
        self, request: HttpRequest, queryset: QuerySet[JobRecord], action: str
    ) -> HttpResponse | None:
        """Django's intermediate page, as for its own delete: state the exact
        count and act only on a "yes" for at least as many jobs as now match
        (the selection can be "all N matching", which grows)."""
        count = MatchCount(queryset.count())
        problem = confirmation_problem(request, count)
        if problem is not None:
            return render(
                request,
                "admin/jobs/confirm_delete.html",
                {
                    **self.admin_site.each_context(request),
                    "count": count.value,
                    "ids": queryset.values_list("pk", flat=True)[: services.BULK_CAP],
                    "select_across": request.POST.get("select_across") == "1",
                    "action": request.POST.get("action", ""),
                    "verb": action.capitalize(),
                    "consequence": CONSEQUENCES[action],
                    "problem": problem,
                    "bulk_cap": services.BULK_CAP,
                    "opts": self.model._meta,
                    "title": f"{action.capitalize()} jobs?",
                },
            )
        result = services.jobs_act(
            action=action,
            ids=queryset.values_list("pk", flat=True),
            actor=request.user,
            origin=Origin.ADMIN,
            target="jobs selected in the admin",
        )
        _report(self, request, result, services.JOB_ACTIONS[action].verb)
        return None


class ReasonForm(forms.Form):
    reason = TextField(
        max_length=MAX_REASON_LENGTH,
        required=True,
        help_text="Recorded in the operator log.",
    )


@admin.register(QueueState)
class QueueStateAdmin(OperateMixin, ReadOnly):
    list_display = ("name", "paused", "paused_by", "paused_at", "reason")
    actions = ("pause", "resume")

    def get_queryset(self, request: HttpRequest) -> QuerySet[QueueState]:
        # Every configured queue is listed, paused or not.
        for name in settings.JOB_QUEUES:
            QueueState.objects.get_or_create(name=name)
        return super().get_queryset(request)

    def _with_reason(
        self, request: HttpRequest, queryset: QuerySet[QueueState], verb: str
    ) -> HttpResponse | None:
        form = ReasonForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            return render(
                request,
                "admin/jobs/queue_reason.html",
                {
                    "form": form,
                    "queues": queryset,
                    "verb": verb,
                    "action": request.POST.get("action"),
                    "opts": self.model._meta,
                    "title": f"{verb.title()} queues",
                },
            )
        call = services.queue_pause if verb == "pause" else services.queue_resume
        for state in queryset:
            call(
                name=state.name,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                origin=Origin.ADMIN,
            )
        names = ", ".join(s.name for s in queryset)
        self.message_user(
            request, f"{verb.title()}d {queryset.count()} queue(s): {names}."
        )
        return None

    @admin.action(description="Pause selected queues", permissions=["operate"])
    def pause(self, request: HttpRequest, queryset: QuerySet[QueueState]) -> Any:
        return self._with_reason(request, queryset, "pause")

    @admin.action(description="Resume selected queues", permissions=["operate"])
    def resume(self, request: HttpRequest, queryset: QuerySet[QueueState]) -> Any:
        return self._with_reason(request, queryset, "resume")


@admin.register(OperatorAction)
class OperatorActionAdmin(CheckedSearch, ReadOnly):
    list_display = ("at", "actor_name", "action", "target", "count", "reason", "origin")
    list_filter = ("action", "origin")
    search_fields = ("actor_name", "target", "reason")


class TokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "user",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    form = TokenForm
    actions = ("revoke",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: Any, change: bool
    ) -> None:
        token, secret = token_create(user=obj.user, name=obj.name)
        obj.pk = token.pk
        messages.warning(
            request,
            f"Token for {obj.user}: {secret} — copy it now, it "
            "is stored hashed and will not be shown again.",
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = list(schedule_services.FIELDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        probe = Schedule(**{k: v for k, v in data.items() if k in self.Meta.fields})
        try:
            schedule_services.schedule_validate(probe)
        except services.InvalidInput as exc:
            for key, messages_ in exc.errors.items():
                field_name = key.split(".")[0]
                target = field_name if field_name in self.fields else None
                for message in messages_:
                    self.add_error(target, f"{key}: {message}")
        return data


@admin.register(Schedule)
class ScheduleAdmin(OperateMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "task",
        "every",
        "enabled",
        "next_run_at",
        "last_run_at",
        "last_outcome",
    )
    list_filter = ("enabled",)
    form = ScheduleForm
    actions = ("enable", "disable", "run_now")
    readonly_fields = ("next_run_at", "last_run_at", "last_job", "last_outcome")

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: Any, change: bool
    ) -> None:
        fields = {
            name: form.cleaned_data[name]
            for name in schedule_services.FIELDS
            if name in form.cleaned_data
        }
        if change:
            saved = schedule_services.schedule_update(
                schedule=obj, actor=request.user, origin=Origin.ADMIN, **fields
            )
        else:
            saved = schedule_services.schedule_create(
                actor=request.user, origin=Origin.ADMIN, **fields
            )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        schedule_services.schedule_delete(
            schedule=obj, actor=request.user, origin=Origin.ADMIN
        )

    def _set(
        self, request: HttpRequest, queryset: QuerySet[Schedule], enabled: bool
    ) -> None:
        for schedule in queryset:
            schedule_services.schedule_set_enabled(
                schedule=schedule,
                enabled=enabled,
                actor=request.user,
                origin=Origin.ADMIN,
            )
        verb = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{verb} {queryset.count()} schedule(s).")

    @admin.action(description="Enable selected schedules", permissions=["operate"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set(request, queryset, True)

    @admin.action(description="Disable selected schedules", permissions=["operate"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set(request, queryset, False)

    @admin.action(description="Run selected schedules now", permissions=["operate"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            schedule_services.schedule_run_now(
                schedule=schedule, actor=request.user, origin=Origin.ADMIN
            )
        self.message_user(request, f"Submitted {queryset.count()} job(s).")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "queue",
        "threshold",
        "window_seconds",
        "min_attempts",
        "min_failing_jobs",
        "enabled",
    )
    list_filter = ("kind", "enabled")
    list_editable = (
        "threshold",
        "window_seconds",
        "min_attempts",
        "min_failing_jobs",
        "enabled",
    )


@admin.register(Alert)
class AlertAdmin(ReadOnly):
    list_display = ("opened_at", "rule", "subject", "summary", "resolved_at")
    list_filter = ("rule", "resolved_at")


admin.site.register(Attempt, ReadOnly)
admin.site.register(JobEvent, ReadOnly)
