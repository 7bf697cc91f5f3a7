"""Jobs whose every attempt fails at random (20 %), 4 attempts allowed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.chaos.load import start_processes, submit_many
from bench.chaos.outcome import Outcome, history_checks, processes_check, wait_until
from bench.chaos.sizes import Sizes

RATE = 0.2


def random_failures(directory: Path, sizes: Sizes) -> Outcome:
    from bench.procs import Fleet
    from jobs.models import Attempt, JobRecord

    jobs = sizes.flaky_jobs
    outcome = Outcome(f"{jobs} jobs, {RATE:.0%} of attempts failing, 4 attempts")
    with Fleet(directory) as fleet:
        start_processes(fleet)
        ids = submit_many("demo.flaky", {"rate": RATE}, jobs, outcome)
        final = JobRecord.objects.filter(status__in=["succeeded", "dead"])
        finished = wait_until(lambda: final.count() == jobs, 240 + jobs * 0.1)
        processes_check(outcome, fleet)
    counted = Counter(Attempt.objects.values_list("job_id", flat=True))
    records = JobRecord.objects.values_list("pk", "attempts", "status")
    mismatched = sum(1 for pk, n, _ in records if n != counted.get(pk, 0))
    dead = sum(1 for *_, status in records if status == "dead")
    outcome.figures.update(
        {
            "attempts": sum(counted.values()),
            f"dead (expected about {jobs * RATE**4:.0f})": dead,
            "attempt counts that disagree": mismatched,
        }
    )
    outcome.check("every job ended succeeded or dead", finished)
    outcome.check("attempt counts match the records", mismatched == 0)
    history_checks(outcome, ids)
    return outcome
