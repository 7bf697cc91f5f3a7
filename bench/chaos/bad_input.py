"""Bad input at volume: random submissions spread over the JSON API, the
console's form and the CLI. No server error and no traceback; every accepted
submission is a valid record (its payload passes its task's schema, Redis
holds the same), every rejected one wrote nothing anywhere."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos.doors import Doors, Tried, cli_arguments, fits_a_process
from bench.chaos.nasty import Nasty, example
from bench.chaos.outcome import Outcome
from bench.chaos.sizes import Sizes
from jobs.backend import connect

#: Server errors and corrupted records shown in the report, at most.
SHOWN = 5


def bad_input(directory: Path, sizes: Sizes, rng: random.Random) -> Outcome:
    from django.conf import settings

    from jobs import registry
    from jobs.services.reconcile import reconcile

    outcome = Outcome(
        f"{sizes.bad_inputs} random submissions over the API, the form and the CLI"
    )
    log = directory / "chaos.log"
    log_start = log.stat().st_size if log.exists() else 0
    tasks = {t.name: example(t.schema) for t in registry.all_tasks()}
    nasty = Nasty(
        rng.randrange(2**32),
        {name: payload for name, payload in tasks.items() if payload is not None},
        list(settings.JOB_QUEUES),
    )
    doors = Doors()
    tried: list[Tried] = []
    leaks: list[str] = []
    processes = 0
    for n in range(sizes.bad_inputs):
        fields, raw = nasty.submission(), nasty.raw_body()
        before = _footprint()
        door = ("api", "form", "cli")[n % 3]
        if door == "api":
            result = doors.through_api(fields, raw)
        elif door == "form":
            result = doors.through_form(fields)
        else:
            real = processes < sizes.cli_processes and fits_a_process(
                cli_arguments(fields)
            )
            processes += real
            result = doors.through_cli(fields, process=real)
        if not result.accepted and _footprint() != before:
            leaks.append(f"{result.door}: {result.given}")
        if result.accepted and result.job_id:
            nasty.accepted_ids.append(result.job_id)
        tried.append(result)
    corrupted = [
        f"{job_id}: {problem}"
        for job_id in dict.fromkeys(nasty.accepted_ids)
        if (problem := corruption(job_id))
    ]
    errors = [
        f"{t.door}: {t.server_error} for {t.given}" for t in tried if t.server_error
    ]
    unclear = [f"{t.door}: {t.given}" for t in tried if t.unclear]
    logged = _logged_errors(log, log_start)
    differences = reconcile(repair=False)
    by_door = Counter(t.door for t in tried)
    accepted = Counter(t.door for t in tried if t.accepted)
    outcome.figures.update(
        {
            "tried (api/form/cli)": "/".join(
                str(by_door[d]) for d in ("api", "form", "cli")
            ),
            "accepted (api/form/cli)": "/".join(
                str(accepted[d]) for d in ("api", "form", "cli")
            ),
            "of the CLI's, as real processes": processes,
            "server errors": len(errors),
            "error or traceback lines logged": len(logged),
            "rejected without a reason": len(unclear),
            "rejected but wrote something": len(leaks),
            "corrupted records": len(corrupted),
            "differences": len(differences),
        }
    )
    for label, found in (
        ("server error", errors),
        ("logged", logged),
        ("no reason", unclear),
        ("wrote", leaks),
        ("corrupted", corrupted),
    ):
        for n, text in enumerate(found[:SHOWN], 1):
            outcome.figures[f"{label} #{n}"] = text[:400]
    outcome.check("0 server errors", not errors and not logged)
    outcome.check("0 corrupted records", not corrupted and not leaks)
    outcome.check("every rejection says why", not unclear)
    outcome.check("database and Redis agree", not differences)
    return outcome


def _footprint() -> tuple[int, ...]:
    """What a submission writes: rows, stream entries, jobs in Redis."""
    from jobs.models import JobDependency, JobEvent, JobRecord

    client = connect.connection()
    jobs_in_redis = sum(1 for _ in client.scan_iter(match="rq:job:*", count=1000))
    return (
        JobRecord.objects.count(),
        JobEvent.objects.count(),
        JobDependency.objects.count(),
        int(client.xlen("console:events")),
        jobs_in_redis,
    )


def corruption(job_id: str) -> str | None:
    """What is wrong with an accepted job's record, or None."""
    from django.conf import settings

    from jobs import registry
    from jobs.backend import queueing
    from jobs.models import JobRecord, Priority

    record = JobRecord.objects.filter(pk=job_id).first()
    if record is None:
        return "accepted, but no record"
    try:
        registry.get(record.task).validate(record.payload)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"payload breaks its schema: {exc}"[:300]
    if (
        record.queue not in settings.JOB_QUEUES
        or record.priority not in Priority.values
    ):
        return f"queue {record.queue!r} or priority {record.priority!r} unknown"
    if not _sane_policy(record.retry_policy) or record.max_attempts < 1:
        return f"retry policy {record.retry_policy!r}"
    try:
        job = queueing.ConsoleJob.fetch(job_id, connection=connect.connection())
    except Exception:  # noqa: BLE001 - missing or unreadable
        return f"{record.status}, but not in Redis"
    if job.kwargs != {"task": record.task, "payload": record.payload}:
        return f"Redis holds {job.kwargs!r}"[:300]
    return None


def _sane_policy(policy: dict[str, Any]) -> bool:
    numbers = [policy.get(k) for k in ("base", "factor", "cap", "jitter")]
    return isinstance(policy.get("max_attempts"), int) and all(
        isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in numbers
    )


def _logged_errors(log: Path, start: int) -> list[str]:
    """Error lines this process logged during the scenario, each as its
    message and the last line of its traceback."""
    if not log.exists():
        return []
    with log.open("rb") as stream:
        stream.seek(start)
        text = stream.read().decode("utf-8", "replace")
    found = []
    for line in text.splitlines():
        if not any(m in line for m in ('"level": "error"', '"level": "critical"')):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            found.append(line[:300])
            continue
        last = (entry.get("exc") or "").strip().splitlines()[-1:] or [""]
        found.append(f"{entry.get('msg')}: {last[0]}"[:300])
    return found
