"""`manage.py jobs ...`: every subcommand, its JSON, and its errors."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.backend import connect, queues
from jobs.models import JobRecord, OperatorAction, QueueState
from tests.conftest import final

pytestmark = pytest.mark.django_db(transaction=True)


def jobs(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue().strip()


def test_submit_prints_the_id_and_status_json_has_the_stable_keys(run_until):
    job_id = jobs(
        "submit",
        "demo.echo",
        "--payload",
        '{"text": "cli"}',
        "--priority",
        "high",
        "--queue",
        "mail",
        "--idempotency-key",
        "k1",
    )
    record = JobRecord.objects.get(pk=job_id)
    assert (record.origin, record.priority, record.queue) == ("cli", "high", "mail")
    assert (
        jobs(
            "submit",
            "demo.echo",
            "--payload",
            '{"text": "again"}',
            "--idempotency-key",
            "k1",
        )
        == job_id
    )
    run_until(final(record), queues=("mail",))
    data = json.loads(jobs("status", job_id, "--json"))
    for key in (
        "id",
        "task",
        "queue",
        "priority",
        "status",
        "attempts",
        "max_attempts",
        "worker_name",
        "worker_pid",
        "submitted_at",
        "started_at",
        "finished_at",
        "last_error",
    ):
        assert key in data
    assert data["status"] == "succeeded" and data["worker_pid"] is None
    assert data["worker_name"]
    assert "succeeded" in jobs("status", job_id)


def test_submit_with_delay_at_and_dependencies():
    soon = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    parent = jobs("submit", "demo.echo", "--payload", '{"text": "p"}', "--delay", "60")
    child = jobs(
        "submit", "demo.echo", "--payload", '{"text": "c"}', "--depends-on", parent
    )
    later = jobs(
        "submit",
        "demo.echo",
        "--payload",
        '{"text": "t"}',
        "--at",
        soon.isoformat(),
    )
    assert JobRecord.objects.get(pk=child).parents.get().pk == parent
    assert JobRecord.objects.get(pk=later).run_at == soon
    # Like a delay, a run-at time is at most a year away.
    with pytest.raises(CommandError, match="run_at: must be within one year"):
        jobs(
            "submit",
            "demo.echo",
            "--payload",
            '{"text": "t"}',
            "--at",
            "2099-01-01T00:00:00+00:00",
        )


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "no.task"],
        ["submit", "demo.echo", "--payload", "{bad"],
        ["submit", "demo.echo", "--payload", "{}"],
        ["submit", "demo.echo", "--payload", '{"text": "x"}', "--queue", "nope"],
        ["submit", "demo.echo", "--payload", '{"text": "x"}', "--at", "tomorrow-ish"],
        [
            "submit",
            "demo.echo",
            "--payload",
            '{"text": "x"}',
            "--depends-on",
            "missing",
        ],
        ["status", "missing"],
        ["retry", "missing"],
        ["retry"],
        ["cancel", "missing"],
        ["pause", "nope", "--reason", "x"],
        ["list", "--since", "not-a-date"],
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(args):
    with pytest.raises(CommandError):
        jobs(*args)
    assert JobRecord.objects.count() == 0
    assert OperatorAction.objects.count() == 0


def test_list_filters_and_json():
    jobs("submit", "demo.echo", "--payload", '{"text": "findme"}')
    jobs("submit", "demo.sleep", "--payload", '{"seconds": 1}')
    rows = json.loads(jobs("list", "--payload", "findme", "--json"))
    assert [r["task"] for r in rows] == ["demo.echo"]
    assert "demo.sleep" in jobs("list", "--task", "demo.sleep")
    JobRecord.objects.filter(task="demo.sleep").update(worker_name="host.7.aa")
    rows = json.loads(jobs("list", "--worker", "host.7.aa", "--json"))
    assert [(r["task"], r["worker_name"]) for r in rows] == [
        ("demo.sleep", "host.7.aa")
    ]
    assert jobs("list", "--worker", "host.7") == ""


def test_retry_dead_jobs_and_cancel_waiting_ones(run_until):
    from jobs import services

    record = services.job_submit(
        task="demo.fail", payload={"times": 1}, retry={"max_attempts": 1}
    )
    run_until(final(record))
    assert JobRecord.objects.get(pk=record.pk).status == "dead"
    assert jobs("retry", "--dead", "--task", "demo.fail", "--yes") == (
        "Found 1 dead job (status=dead task=demo.fail).\nRetried 1 job"
    )
    run_until(final(record))
    record.refresh_from_db()
    assert record.status == "succeeded" and record.attempts == 2
    waiting = jobs(
        "submit", "demo.echo", "--payload", '{"text": "w"}', "--delay", "600"
    )
    assert jobs("cancel", waiting) == "Canceled 1 job"
    assert JobRecord.objects.get(pk=waiting).status == "canceled"
    assert jobs("cancel", waiting) == "Canceled 0 jobs; 1 skipped: 1 already canceled"
    actions = list(OperatorAction.objects.values_list("action", "origin", "count"))
    assert ("retry", "cli", 1) in actions and ("cancel", "cli", 1) in actions


def test_pause_and_resume_are_recorded():
    assert jobs("pause", "mail", "--reason", "maintenance") == "Paused queue mail."
    state = QueueState.objects.get(name="mail")
    assert state.paused and state.reason == "maintenance"
    assert queues.paused_queues() == {"mail"}
    jobs("resume", "mail")
    assert not QueueState.objects.get(name="mail").paused
    assert queues.paused_queues() == set()
    assert list(
        OperatorAction.objects.order_by("at").values_list("action", flat=True)
    ) == ["pause", "resume"]


def test_reconcile_finds_and_repairs_a_lost_job(run_until):
    job_id = jobs("submit", "demo.echo", "--payload", '{"text": "x"}')
    record = JobRecord.objects.get(pk=job_id)
    run_until(final(record))
    assert jobs("reconcile") == "0 difference(s) repaired."
    waiting = jobs(
        "submit", "demo.echo", "--payload", '{"text": "y"}', "--delay", "600"
    )
    connect.connection().delete(f"rq:job:{waiting}")  # Redis lost it
    report = json.loads(jobs("reconcile", "--dry-run", "--json"))
    assert [(d["job_id"], d["repair"]) for d in report] == [(waiting, "re-enqueue")]
    jobs("reconcile")
    assert JobRecord.objects.get(pk=waiting).status == "pending"
    from jobs import services

    assert services.outbox_relay(grace_seconds=0) == 1
    assert jobs("reconcile", "--dry-run") == "0 difference(s) found."


def test_ping():
    assert jobs("ping") == "ok"


def test_purge_removes_only_old_finished_history(run_until):
    from datetime import timedelta

    from django.utils import timezone

    from jobs import services
    from jobs.models import Attempt

    old = services.job_submit(task="demo.echo", payload={"text": "old"})
    new = services.job_submit(task="demo.echo", payload={"text": "new"})
    waiting = services.job_submit(task="demo.echo", payload={"text": "w"}, delay=600)
    run_until(final(old, new))
    JobRecord.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - timedelta(days=40)
    )
    out = jobs("purge", "--older-than", "30")
    assert "1/1" in out and out.endswith("Purged 1 finished job(s).")
    assert set(JobRecord.objects.values_list("pk", flat=True)) == {new.pk, waiting.pk}
    assert not Attempt.objects.filter(job_id=old.pk).exists()
    assert OperatorAction.objects.get(action="purge").count == 1
    with pytest.raises(CommandError):
        jobs("purge", "--older-than", "-1")


def test_random_cli_arguments_never_crash():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    words = st.text(min_size=0, max_size=20)
    flags = st.lists(
        st.sampled_from(
            [
                "--payload",
                "--queue",
                "--priority",
                "--delay",
                "--at",
                "--depends-on",
                "--idempotency-key",
                "--allow-failure",
            ]
        )
        | words,
        max_size=6,
    )

    @settings(
        max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(task=st.sampled_from(["demo.echo", "demo.fail", "nope"]) | words, rest=flags)
    def run(task: str, rest: list[str]) -> None:
        # A clear error is fine (argparse usage errors exit 2); a crash is not.
        with contextlib.suppress(CommandError, SystemExit):
            jobs("submit", task, *rest)

    run()


def test_stats_table_and_json():
    from jobs import services

    services.queue_pause(name="mail", actor=None, reason="x")
    services.job_submit(task="demo.echo", payload={"text": "w"})
    data = json.loads(jobs("stats", "--json"))
    rows = {q["name"]: q for q in data["queues"]}
    assert rows["default"]["queued"] == 1 and rows["mail"]["paused"]
    assert data["redis_ok"] is True
    table = jobs("stats")
    assert "queue" in table and "default" in table and "paused" in table


def test_reconcile_requeues_a_job_a_dying_worker_popped(run_until):
    """A multi-lane worker that dies between BLPOP and registering the job
    leaves it "queued" in no queue: reconcile puts it back."""
    job_id = jobs("submit", "demo.echo", "--payload", '{"text": "stranded"}')
    client = connect.connection()
    assert client.lpop("rq:queue:default") == job_id.encode()  # the dying pop
    report = json.loads(jobs("reconcile", "--dry-run", "--json"))
    assert [(d["job_id"], d["redis"], d["repair"]) for d in report] == [
        (job_id, "queued, in no queue", "requeue")
    ]
    jobs("reconcile")
    assert client.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    run_until(final(JobRecord.objects.get(pk=job_id)))
    assert JobRecord.objects.get(pk=job_id).status == "succeeded"


def test_monitor_requeues_a_stranded_job_on_its_second_sweep():
    from jobs.processes.monitor import Monitor

    job_id = jobs("submit", "demo.echo", "--payload", '{"text": "stranded"}')
    client = connect.connection()
    client.lpop("rq:queue:default")
    monitor = Monitor()
    monitor.requeue_stranded()
    assert client.llen("rq:queue:default") == 0  # one sighting is not enough
    monitor.requeue_stranded()
    assert client.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    monitor.requeue_stranded()
    assert client.llen("rq:queue:default") == 1  # never twice


class Terminal(StringIO):
    """The operator's keyboard: the one edge these tests stand in for."""

    def isatty(self) -> bool:
        return True


def dead_jobs(count: int) -> list[str]:
    from tests.test_history_screens import make_dead

    return [make_dead(task="demo.fail").pk for _ in range(count)]


def test_retry_dead_without_yes_and_no_terminal_is_refused_naming_yes(monkeypatch):
    dead_jobs(3)
    monkeypatch.setattr("sys.stdin", StringIO("y\n"))  # piped: not an answer
    out = StringIO()
    with pytest.raises(CommandError, match="--yes") as refused:
        call_command("jobs", "retry", "--dead", stdout=out)
    assert "3 dead jobs" in str(refused.value)
    assert out.getvalue().startswith("Found 3 dead jobs (status=dead).")
    assert set(JobRecord.objects.values_list("status", flat=True)) == {"dead"}
    assert not OperatorAction.objects.exists()


@pytest.mark.parametrize(("answer", "retried"), [("y\n", 2), ("\n", 0)])
def test_retry_dead_asks_at_a_terminal_with_the_count(monkeypatch, answer, retried):
    dead_jobs(2)
    monkeypatch.setattr("sys.stdin", Terminal(answer))
    out = jobs("retry", "--dead")
    assert out.startswith("Found 2 dead jobs (status=dead).")
    still_dead = JobRecord.objects.filter(status="dead").count()
    assert still_dead == 2 - retried
    assert ("Retried 2 jobs" in out) == bool(retried)
    assert OperatorAction.objects.count() == (1 if retried else 0)
