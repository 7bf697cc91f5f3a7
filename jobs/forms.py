from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.forms import BoundField
from django.utils import timezone

from jobs import registry
from jobs.models import Priority
from jobs.services.validation import MAX_TERM_LENGTH, RETRY_OPTIONS, text_problem

#: The retry options a submission may override, as form fields.
RETRY_FIELDS = {f"retry_{name}": name for name in RETRY_OPTIONS}
_RETRY_LABELS = {
    "max_attempts": "Max attempts",
    "base": "Base delay (s)",
    "factor": "Factor",
    "cap": "Cap (s)",
    "jitter": "Jitter (0–1)",
}


def _select(choices: list[tuple[str, str]]) -> forms.Select:
    return forms.Select(choices=choices)


class TextField(forms.CharField):
    """A text field held to the front doors' one text rule
    (services.validation.text_problem): the same refusals, in the same words,
    as the API and the CLI give."""

    def __init__(self, *, max_length: int = MAX_TERM_LENGTH, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, **kwargs)
        self.rule_length = max_length

    def validate(self, value: Any) -> None:
        super().validate(value)
        problem = text_problem(value, max_length=self.rule_length) if value else None
        if problem:
            raise ValidationError(problem, code="text")


class SubmitForm(forms.Form):
    """Parses the console's submission form into job_submit's arguments.

    The fields only turn text into Python values (a number, a time, a list);
    job_submit checks them, the same checks the API and the CLI get, and its
    errors come back onto the fields through add_service_errors. So the choice
    fields are plain text fields with a select widget: an unknown task or queue
    is refused by the service, in the service's words.
    """

    task = forms.CharField()
    payload = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 8, "spellcheck": "false", "class": "mono"}
        ),
        initial="{}",
        required=False,
        help_text="A JSON object, checked against the task's schema.",
    )
    queue = forms.CharField(required=False)
    priority = forms.CharField(
        required=False,
        widget=_select([("", "Task default"), *Priority.choices]),
    )
    run_at = forms.DateTimeField(
        required=False,
        label="Run at",
        widget=forms.DateTimeInput(
            attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
        ),
    )
    delay = forms.FloatField(required=False, label="Delay (seconds)")
    depends_on = forms.CharField(
        required=False,
        label="Depends on",
        widget=forms.TextInput(attrs={"class": "mono", "spellcheck": "false"}),
        help_text="Job ids, separated by spaces or commas: runs after they finish.",
    )
    allow_failure = forms.BooleanField(
        required=False,
        label="Run even if a dependency fails",
    )
    idempotency_key = forms.CharField(
        required=False,
        label="Idempotency key",
        widget=forms.TextInput(attrs={"class": "mono", "spellcheck": "false"}),
        help_text="A second submission with the same key returns the first job.",
    )
    timeout = forms.IntegerField(
        required=False, label="Timeout (seconds)", help_text="Task default if empty."
    )
    retry_max_attempts = forms.IntegerField(required=False)
    retry_base = forms.FloatField(required=False)
    retry_factor = forms.FloatField(required=False)
    retry_cap = forms.FloatField(required=False)
    retry_jitter = forms.FloatField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = _select(
            [
                (t.name, f"{t.name} — {t.description}" if t.description else t.name)
                for t in registry.all_tasks()
            ]
        )
        self.fields["queue"].widget = _select(
            [("", "Task default")] + [(q, q) for q in settings.JOB_QUEUES]
        )
        # The zone is read per request: it is the operator's, not the import's.
        self.fields["run_at"].help_text = (
            f"Time zone: {timezone.get_current_timezone_name()}. "
            "A time in the past runs now."
        )
        for field_name, option in RETRY_FIELDS.items():
            self.fields[field_name].label = _RETRY_LABELS.get(option, option)

    @property
    def retry_fields(self) -> list[BoundField]:
        return [self[name] for name in RETRY_FIELDS]

    @property
    def retry_open(self) -> bool:
        """Show the overrides when one is given or refused."""
        return any(f.errors or f.value() not in (None, "") for f in self.retry_fields)

    def clean_run_at(self) -> datetime | None:
        """The time as an instant in UTC; a local time past the year 9999 in
        UTC (31 December, late, west of Greenwich) has none."""
        value = self.cleaned_data["run_at"]
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(
                "Enter a time before the year 9999 ends in UTC.", code="invalid"
            ) from None

    def clean_depends_on(self) -> list[str]:
        return [i for i in re.split(r"[\s,]+", self.cleaned_data["depends_on"]) if i]

    def submission(self) -> dict[str, Any]:
        """The cleaned form as job_submit's keyword arguments."""
        data = self.cleaned_data
        retry = {
            option: data[field_name]
            for field_name, option in RETRY_FIELDS.items()
            if data.get(field_name) is not None
        }
        return {
            "task": data["task"],
            "payload": data["payload"],
            "queue": data["queue"] or None,
            "priority": data["priority"] or None,
            "run_at": data["run_at"],
            "delay": data["delay"],
            "depends_on": data["depends_on"],
            "allow_failure": data["allow_failure"],
            "idempotency_key": data["idempotency_key"] or None,
            "timeout": data["timeout"],
            "retry": retry or None,
        }

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Put the service's errors ({"payload.text": [...]}) on their fields."""
        for key, messages in errors.items():
            field_name, _, detail = key.partition(".")
            for message in messages:
                target = self._error_field(field_name, message)
                self.add_error(target, f"{detail}: {message}" if detail else message)

    def _error_field(self, field_name: str, message: str) -> str | None:
        if field_name == "retry":
            # "max_attempts must be ..." belongs on that option's own field.
            option = message.split(" ", 1)[0]
            named = f"retry_{option}"
            return named if named in self.fields else None
        return field_name if field_name in self.fields else None
