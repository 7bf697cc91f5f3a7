"""`make chaos` / `make chaos-quick`: failures with real processes, each
scenario printing its figures and PASS or FAIL, bounded in time, loopback only.

    python -m bench.chaos [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import environment

Check = tuple[str, bool]


@dataclass
class Outcome:
    name: str
    figures: dict[str, object] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.checks)


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _history_checks(outcome: Outcome, ids: list[str]) -> None:
    from jobs.models import Attempt, JobRecord
    from jobs.services.reconcile import reconcile

    statuses = Counter(
        JobRecord.objects.filter(pk__in=ids).values_list("status", flat=True)
    )
    successes = Counter(
        Attempt.objects.filter(job_id__in=ids, outcome="succeeded").values_list(
            "job_id", flat=True
        )
    )
    differences = reconcile(repair=False)
    outcome.figures.update(
        {"jobs": len(ids), "statuses": dict(statuses), "differences": len(differences)}
    )
    outcome.checks += [
        ("every job recorded", sum(statuses.values()) == len(ids)),
        ("no job succeeded twice", all(n == 1 for n in successes.values())),
        ("database and Redis agree", not differences),
    ]


def kill_rounds(directory: Path, quick: bool) -> Outcome:
    """SIGKILL a random busy worker again and again while 3 drain the queue."""
    from bench.background import monitor
    from bench.procs import Fleet, console_worker
    from jobs import live, services
    from jobs.models import JobRecord

    jobs, rounds = (300, 5) if quick else (2000, 50)
    outcome = Outcome(f"SIGKILL {rounds} busy workers while 3 drain {jobs} jobs")
    failures: list[str] = []
    with Fleet(directory) as fleet, monitor(failures):
        for n in range(3):
            fleet.start(f"w{n}", console_worker())
        ids = [
            r.pk
            for r in services.job_submit_many(
                requests=[
                    services.SubmitRequest(task="demo.sleep", payload={"seconds": 0.05})
                    for _ in range(jobs)
                ]
            )
        ]
        killed = 0
        for n in range(rounds):
            time.sleep(0.5)
            busy = [
                w.pid
                for w in live.live_workers()
                if w.state == "busy" and w.pid in fleet.children
            ]
            if busy:
                fleet.kill(random.choice(busy))
                killed += 1
                fleet.start(f"r{n}", console_worker())
        done = _wait(
            lambda: (
                JobRecord.objects.filter(pk__in=ids, status="succeeded").count() == jobs
            ),
            240,
        )
    outcome.figures["workers killed"] = killed
    outcome.checks.append(("all jobs succeeded (lost 0)", done))
    _history_checks(outcome, ids)
    return outcome


def redis_outage(directory: Path, server: object, quick: bool) -> Outcome:
    """Redis down under load: submissions accepted, all run afterwards."""
    from bench.background import monitor
    from bench.procs import Fleet, console_worker
    from jobs import services
    from jobs.models import Attempt, JobRecord

    down = 5.0 if quick else 20.0
    outcome = Outcome(f"Redis down {down:.0f} s under load")
    failures: list[str] = []
    ids: list[str] = []
    stop = threading.Event()

    def submit_forever() -> None:
        from django.db import connections

        while not stop.is_set():
            ids.append(services.job_submit(task="demo.echo", payload={"text": "x"}).pk)
            time.sleep(0.05)
        connections.close_all()

    with Fleet(directory) as fleet, monitor(failures):
        for n in range(2):
            fleet.start(f"w{n}", console_worker())
        submitter = threading.Thread(target=submit_forever, daemon=True)
        submitter.start()
        time.sleep(2)
        server.stop()  # type: ignore[attr-defined]
        time.sleep(down)
        server.start()  # type: ignore[attr-defined]
        back = time.monotonic()
        probe = services.job_submit(task="demo.echo", payload={"text": "probe"})
        resumed = _wait(lambda: Attempt.objects.filter(job_id=probe.pk).exists(), 60)
        took = time.monotonic() - back
        time.sleep(2)
        stop.set()
        submitter.join(timeout=30)
        ids.append(probe.pk)
        done = _wait(
            lambda: (
                JobRecord.objects.filter(pk__in=ids, status="succeeded").count()
                == len(ids)
            ),
            120,
        )
    outcome.figures["submitted"] = len(ids)
    outcome.figures["first job running after Redis returned (s)"] = round(took, 2)
    outcome.checks += [
        ("workers work again within 5 s", resumed and took < 5),
        ("every accepted submission ran", done),
    ]
    _history_checks(outcome, ids)
    return outcome


def random_failures(directory: Path, quick: bool) -> Outcome:
    """20 % of attempts fail at random, 4 attempts allowed."""
    from bench.background import monitor
    from bench.procs import Fleet, console_worker
    from jobs import services
    from jobs.models import Attempt, JobRecord

    jobs = 500 if quick else 10_000
    outcome = Outcome(f"{jobs} jobs, 20 % of attempts failing")
    failures: list[str] = []
    with Fleet(directory) as fleet, monitor(failures):
        for n in range(3):
            fleet.start(f"w{n}", console_worker())
        ids = [
            r.pk
            for r in services.job_submit_many(
                requests=[
                    services.SubmitRequest(task="demo.flaky", payload={"rate": 0.2})
                    for _ in range(jobs)
                ]
            )
        ]
        finished = _wait(
            lambda: (
                JobRecord.objects.filter(
                    pk__in=ids, status__in=["succeeded", "dead"]
                ).count()
                == jobs
            ),
            600 if not quick else 240,
        )
        time.sleep(1)
    counted = Counter(
        Attempt.objects.filter(job_id__in=ids).values_list("job_id", flat=True)
    )
    mismatched = sum(
        1
        for r in JobRecord.objects.filter(pk__in=ids)
        if r.attempts != counted.get(r.pk, 0)
    )
    outcome.figures["attempt counts that disagree"] = mismatched
    outcome.checks += [
        ("every job ended succeeded or dead", finished),
        ("attempt counts match the records", mismatched == 0),
    ]
    _history_checks(outcome, ids)
    return outcome


def report(outcomes: list[Outcome], quick: bool) -> str:
    lines = [
        "# Resilience",
        "",
        f"Written by `make chaos{'-quick' if quick else ''}`"
        f" at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.",
        "",
    ]
    for o in outcomes:
        lines += [f"## {o.name}: {'PASS' if o.passed else 'FAIL'}", ""]
        lines += [f"- {k}: {v}" for k, v in o.figures.items()]
        lines += [f"- check: {name}: {'yes' if ok else 'NO'}" for name, ok in o.checks]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    directory = Path(tempfile.mkdtemp(prefix="chaos-"))
    server = environment.start_server(directory)
    try:
        environment.setup_django(directory, server.url)
        environment.log_to_file(directory / "chaos.log")
        from bench.reset import reset

        outcomes = []
        for scenario in (
            lambda: kill_rounds(directory, quick),
            lambda: redis_outage(directory, server, quick),
            lambda: random_failures(directory, quick),
        ):
            reset()
            outcome = scenario()
            outcomes.append(outcome)
            print(
                f"{'PASS' if outcome.passed else 'FAIL'}  {outcome.name}  "
                f"{outcome.figures}",
                flush=True,
            )
        text = report(outcomes, quick)
        name = "resilience-quick.md" if quick else "resilience.md"
        target = Path(__file__).resolve().parent.parent / "docs" / name
        target.write_text(text)
        print(f"written: {target}")
        return 0 if all(o.passed for o in outcomes) else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
