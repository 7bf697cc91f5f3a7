from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from jobs import registry
from jobs.models import Priority
from jobs.services.validation import MAX_TERM_LENGTH, text_problem


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
    """Parses the console's submission form; job_submit does the validating."""

    task = forms.ChoiceField()
    payload = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 6, "spellcheck": "false", "class": "mono"}
        ),
        initial="{}",
        required=False,
        help_text="A JSON object, checked against the task's schema.",
    )
    queue = forms.ChoiceField(required=False)
    priority = forms.ChoiceField(
        choices=[("", "Task default"), *Priority.choices], required=False
    )
    delay = forms.FloatField(required=False, min_value=0, label="Delay (seconds)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        task_field = self.fields["task"]
        queue_field = self.fields["queue"]
        assert isinstance(task_field, forms.ChoiceField)
        assert isinstance(queue_field, forms.ChoiceField)
        task_field.choices = [
            (t.name, f"{t.name} — {t.description}" if t.description else t.name)
            for t in registry.all_tasks()
        ]
        queue_field.choices = [("", "Task default")] + [
            (q, q) for q in settings.JOB_QUEUES
        ]

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            field_name, _, detail = key.partition(".")
            target = field_name if field_name in self.fields else None
            for message in messages:
                self.add_error(target, f"{detail}: {message}" if detail else message)
