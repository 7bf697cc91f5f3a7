"""Checking a submission: a request becomes a valid job record (status
`pending`, not yet written) or an error that names the offending field.

Every front door submits through jobs.services.submit, so every door gets the
same checks and the same messages. Nothing here writes.
"""

from __future__ import annotations

import copy
import json
import math
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.utils import timezone
from pydantic import ValidationError as SchemaError

from jobs import registry
from jobs.models import JobRecord, Priority
from jobs.services import transitions

MAX_PAYLOAD_BYTES = 1_000_000
MAX_DELAY_SECONDS = 366 * 24 * 3600
MAX_TIMEOUT_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 200
#: The longest name or search term a front door takes (the widest such
#: column holds 200), and the longest free-text reason (its column: 500).
MAX_TERM_LENGTH = 200
MAX_REASON_LENGTH = 500
#: Line breaks and tabs are text (a reason, a traceback searched for); every
#: other control character is a mistake or an attack.
_TEXT_CONTROLS = frozenset("\t\n\r")
_PRIORITIES = frozenset(Priority.values)


class InvalidInput(ValueError):
    """Bad input, with the offending field(s): {"payload.text": ["Field required"]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))

    @classmethod
    def one(cls, field_name: str, message: str) -> InvalidInput:
        return cls({field_name: [message]})


InvalidSubmission = InvalidInput


class UnknownReference(InvalidInput):
    """Well-formed input that names something that does not exist (a job to
    depend on): the API answers 404, as for a path naming no job."""


@dataclass
class SubmitRequest:
    task: str
    payload: Any = None
    queue: str | None = None
    priority: str | None = None
    delay: float | None = None
    run_at: datetime | None = None
    depends_on: Sequence[str] = field(default_factory=tuple)
    allow_failure: bool = False
    idempotency_key: str | None = None
    retry: dict[str, Any] | None = None
    #: Seconds a run may take before it is stopped (default: the task's).
    timeout: int | None = None


def new_job_id() -> str:
    """32 random hex digits (as RQ's own ids). Random, not time-ordered: the
    console shows ids by their first characters, which must tell jobs apart
    even within one bulk submission."""
    return uuid.uuid4().hex


def parse_payload(raw: Any) -> dict[str, Any]:
    """A payload given as JSON text or as a dict: a dict, or InvalidInput."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str | bytes):
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise InvalidSubmission.one("payload", "larger than 1 MB")
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InvalidSubmission.one("payload", f"not valid JSON ({exc})") from None
        except RecursionError:
            raise InvalidSubmission.one("payload", "nested too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidSubmission.one("payload", "must be a JSON object")
    return raw


def stored_payload(task: registry.TaskDef, payload: dict[str, Any]) -> Any:
    """The payload as its schema leaves it, which is what is stored, checked
    to be storable: finite numbers, no NUL character (PostgreSQL's JSON cannot
    hold one), at most 1 MB.

    Validated as JSON, strictly: the payload is held to exactly the JSON
    Schema the API document publishes for its task ("5" is no integer)."""
    try:
        given = json.dumps(payload)
        if len(given) > MAX_PAYLOAD_BYTES:
            raise InvalidSubmission.one("payload", "larger than 1 MB")
        stored = _validated(task, payload, given).model_dump(mode="json")
        text = json.dumps(stored, allow_nan=False)
    except SchemaError as exc:
        raise InvalidSubmission(_schema_errors(exc)) from None
    except RecursionError:
        raise InvalidSubmission.one("payload", "nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise InvalidSubmission.one(
            "payload", f"not storable as JSON ({exc})"
        ) from None
    if len(text) > MAX_PAYLOAD_BYTES:
        raise InvalidSubmission.one("payload", "larger than 1 MB")
    problem = _unstorable(stored) if "\\u" in text else None
    if problem:
        raise InvalidSubmission.one("payload", problem)
    return stored


def _validated(task: registry.TaskDef, payload: Any, given: str) -> Any:
    try:
        return _strictly(task, payload, given)
    except SchemaError as exc:
        whole = _whole_numbers_as_integers(payload, exc)
        if whole is None:
            raise
    return _strictly(task, whole, json.dumps(whole))


def _strictly(task: registry.TaskDef, payload: Any, given: str) -> Any:
    try:
        return task.schema.model_validate_json(given, strict=True)
    except SchemaError as exc:
        if all(error["type"] != "json_invalid" for error in exc.errors()):
            raise
    # Text JSON cannot carry (a lone surrogate): the same check on the
    # objects, which names the field.
    return task.schema.model_validate(payload, strict=True)


def _whole_numbers_as_integers(payload: Any, exc: SchemaError) -> Any:
    """A copy of `payload` with each whole number written with a fraction
    (4096.0) that strict validation refused as an integer made one, or None
    if there is none. JSON Schema, which the API document publishes, counts
    4096.0 as an integer; pydantic's strict mode does not."""
    fixes = [
        (error["loc"], int(error["input"]))
        for error in exc.errors()
        if error["type"] == "int_type"
        and isinstance(error["input"], float)
        and error["input"].is_integer()
        and error["loc"]
    ]
    if not fixes:
        return None
    whole = copy.deepcopy(payload)
    for loc, number in fixes:
        place = whole
        try:
            for step in loc[:-1]:
                place = place[step]
            if isinstance(place[loc[-1]], float):
                place[loc[-1]] = number
        except (KeyError, IndexError, TypeError):
            return None
    return whole


def _unstorable_text(text: str) -> str | None:
    """Why the database cannot hold `text` (PostgreSQL takes no NUL character
    and no lone surrogate, in text or JSON; SQLite's FTS5 cannot search a
    NUL), or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def _unstorable(value: Any) -> str | None:
    """Why text in `value` cannot be stored, or None. A loop, not recursion:
    a payload may be nested a thousand deep."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = _unstorable_text(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def text_problem(
    value: str, *, max_length: int = MAX_TERM_LENGTH, identifier: bool = False
) -> str | None:
    """Why `value` is refused as text from outside, or None.

    The one rule every front door applies to every text it is given (query
    strings, JSON fields, form fields, admin search, CLI arguments), so that
    no text reaches a query or a row that the database would answer with an
    error: no NUL, no lone surrogate, no control character but line breaks
    and tabs, and a length bound. An identifier (a job id, an idempotency
    key) has no control character at all. jobs.openapi states the same rule
    as a pattern."""
    if len(value) > max_length:
        return f"at most {max_length} characters"
    problem = _unstorable_text(value)
    if problem:
        return problem
    allowed = frozenset() if identifier else _TEXT_CONTROLS
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in allowed:
            if identifier:
                return "printable characters only (no control characters)"
            return f"contains a control character ({ascii(char)[1:-1]})"
    return None


def check_text(
    field_name: str,
    value: str,
    *,
    max_length: int = MAX_TERM_LENGTH,
    identifier: bool = False,
) -> str:
    """`value`, or InvalidInput naming `field_name` (see text_problem)."""
    problem = text_problem(value, max_length=max_length, identifier=identifier)
    if problem:
        raise InvalidInput.one(field_name, problem)
    return value


#: What a submission may change in its task's retry policy, and the bounds:
#: (whole number?, lowest, highest).
RETRY_OPTIONS: dict[str, tuple[bool, float, float]] = {
    "max_attempts": (True, 1, 1000),
    "base": (False, 0, 86_400),
    "factor": (False, 1, 10),
    "cap": (False, 0, 30 * 86_400),
    "jitter": (False, 0, 1),
}


def as_whole(value: Any) -> Any:
    """JSON has one number type, and JSON Schema's "integer" admits 30.0: a
    float with no fraction is that whole number; anything else is unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _retry_policy(task: registry.TaskDef, override: Any) -> registry.RetryPolicy:
    if override is None or override == {}:
        return task.retry
    if not isinstance(override, dict):
        raise InvalidSubmission.one("retry", "must be an object")
    override = dict(override)
    for name, value in list(override.items()):
        if name not in RETRY_OPTIONS:
            raise InvalidSubmission.one(
                "retry",
                f"unknown option {str(name)[:40]!r} "
                f"(known: {', '.join(RETRY_OPTIONS)})",
            )
        whole, low, high = RETRY_OPTIONS[name]
        if whole:
            value = override[name] = as_whole(value)
        kinds = int if whole else int | float
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            kind = "a whole number" if whole else "a number"
            raise InvalidSubmission.one(
                "retry", f"{name} must be {kind} from {low:g} to {high:g}"
            )
    return task.retry.merged(override)


def _dependencies(given: Any) -> list[str]:
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise InvalidSubmission.one("depends_on", "must be a list of job ids")
    for job_id in given:
        if not (isinstance(job_id, str) and 0 < len(job_id) <= 64):
            raise InvalidSubmission.one(
                "depends_on", f"not a job id: {str(job_id)[:70]!r}"
            )
        if text_problem(job_id, max_length=64, identifier=True):
            raise InvalidSubmission.one(
                "depends_on", f"not a job id: {job_id!r} (control characters)"
            )
    return list(given)


def check_idempotency_key(given: Any) -> str | None:
    """The key, checked before it is looked up: a NUL character or a lone
    surrogate would make the database refuse the very query."""
    if given is None or given == "":
        return None
    if not isinstance(given, str):
        raise InvalidSubmission.one("idempotency_key", "must be a string")
    return check_text(
        "idempotency_key", given, max_length=MAX_KEY_LENGTH, identifier=True
    )


def _schema_errors(exc: SchemaError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        errors.setdefault(f"payload.{where}" if where else "payload", []).append(
            error["msg"]
        )
    return errors


def _when(request: SubmitRequest, now: datetime) -> datetime | None:
    if request.delay is not None and request.run_at is not None:
        raise InvalidSubmission.one("delay", "give a delay or a run-at time, not both")
    if request.delay is not None:
        try:
            delay = float(request.delay)
        except (TypeError, ValueError):
            raise InvalidSubmission.one(
                "delay", "must be a number of seconds"
            ) from None
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            raise InvalidSubmission.one("delay", "must be between 0 and one year")
        return now + timedelta(seconds=delay) if delay > 0 else None
    if request.run_at is not None:
        if not isinstance(request.run_at, datetime):
            raise InvalidSubmission.one("run_at", "must be a date and time")
        run_at = request.run_at
        if timezone.is_naive(run_at):
            raise InvalidSubmission.one("run_at", "needs a time zone (e.g. +00:00)")
        if run_at - now > timedelta(seconds=MAX_DELAY_SECONDS):
            # The same bound as a delay: a job parked for decades is a typo.
            raise InvalidSubmission.one("run_at", "must be within one year from now")
        return run_at if run_at > now else None
    return None


def _timeout(given: Any, default: int) -> int:
    if given is None:
        return default
    given = as_whole(given)
    if isinstance(given, bool) or not isinstance(given, int):
        raise InvalidSubmission.one("timeout", "must be a whole number of seconds")
    if not 1 <= given <= MAX_TIMEOUT_SECONDS:
        raise InvalidSubmission.one(
            "timeout", f"must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"
        )
    return given


@cache
def _defaults() -> list[tuple[str, Any, bool]]:
    """Each concrete field: its attribute, its default, and whether that is a
    factory to call for every record (a JSON field's dict) or a value."""
    return [
        (f.attname, f.default, True)
        if f.has_default() and callable(f.default)
        else (f.attname, f.get_default(), False)
        for f in JobRecord._meta.concrete_fields
    ]


def _new_record(**values: Any) -> JobRecord:
    """JobRecord(**values) through Django's positional path, which skips the
    per-field keyword handling: half the time, and a bulk builds 10,000."""
    build: Any = JobRecord  # django-stubs types keyword construction only
    return build(
        *[
            values[name] if name in values else default() if call else default
            for name, default, call in _defaults()
        ]
    )


@dataclass
class Valid:
    record: JobRecord
    depends_on: list[str]
    allow_failure: bool


def validate(request: SubmitRequest, now: datetime) -> Valid:
    try:
        task = registry.get(str(request.task))
    except registry.UnknownTask as exc:
        raise InvalidSubmission.one("task", str(exc)) from None
    payload = stored_payload(task, parse_payload(request.payload))
    queue = request.queue or task.queue
    if queue not in settings.JOB_QUEUES:
        raise InvalidSubmission.one(
            "queue",
            f"unknown queue {str(queue)[:100]!r} "
            f"(known: {', '.join(settings.JOB_QUEUES)})",
        )
    priority = request.priority or task.priority
    if priority not in _PRIORITIES:
        raise InvalidSubmission.one(
            "priority", f"unknown priority {str(priority)[:40]!r} (high, normal or low)"
        )
    policy = _retry_policy(task, request.retry)
    key = check_idempotency_key(request.idempotency_key)
    record = _new_record(
        id=new_job_id(),
        task=task.name,
        queue=queue,
        priority=priority,
        payload=payload,
        status=transitions.INITIAL,
        max_attempts=policy.max_attempts,
        retry_policy=policy.as_dict(),
        timeout=_timeout(request.timeout, task.timeout),
        submitted_at=now,
        run_at=_when(request, now),
        idempotency_key=key,
    )
    return Valid(record, _dependencies(request.depends_on), request.allow_failure)
