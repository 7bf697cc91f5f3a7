"""Live reads of RQ's state in Redis, for the console and the metrics.

Part of the RQ adapter (see queueing.py): O(1) Redis commands in pipelines,
never a scan of a whole registry.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq.command import send_shutdown_command
from rq.job import Job, JobStatus

from jobs import events
from jobs.backend.connect import connection
from jobs.backend.jobhash import STATUSES, Verdict, decompressed, examine, moment, text
from jobs.backend.queueing import (
    PIPELINE_CHUNK,
    UNREADABLE,
    ConsoleJob,
    executing,
    rq_queue,
)
from jobs.backend.queues import lanes, logical_queue

#: Scores past this (the year 5138) are no moment: another client wrote them.
MAX_EPOCH = 1e11


@dataclass(frozen=True)
class Depth:
    """A queue's live state in Redis, summed over its priority lanes."""

    queue: str
    queued: int
    scheduled: int
    started: int
    deferred: int
    failed: int
    oldest_enqueued_at: datetime | None

    @property
    def oldest_wait(self) -> float | None:
        if self.oldest_enqueued_at is None:
            return None
        return max(0.0, (datetime.now(UTC) - self.oldest_enqueued_at).total_seconds())


def _registry_keys(lane_name: str) -> list[str]:
    return [
        f"rq:scheduled:{lane_name}",
        f"rq:wip:{lane_name}",
        f"rq:deferred:{lane_name}",
        f"rq:failed:{lane_name}",
    ]


def queue_depths(queues: list[str]) -> dict[str, Depth]:
    """Two pipelined round trips for any number of queues: O(1) commands only
    (LLEN, ZCARD, LINDEX), never a scan of a registry."""
    client = connection()
    plan = [(q, lane_name) for q in queues for lane_name in lanes(q)]
    with client.pipeline(transaction=False) as pipe:
        for _q, lane_name in plan:
            pipe.llen(f"rq:queue:{lane_name}")
            for key in _registry_keys(lane_name):
                pipe.zcard(key)
            pipe.lindex(f"rq:queue:{lane_name}", 0)
        replies = pipe.execute()
    sums: dict[str, list[int]] = {q: [0, 0, 0, 0, 0] for q in queues}
    heads: dict[str, list[str]] = {q: [] for q in queues}
    for index, (q, _lane) in enumerate(plan):
        row = replies[index * 6 : (index + 1) * 6]
        for i in range(5):
            sums[q][i] += int(row[i])
        if row[5]:
            heads[q].append(text(row[5]))
    enqueued = _enqueued_at([h for hs in heads.values() for h in hs])
    result = {}
    for q in queues:
        times = [t for t in (enqueued.get(h) for h in heads[q]) if t is not None]
        queued, scheduled, started, deferred, failed = sums[q]
        result[q] = Depth(
            q,
            queued,
            scheduled,
            started,
            deferred,
            failed,
            oldest_enqueued_at=min(times) if times else None,
        )
    return result


def _enqueued_at(job_ids: list[str]) -> dict[str, datetime | None]:
    if not job_ids:
        return {}
    with connection().pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(Job.key_for(job_id), "enqueued_at")
        values = pipe.execute()
    return {
        job_id: moment(raw) if raw else None
        for job_id, raw in zip(job_ids, values, strict=True)
    }


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    state: str
    current_job: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful: int
    failed: int
    rss_kb: int
    #: Jobs it runs at once (`rqworker --concurrency`; 1 for RQ's own worker)
    #: and how many run now.
    concurrency: int = 1
    slots_busy: int = 0
    #: A slot worker's live job processes (process and fork models) and
    #: their proportional memory (PSS, kB); 0 for any other worker.
    job_processes: int = 0
    job_processes_kb: int = 0
    #: Asked to stop (SIGTERM, RQ's shutdown command): finishing its jobs.
    stopping: bool = False

    @property
    def heartbeat_age(self) -> float | None:
        if self.last_heartbeat is None:
            return None
        return max(0.0, (datetime.now(UTC) - self.last_heartbeat).total_seconds())


def _text(raw: dict[bytes, bytes], key: str) -> str:
    return text(raw.get(key.encode()))


def _int(raw: dict[bytes, bytes], key: str) -> int | None:
    try:
        return int(_text(raw, key))
    except ValueError:
        return None


def live_workers() -> list[WorkerInfo]:
    """Every registered worker whose entry has not expired."""
    client = connection()
    keys = sorted(text(k) for k in client.smembers("rq:workers"))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        rows = pipe.execute()
    found = []
    for key, raw in zip(keys, rows, strict=True):
        if not raw:
            continue  # expired: the worker is gone
        found.append(
            WorkerInfo(
                name=key.removeprefix("rq:worker:"),
                hostname=_text(raw, "hostname"),
                pid=_int(raw, "pid"),
                queues=[q for q in _text(raw, "queues").split(",") if q],
                state=_text(raw, "state") or "unknown",
                current_job=_text(raw, "current_job") or None,
                last_heartbeat=moment(raw.get(b"last_heartbeat")),
                birth=moment(raw.get(b"birth")),
                successful=_int(raw, "successful_job_count") or 0,
                failed=_int(raw, "failed_job_count") or 0,
                rss_kb=_int(raw, "rss_kb") or 0,
                **_slots(raw),
                **_job_processes(raw),
                stopping=bool(raw.get(b"shutdown_requested_date")),
            )
        )
    return found


#: Written by the monitor: worker name -> JSON {hostname, pid, queues, seen},
#: the workers seen alive in the last hour (the Workers screen shows the ones
#: since gone as such).
WORKERS_SEEN = "console:workers:seen"


def workers_seen() -> dict[str, bytes]:
    """The monitor's seen-workers hash: name -> its JSON, unread (untrusted)."""
    return {text(k): v for k, v in connection().hgetall(WORKERS_SEEN).items()}


def forget_workers_seen(names: list[str]) -> None:
    """Take these workers out of the seen-workers hash (one command)."""
    if names:
        connection().hdel(WORKERS_SEEN, *names)


#: More slots than this in a worker's hash is not believed (untrusted input).
MAX_SLOTS = 100_000


#: More memory than this (kB, 1 PiB) in a worker's hash is not believed.
MAX_KB = 2**40


def _job_processes(raw: dict[bytes, bytes]) -> dict[str, int]:
    """A slot worker's `job_processes` and their `job_processes_kb`; none
    when either is missing or not believable (written by anyone)."""
    count, kb = _int(raw, "job_processes"), _int(raw, "job_processes_kb")
    if (
        count is None
        or kb is None
        or not (0 <= count <= MAX_SLOTS and 0 <= kb <= MAX_KB)
    ):
        return {"job_processes": 0, "job_processes_kb": 0}
    return {"job_processes": count, "job_processes_kb": kb}


def _slots(raw: dict[bytes, bytes]) -> dict[str, int]:
    """A slot worker's `concurrency` and `slots_busy`; for any other worker
    one slot, busy while its state says so."""
    concurrency = _int(raw, "concurrency")
    if concurrency is None or not 1 <= concurrency <= MAX_SLOTS:
        busy = 1 if _text(raw, "state") == "busy" else 0
        return {"concurrency": 1, "slots_busy": busy}
    busy = min(max(_int(raw, "slots_busy") or 0, 0), concurrency)
    return {"concurrency": concurrency, "slots_busy": busy}


def waiting_job_ids(queue: str, limit: int) -> list[str]:
    """Ids of jobs waiting in a queue's lanes, high lane first, at most `limit`."""
    client = connection()
    ids: list[str] = []
    for lane_name in lanes(queue):
        if len(ids) >= limit:
            break
        raw = client.lrange(f"rq:queue:{lane_name}", 0, limit - len(ids) - 1)
        ids.extend(text(r) for r in raw)
    return ids


def scheduled_jobs(queues: list[str], limit: int) -> list[tuple[str, datetime]]:
    """(job id, due time) of delayed and retry-waiting jobs, soonest first."""
    client = connection()
    found: list[tuple[str, datetime]] = []
    for q in queues:
        for lane_name in lanes(q):
            for raw, score in client.zrange(
                f"rq:scheduled:{lane_name}", 0, limit - 1, withscores=True
            ):
                if 0 <= score < MAX_EPOCH:  # another client may score anything
                    found.append((text(raw), datetime.fromtimestamp(score, UTC)))
    return sorted(found, key=lambda item: item[1])[:limit]


def run_now(job_id: str) -> bool:
    """Move a delayed or retry-waiting job to the head of its queue."""
    client = connection()
    try:
        job = ConsoleJob.fetch(job_id, connection=client)
    except Exception:  # noqa: BLE001 - no such job in Redis
        return False
    if job.get_status() != JobStatus.SCHEDULED:
        return False
    queue = rq_queue(job.origin, client)
    with client.pipeline() as pipe:
        pipe.zrem(queue.scheduled_job_registry.key, job.id)
        queue._enqueue_job(job, pipeline=pipe, at_front=True)
        pipe.xadd(events.STREAM, events.fields(events.Kind.ENQUEUED, job.id))
        pipe.execute()
    return True


def delete(job_ids: Iterable[str]) -> None:
    """Remove jobs from Redis entirely (queues, registries, hashes)."""
    client = connection()
    ids = list(job_ids)
    for start in range(0, len(ids), PIPELINE_CHUNK):
        with client.pipeline() as pipe:
            for job_id in ids[start : start + PIPELINE_CHUNK]:
                try:
                    job = ConsoleJob.fetch(job_id, connection=client)
                except Exception:  # noqa: BLE001 - already gone
                    continue
                job.delete(pipeline=pipe, remove_from_queue=True)
            pipe.execute()


# -- jobs stranded between a dequeue and their registration -------------------


def queued_ids(queues: list[str]) -> set[str]:
    """Every job id waiting in any lane of these queues."""
    client = connection()
    found: set[str] = set()
    for q in queues:
        for lane_name in lanes(q):
            key = f"rq:queue:{lane_name}"
            for start in range(0, int(client.llen(key)), 10_000):
                found.update(text(r) for r in client.lrange(key, start, start + 9_999))
    return found


def still_stranded(job_ids: list[str]) -> list[str]:
    """Of these suspects, the jobs Redis still calls "queued" that are in no
    queue list: a worker popped them and died before registering them (a
    multi-queue BLPOP has no safety net in RQ).

    Not a job with a live execution: a worker runs it, or took it as the
    primary died (after a failover the new primary may have missed its
    "started"); lost-worker recovery takes that one back if its heartbeat
    lapses, and two paths putting one job back would run it twice."""
    client = connection()
    found = []
    for job_id in job_ids:
        status, origin = client.hmget(Job.key_for(job_id), "status", "origin")
        if status != b"queued" or not origin:
            continue
        if client.lpos(f"rq:queue:{text(origin)}", job_id) is None:
            found.append(job_id)
    running = executing(found)
    return [job_id for job_id in found if job_id not in running]


def requeue_stranded(job_ids: list[str]) -> None:
    """Put stranded jobs back at the head of the lane they came from."""
    client = connection()
    for job_id in job_ids:
        origin = client.hget(Job.key_for(job_id), "origin")
        if origin is None:
            continue
        with client.pipeline() as pipe:
            pipe.lpush(f"rq:queue:{text(origin)}", job_id)
            pipe.xadd(events.STREAM, events.fields(events.Kind.ENQUEUED, job_id))
            pipe.execute()


# -- what another client may have left in our queues --------------------------

#: Ids read from each list and registry of a lane when looking for jobs the
#: console did not write: reconcile reads each such job's hash, so a
#: producer's backlog of millions is looked at in slices, not at once.
SCAN_LIMIT = 10_000
REGISTRY_PREFIXES = (
    "rq:scheduled:",
    "rq:wip:",
    "rq:deferred:",
    "rq:failed:",
    "rq:finished:",
    "rq:canceled:",
)


def job_ids_in_redis(queues: list[str], limit: int = SCAN_LIMIT) -> list[str]:
    """Ids of the jobs these queues' lanes hold in their lists and registries
    (at most `limit` from each)."""
    client = connection()
    found: dict[str, None] = {}
    for q in queues:
        for lane_name in lanes(q):
            for raw in client.lrange(f"rq:queue:{lane_name}", 0, limit - 1):
                found[text(raw)] = None
            for prefix in REGISTRY_PREFIXES:
                for raw in client.zrange(prefix + lane_name, 0, limit - 1):
                    # The started registry holds "job id:execution id".
                    found[text(raw).split(":")[0]] = None
    return list(found)


@dataclass(frozen=True)
class SeenJob:
    """A job's hash as read without trusting it (see jobhash)."""

    job_id: str
    #: RQ's status (queueing.UNREADABLE when it is not one), None if gone.
    status: str | None
    verdict: Verdict
    queue: str
    created: datetime | None
    #: The failure RQ recorded in the hash, as text.
    error: str


def examine_jobs(job_ids: list[str]) -> dict[str, SeenJob]:
    """Each job's hash, judged; jobs with no hash are left out."""
    client = connection()
    found: dict[str, SeenJob] = {}
    for start in range(0, len(job_ids), PIPELINE_CHUNK):
        chunk = job_ids[start : start + PIPELINE_CHUNK]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hgetall(Job.key_for(job_id))
                pipe.xrevrange(f"rq:results:{job_id}", count=1)
            replies = pipe.execute()
        for index, job_id in enumerate(chunk):
            raw, results = replies[2 * index : 2 * index + 2]
            if raw:
                found[job_id] = _seen(job_id, raw, results)
    return found


def _failure_text(raw: dict[bytes, bytes], results: list[Any]) -> str:
    """The failure RQ recorded: in the job's latest result (RQ 2), else in
    its hash. Only the exception's text is read, never a return value."""
    encoded = results[0][1].get(b"exc_string") if results else None
    try:
        compressed = base64.b64decode(encoded) if encoded else raw.get(b"exc_info")
    except ValueError:
        compressed = None
    return text(decompressed(compressed or b""))[:4000]


def _seen(job_id: str, raw: dict[bytes, bytes], results: list[Any]) -> SeenJob:
    status = text(raw.get(b"status"))
    return SeenJob(
        job_id=job_id,
        status=(status if status in STATUSES else UNREADABLE) if status else None,
        verdict=examine(raw),
        queue=logical_queue(text(raw.get(b"origin"))),
        created=moment(raw.get(b"created_at")),
        error=_failure_text(raw, results),
    )


#: Set once a worker has been asked to stop, so it is asked once: RQ's
#: shutdown command sends the worker SIGINT, and a second one is its cold
#: shutdown (its running jobs killed).
STOP_ASKED = "console:worker-stop:{}"


def ask_worker_to_stop(name: str) -> str:
    """Ask a live worker to stop as SIGTERM would (RQ's shutdown command): it
    takes no new job, finishes the ones it runs, then exits. "asked"; or
    "stopping" (asked before, or stopping already: not asked again); or
    "gone" (no live worker of that name)."""
    client = connection()
    key = f"rq:worker:{name}"
    with client.pipeline(transaction=False) as pipe:
        pipe.sismember("rq:workers", key)
        pipe.exists(key)
        pipe.hget(key, "shutdown_requested_date")
        registered, alive, stopping = pipe.execute()
    if not (registered and alive):
        return "gone"
    if stopping:
        return "stopping"
    if not client.set(STOP_ASKED.format(name), 1, nx=True, ex=24 * 3600):
        return "stopping"
    send_shutdown_command(client, name)
    return "asked"
