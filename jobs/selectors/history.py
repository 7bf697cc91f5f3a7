"""Reads: job lists, search, details and timelines. Nothing here writes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import localtime, make_aware

from jobs.models import Attempt, JobEvent, JobRecord
from jobs.selectors.figures import FAILED_OUTCOMES
from jobs.selectors.text_search import TextMatches
from jobs.services.validation import text_problem


@dataclass
class JobFilter:
    """Search over the durable history; built from a query string or CLI flags."""

    status: str = ""
    queue: str = ""
    task: str = ""
    payload: str = ""
    error: str = ""
    since: datetime | None = None
    until: datetime | None = None
    submitted_by: str = ""
    #: Exact failure group (JobRecord.error_fingerprint); NO_FINGERPRINT
    #: selects failures that have none (e.g. marked dead by reconcile).
    fingerprint: str = ""
    #: Jobs that finished (succeeded, went dead, were canceled) since then:
    #: with a status, the jobs behind the overview's figures over a window.
    finished_since: datetime | None = None
    #: Jobs with an attempt that failed (or lost its worker) since then.
    failed_since: datetime | None = None
    #: Jobs whose latest attempt ran on this worker (its full name, as RQ
    #: registers it): the Workers screen's links to what a worker runs.
    worker: str = ""
    problems: list[str] = field(default_factory=list)
    #: The fields of `problems`, in the same order.
    invalid: list[str] = field(default_factory=list)
    _text: TextMatches = field(default_factory=TextMatches, repr=False, compare=False)

    FIELDS = (
        "status",
        "queue",
        "task",
        "payload",
        "error",
        "since",
        "until",
        "submitted_by",
        "fingerprint",
        "finished_since",
        "failed_since",
        "worker",
    )
    #: Filters on a time, parsed with parse_when.
    TIMES = ("since", "until", "finished_since", "failed_since")
    NO_FINGERPRINT = "none"
    #: Text filters and the column each searches.
    TEXT = {"payload": "payload", "error": "last_error"}
    #: Filters served by an index on JobRecord: counting them stays cheap.
    INDEXED = (
        "status",
        "queue",
        "task",
        "since",
        "until",
        "submitted_by",
        "fingerprint",
        "finished_since",
        "failed_since",
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobFilter:
        """Unknown or malformed values are dropped and listed in `problems`
        (the field of each in `invalid`); every value is first held to the
        front doors' text rule, so no search term can make a query fail."""
        found = cls()
        for name in cls.FIELDS:
            raw = str(data.get(name) or "").strip()
            problem = text_problem(raw) if raw else None
            if problem:
                found.refuse(name, f"{name}: {problem}; ignored")
            elif name in cls.TIMES:
                found._set_when(name, raw)
            elif name == "status" and raw and raw not in JobRecord.Status.values:
                found.refuse(name, f"unknown status {raw!r} ignored")
            else:
                setattr(found, name, raw)
        return found

    def refuse(self, name: str, problem: str) -> None:
        self.problems.append(problem)
        self.invalid.append(name)

    def _set_when(self, name: str, raw: str) -> None:
        parsed = parse_when(raw) if raw else None
        if raw and parsed is None:
            self.refuse(name, f"{name}: {raw!r} is not a date; ignored")
        setattr(self, name, parsed)

    def apply(self, rows: QuerySet[JobRecord]) -> QuerySet[JobRecord]:
        if self.status:
            rows = rows.filter(status=self.status)
        if self.queue:
            rows = rows.filter(queue=self.queue)
        if self.task:
            rows = rows.filter(task=self.task)
        for name, column in self.TEXT.items():
            if getattr(self, name):
                rows = self._text.containing(rows, column, getattr(self, name))
        if self.since:
            rows = rows.filter(submitted_at__gte=self.since)
        if self.until:
            rows = rows.filter(submitted_at__lt=self.until)
        if self.submitted_by:
            rows = rows.filter(submitted_by__username=self.submitted_by)
        if self.fingerprint:
            rows = rows.filter(
                error_fingerprint=""
                if self.fingerprint == self.NO_FINGERPRINT
                else self.fingerprint
            )
        if self.finished_since:
            rows = rows.filter(finished_at__gte=self.finished_since)
        if self.failed_since:
            failed = Attempt.objects.filter(
                outcome__in=FAILED_OUTCOMES, finished_at__gte=self.failed_since
            )
            rows = rows.filter(pk__in=failed.values("job_id"))
        if self.worker:
            rows = rows.filter(worker_name=self.worker)
        return rows

    def is_one_common_text_term(self, limit: int) -> bool:
        """Is the whole filter one text term the index found more than `limit`
        matches of? Then a count can stop there without reading rows."""
        used = list(self.as_query())
        if len(used) != 1 or used[0] not in self.TEXT:
            return False
        name = used[0]
        return self._text.more_than(self.TEXT[name], getattr(self, name), limit)

    def as_query(self) -> dict[str, str]:
        query = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value:
                query[name] = (
                    value.isoformat() if isinstance(value, datetime) else value
                )
        return query

    def as_querystring(self) -> str:
        """For links that keep the filter (pagination, redirects)."""
        return urlencode(self.as_query())

    def as_text(self) -> str:
        """The filter as an operator reads it, e.g. in the operator log."""
        query = self.as_query()
        return " ".join(f"{k}={v}" for k, v in query.items()) or "(no filter)"

    @property
    def is_empty(self) -> bool:
        return not self.as_query()

    @property
    def is_indexed(self) -> bool:
        """True when an index narrows the rows and no text search scans them."""
        used = set(self.as_query())
        return bool(used) and used <= set(self.INDEXED)

    @property
    def since_text(self) -> str:
        return _local_text(self.since)

    @property
    def until_text(self) -> str:
        return _local_text(self.until)

    @property
    def finished_since_text(self) -> str:
        return _local_text(self.finished_since)

    @property
    def failed_since_text(self) -> str:
        return _local_text(self.failed_since)


def _local_text(value: datetime | None) -> str:
    """A time as the operator typed it: a day, or a day and a time."""
    if value is None:
        return ""
    try:
        local = localtime(value)
    except OverflowError:  # a time at the calendar's edge stays in UTC
        local = value
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")


#: A leap second (RFC 3339 allows :60), which Python's datetime has not.
_LEAP_SECOND = re.compile(r"(T\d{2}:\d{2}:)60")


def parse_when(raw: str, *, zoned: bool = False) -> datetime | None:
    """A date or time as ISO 8601 writes it, and everything RFC 3339 (the
    API document's `date-time`) allows: a lower-case t or z, a leap second
    (read as :59). Without a zone it is the server's, unless `zoned` asks
    for a time with its zone (RFC 3339's date-time); a time at the
    calendar's edge, which no query could move to UTC, is held at the edge."""
    text = _LEAP_SECOND.sub(r"\g<1>59", raw.upper())
    try:
        parsed = parse_datetime(text)
        if parsed is None and not zoned:
            day = parse_date(text)
            parsed = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        return None
    if parsed is None or (zoned and parsed.tzinfo is None):
        return None
    if parsed.tzinfo is None:
        parsed = make_aware(parsed)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if parsed.year == datetime.min.year else datetime.max
        return edge.replace(tzinfo=UTC)
    return parsed


def job_search(job_filter: JobFilter) -> QuerySet[JobRecord]:
    return job_filter.apply(JobRecord.objects.all()).order_by("-submitted_at")


#: Past this many matches an unindexed filter is counted as "more than".
COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class MatchCount:
    """How many jobs a filter matches: exact, or a floor ("more than")."""

    value: int
    exact: bool = True

    @property
    def label(self) -> str:
        return f"{self.value:,}" if self.exact else f"more than {self.value:,}"

    def __bool__(self) -> bool:
        return self.value > 0


def job_count(job_filter: JobFilter, *, limit: int = COUNT_LIMIT) -> MatchCount:
    """Count matches without scanning a million rows for a text search: count
    at most `limit` + 1 of them, and count exactly only when an index serves
    the filter (or the matches are few)."""
    rows = job_filter.apply(JobRecord.objects.all()).order_by()
    if job_filter.is_one_common_text_term(limit):
        return MatchCount(limit, exact=False)
    capped = rows.values_list("pk")[: limit + 1].count()
    if capped <= limit:
        return MatchCount(capped)
    if job_filter.is_indexed:
        return MatchCount(rows.count())
    return MatchCount(limit, exact=False)


@dataclass
class JobPage:
    """One page of a search; pages past the count are found by probing one row
    further, so an inexact count still pages."""

    rows: list[JobRecord]
    number: int
    has_next: bool
    num_pages: int | None

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def job_page(
    job_filter: JobFilter, number: str | None, *, count: MatchCount, per_page: int
) -> JobPage:
    num_pages = max(1, -(-count.value // per_page)) if count.exact else None
    try:
        page = max(1, int(number or 1))
    except ValueError:
        page = 1
    if num_pages is not None:
        page = min(page, num_pages)
    start = (page - 1) * per_page
    rows = list(with_rounds(job_search(job_filter))[start : start + per_page + 1])
    return JobPage(rows[:per_page], page, len(rows) > per_page, num_pages)


@dataclass(frozen=True)
class Round:
    """Where a job is in its attempts. Each retry by hand starts a new round
    of `max_attempts` while attempt numbers keep counting, so "attempts of
    max_attempts" read 76 of 4 for a job retried by hand 18 times."""

    attempt: int
    of: int
    manual_retries: int
    total: int

    @property
    def text(self) -> str:
        text = f"{self.attempt} of {self.of}"
        n = self.manual_retries
        if n:
            text += f", {n} manual retr{'y' if n == 1 else 'ies'}"
        return text


def with_rounds(rows: QuerySet[JobRecord]) -> QuerySet[JobRecord]:
    """Annotate each job with its manual retries and the attempt number the
    last one started from (the last attempt begun before it)."""
    retried = JobEvent.objects.filter(job=OuterRef("pk"), kind=JobEvent.Kind.RETRIED)
    count = retried.order_by().values("job").annotate(n=Count("*")).values("n")
    last_retry = retried.order_by("-at", "-id").values("at")[:1]
    before = (
        Attempt.objects.filter(job=OuterRef("pk"), started_at__lt=OuterRef("retry_at"))
        .order_by("-number")
        .values("number")[:1]
    )
    return rows.annotate(
        manual_retries=Coalesce(Subquery(count, output_field=IntegerField()), 0),
        retry_at=Subquery(last_retry),
    ).annotate(round_offset=Coalesce(Subquery(before), 0))


def job_round(record: JobRecord) -> Round:
    """The record's round; without with_rounds' annotations, attempts as a
    single round."""
    retries = getattr(record, "manual_retries", 0) or 0
    offset = min(getattr(record, "round_offset", 0) or 0, record.attempts)
    return Round(
        record.attempts - offset, record.max_attempts, retries, record.attempts
    )


def job_ids(job_filter: JobFilter, *, limit: int) -> Iterator[str]:
    """Ids of the jobs a filter matches now, newest first, at most `limit`.

    Read in one query served by the filter's index (a keyset walk in id order
    was many times slower) and held as a snapshot: a bulk action then touches
    exactly the jobs that matched when it started, however it changes them.
    """
    return iter(list(job_search(job_filter).values_list("pk", flat=True)[:limit]))


def job_json(record: JobRecord) -> dict[str, Any]:
    """The stable JSON shape of a job (CLI --json and the API)."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": record.pk,
        "task": record.task,
        "queue": record.queue,
        "priority": record.priority,
        "status": record.status,
        "attempts": record.attempts,
        "max_attempts": record.max_attempts,
        "worker_name": record.worker_name or None,
        "worker_pid": record.worker_pid
        if record.status == JobRecord.Status.STARTED
        else None,
        "origin": record.origin,
        "submitted_by": record.submitted_by.get_username()
        if record.submitted_by_id and record.submitted_by
        else None,
        "submitted_at": when(record.submitted_at),
        "run_at": when(record.run_at),
        "enqueued_at": when(record.enqueued_at),
        "started_at": when(record.started_at),
        "finished_at": when(record.finished_at),
        "next_attempt_at": when(record.next_attempt_at),
        "payload": record.payload,
        "result": record.result,
        "error_type": record.error_type or None,
        "last_error": record.last_error or None,
        "idempotency_key": record.idempotency_key,
    }


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    label: str
    message: str
    actor: str


def timeline(record: JobRecord) -> list[TimelineEntry]:
    """Submission (from the record itself) then every recorded event."""
    who = record.submitted_by.get_username() if record.submitted_by else ""
    entries = [
        TimelineEntry(
            record.submitted_at,
            "submitted",
            "Submitted",
            f"from {record.get_origin_display().lower()}",
            who,
        )
    ]
    for event in JobEvent.objects.filter(job=record).select_related("actor"):
        entries.append(
            TimelineEntry(
                event.at,
                event.kind,
                event.get_kind_display(),
                event.message,
                event.actor.get_username() if event.actor else "",
            )
        )
    return entries


def attempts(record: JobRecord) -> QuerySet[Attempt]:
    return Attempt.objects.filter(job=record).order_by("number")
