"""What a scenario reports: its figures and checks, PASS only if all hold."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.procs import Fleet

Check = tuple[str, bool]


@dataclass
class Outcome:
    name: str
    figures: dict[str, object] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    #: Why the scenario could not run here ("" when it ran).
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok in self.checks)

    @property
    def result(self) -> str:
        if self.skipped:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"

    def skip(self, reason: str) -> None:
        self.skipped = reason
        self.figures["skipped"] = reason

    def check(self, name: str, ok: bool) -> bool:
        self.checks.append((name, ok))
        return ok

    def line(self) -> str:
        failed = [name for name, ok in self.checks if not ok]
        return f"{self.result}  {self.name}  ({self.seconds:.0f} s)  {self.figures}" + (
            f"  failed: {failed}" if failed else ""
        )


def processes_check(outcome: Outcome, fleet: Fleet) -> None:
    """The workers and the monitor must ride out what the scenario does."""
    exited = fleet.exited()
    outcome.figures["processes that exited"] = exited
    outcome.check("every worker and the monitor lived on", not exited)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


def count_succeeded(ids: list[str]) -> int:
    from jobs.models import JobRecord

    done = 0
    for start in range(0, len(ids), 5000):  # bounded IN lists
        chunk = ids[start : start + 5000]
        done += JobRecord.objects.filter(pk__in=chunk, status="succeeded").count()
    return done


def history_checks(outcome: Outcome, ids: list[str]) -> None:
    """Every job recorded, none succeeded twice, the database agrees with
    Redis (reconcile, after the recorder caught up)."""
    from jobs.models import Attempt, JobRecord
    from jobs.services.reconcile import reconcile

    statuses: Counter[str] = Counter()
    successes: Counter[str] = Counter()
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        statuses.update(
            JobRecord.objects.filter(pk__in=chunk).values_list("status", flat=True)
        )
        successes.update(
            Attempt.objects.filter(
                job_id__in=chunk, outcome=Attempt.Outcome.SUCCEEDED
            ).values_list("job_id", flat=True)
        )
    differences = reconcile(repair=False)
    twice = sum(1 for n in successes.values() if n > 1)
    outcome.figures.update(
        {
            "jobs": len(ids),
            "statuses": dict(statuses),
            "succeeded twice": twice,
            "differences": len(differences),
        }
    )
    outcome.check("every job recorded", sum(statuses.values()) == len(ids))
    outcome.check("no job succeeded twice", twice == 0)
    outcome.check("database and Redis agree", not differences)


def report(outcomes: list[Outcome], quick: bool, intro: list[str]) -> str:
    lines = [
        "# Resilience" + (" (quick sizes)" if quick else ""),
        "",
        f"Written by `make chaos{'-quick' if quick else ''}` at "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.",
        "",
        *intro,
        "",
    ]
    lines += ["| Scenario | Result | Took |", "|---|---|---|"]
    lines += [
        f"| {o.name} | {'**FAIL**' if o.result == 'FAIL' else o.result} |"
        f" {o.seconds:.0f} s |"
        for o in outcomes
    ]
    lines.append("")
    for o in outcomes:
        lines += [f"## {o.name}: {o.result}", ""]
        lines += [f"- {k}: {_flat(v)}" for k, v in o.figures.items()]
        lines += [f"- check: {name}: {'yes' if ok else 'NO'}" for name, ok in o.checks]
        lines.append("")
    return "\n".join(lines)


def _flat(value: object) -> str:
    """A figure on one Markdown line."""
    return " ".join(str(value).split("\n"))
