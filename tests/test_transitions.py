"""Job status has one owner: services.transitions. Every move it allows or
refuses, what a refused move leaves, and the recorder's late events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from jobs import events, services
from jobs.models import JobRecord
from jobs.processes import recorder, recorder_handlers
from jobs.selectors.job_page import job_page
from jobs.services import transitions

pytestmark = pytest.mark.django_db

S = JobRecord.Status
#: The lifecycle, written out as the spec: every move a job may make. Any
#: pair not listed here (and not a status to itself) must be refused.
EXPECTED = {
    "pending": "queued scheduled deferred started succeeded retrying dead canceled",
    "queued": "started succeeded retrying dead canceled pending",
    "scheduled": "queued started succeeded retrying dead canceled pending",
    "deferred": "queued started succeeded retrying dead canceled pending",
    "retrying": "queued started succeeded retrying dead canceled pending",
    "started": "succeeded retrying dead pending",
    "succeeded": "",
    "dead": "pending",
    "canceled": "pending",
}
PAIRS = list(itertools.product(S.values, S.values))
MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _record(status: str, pk: str = "job-1") -> JobRecord:
    return JobRecord.objects.create(
        id=pk,
        task="demo.echo",
        queue="default",
        status=status,
        submitted_at=timezone.now(),
        last_error="as it was",
    )


def _row(pk: str) -> Any:
    return JobRecord.objects.filter(pk=pk).values().get()


def test_the_graph_is_the_spec():
    for current, new in PAIRS:
        expected = current == new or new in EXPECTED[current].split()
        assert transitions.allowed(current, new) is expected, (current, new)


@pytest.mark.parametrize(("current", "new"), PAIRS)
def test_move_writes_exactly_the_allowed_moves(current, new):
    _record(current)
    before = _row("job-1")
    moved = transitions.move(["job-1"], new, finished_at=MOMENT)
    after = _row("job-1")
    if transitions.allowed(current, new):
        assert moved == {"job-1"}
        assert (after["status"], after["finished_at"]) == (new, MOMENT)
    else:
        assert moved == set()
        assert after == before  # a refused move leaves the record untouched


def test_move_applies_only_to_the_statuses_an_action_names():
    _record(S.DEAD, "dead")
    _record(S.SUCCEEDED, "done")
    _record(S.QUEUED, "waiting")
    moved = transitions.move(
        ["dead", "done", "waiting", "missing"],
        S.PENDING,
        among=transitions.RETRYABLE,
    )
    assert moved == {"dead"}
    assert _row("waiting")["status"] == S.QUEUED  # allowed, but not a retry


def test_a_repair_moves_anything_but_a_success():
    _record(S.DEAD, "dead")
    _record(S.SUCCEEDED, "done")
    moved = transitions.move(["dead", "done"], S.STARTED, repair=True)
    assert moved == {"dead"}
    assert _row("done")["status"] == S.SUCCEEDED


def test_submit_marks_only_a_job_still_in_the_outbox():
    """The recorder may have moved a new job on before submit marks it
    enqueued: submit's mark must not drag it back."""
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    JobRecord.objects.filter(pk=job.pk).update(status=S.SUCCEEDED)
    assert transitions.move([job.pk], S.QUEUED, among={transitions.INITIAL}) == set()
    assert _row(job.pk)["status"] == S.SUCCEEDED


def _event(kind: events.Kind, job_id: str, n: int, **data: object) -> events.Event:
    return events.Event(f"{n}-0", kind, job_id, 1_700_000_000.0 + n, dict(data))


def test_a_late_started_event_does_not_undo_a_success():
    _record(S.PENDING)
    recorder.apply(
        [
            _event(events.Kind.ENQUEUED, "job-1", 1),
            _event(events.Kind.STARTED, "job-1", 2, attempt=1, worker="w1"),
            _event(events.Kind.SUCCEEDED, "job-1", 3, attempt=1, result="ok"),
        ]
    )
    done = _row("job-1")
    assert done["status"] == S.SUCCEEDED
    recorder.apply(
        [_event(events.Kind.STARTED, "job-1", 4, attempt=2, worker="w2", pid=7)]
    )
    assert _row("job-1") == done


def test_a_late_failure_does_not_move_a_canceled_job():
    _record(S.CANCELED)
    before = _row("job-1")
    recorder.apply(
        [
            _event(
                events.Kind.FAILED,
                "job-1",
                1,
                attempt=1,
                exc_type="KeyError",
                message="boom",
                retry_at=1_700_000_100.0,
            )
        ]
    )
    assert _row("job-1") == before


def test_the_recorder_does_not_overwrite_a_move_made_while_it_worked():
    """The recorder read the record as queued; an operator canceled it before
    the batch was written: the batch's "started" is refused, the cancel
    stays."""
    record = _record(S.QUEUED)
    assert transitions.step(record, S.STARTED)
    assert transitions.move(["job-1"], S.CANCELED) == {"job-1"}
    transitions.save_moved([record], ["status", "last_error"])
    assert _row("job-1")["status"] == S.CANCELED


def test_a_refused_step_leaves_the_record_in_memory_untouched():
    record = JobRecord(id="x", status=S.SUCCEEDED)
    assert transitions.step(record, S.STARTED) is False
    assert record.status == S.SUCCEEDED


def test_the_recorder_handles_every_event_kind_and_no_other():
    assert set(recorder_handlers.HANDLERS) == set(events.Kind)
    assert all(isinstance(kind, events.Kind) for kind in recorder_handlers.HANDLERS)


def test_stream_entries_carry_the_kinds_value():
    entry = events.fields(events.Kind.REFUSED, "job-1", at=5.0, reason="r")
    parsed = events.parse("1-0", entry)
    assert (parsed.kind, parsed.kind in set(events.Kind)) == ("refused", True)


@pytest.mark.parametrize("status", S.values)
def test_the_job_page_offers_exactly_what_the_services_do(status):
    """The buttons come from the same sets the services check: a button is
    shown for a status exactly when the action does something to it."""
    _record(status)
    page = job_page("job-1")
    assert page is not None
    shown = {
        "retry": page.actions.retry,
        "cancel": page.actions.cancel,
        "delete": page.actions.delete,
    }
    for action, offered in shown.items():
        assert offered is (status in services.JOB_ACTIONS[action].applies_to)
    # Retry, the one that needs no Redis: done exactly when offered.
    result = services.job_act(action="retry", record=JobRecord(pk="job-1"), actor=None)
    assert bool(result.done) is shown["retry"]
