"""Part of the RQ adapter (with queueing.py): the Redis commands that put a job
into a queue or into the scheduled registry, learnt from RQ once per kind.

Building an RQ Job and letting it save itself costs about 100 µs of Python
per job, nearly all of it the same for every job of a task. So the first job
of each kind (lane, task, timeout, retry policy, attempt offset; queued or
scheduled) is written by RQ itself into a pipeline that is never sent. Its
commands are kept with the places that hold the job's id, data and times
marked, and every job of that kind is those commands with the places filled
in. tests/test_rqwrites.py checks the result against what RQ writes.

Each job's commands run in one Lua script guarded by a claim (SET NX per job
and retry round): the after-commit enqueue and the outbox relay may race on a
job, and only the first writes it. Claim and job land together, and a chunk
of jobs costs one round trip.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import utcformat

#: A claim lapses after this, so a job whose claimed write never ran (the
#: script failed half-way) is enqueued again by the outbox relay.
CLAIM_SECONDS = 60
TEMPLATE_ID = "console-template-0f3c9a7e"
_TEMPLATE_KEY = Job.key_for(TEMPLATE_ID)
#: A due time no real job has (2099-12-31T23:59:59Z): marks the ZADD score.
_TEMPLATE_SCORE = 4102444799

# Redis 5 and 6 replicate a script verbatim unless told otherwise, and XADD
# with an automatic id is not deterministic; 7 and later always replicate the
# effects.
_GUARDED = """
if redis.replicate_commands then redis.replicate_commands() end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""
_GUARDED_SHA = hashlib.sha1(_GUARDED.encode()).hexdigest()


class UnexpectedWrite(RuntimeError):
    """RQ wrote the job's id somewhere this module does not fill in (a new RQ
    release?): refuse rather than enqueue jobs under the template's id."""


@dataclass(frozen=True)
class Template:
    """RQ's commands for a job, flattened for the guarded script (each
    command's length, then its arguments), and where the job's values go."""

    argv: tuple[Any, ...]
    slots: tuple[tuple[int, str], ...]  # (index in argv, "id", "data", ...)

    def fill(self, job_id: str, data: bytes, now: str, score: int = 0) -> list[Any]:
        values = {
            "id": job_id,
            "key": Job.key_for(job_id),
            "data": data,
            "created": now,
            "enqueued": now,
            "score": score,
        }
        argv = list(self.argv)
        for index, what in self.slots:
            argv[index] = values[what]
        return argv


def job_data(func_name: str, kwargs: dict[str, Any]) -> bytes:
    """The `data` field RQ stores: the call, JSON-serialized and compressed."""
    return zlib.compress(JSONSerializer.dumps((func_name, None, (), kwargs)))


def now_text() -> str:
    return utcformat(datetime.now(UTC))


def learn(queue: Queue, job: Job, *, scheduled: bool) -> Template:
    """RQ's own writes for `job` (whose id must be TEMPLATE_ID), captured."""
    if job.id != TEMPLATE_ID:
        raise ValueError("a template job must have the template id")
    pipe = queue.connection.pipeline(transaction=False)
    if scheduled:
        # Queue.schedule_job, whose ScheduledJobRegistry.schedule ignores the
        # pipeline and writes at once: the same writes, all in the pipeline.
        pipe.sadd(queue.redis_queues_keys, queue.key)
        job.set_status(JobStatus.SCHEDULED, pipeline=pipe)
        job.save(pipeline=pipe)
        job.cleanup(ttl=job.ttl, pipeline=pipe)
        pipe.zadd(queue.scheduled_job_registry.key, {job.id: _TEMPLATE_SCORE})
    else:
        queue.enqueue_job(job, pipeline=pipe)
    commands = _without_repeated_writes(
        [tuple(args) for args, _options in pipe.command_stack]
    )
    pipe.reset()
    marks: dict[Any, str] = {
        TEMPLATE_ID: "id",
        _TEMPLATE_KEY: "key",
        zlib.compress(job.data): "data",
        _TEMPLATE_SCORE: "score",
    }
    if job.created_at is not None:
        marks[utcformat(job.created_at)] = "created"
    if job.enqueued_at is not None:
        marks.setdefault(utcformat(job.enqueued_at), "enqueued")
    argv = tuple(flatten(list(command) for command in commands))
    slots = tuple(
        (index, marks[arg])
        for index, arg in enumerate(argv)
        if _hashable(arg) and arg in marks
    )
    _check_every_id_is_marked(argv, {index for index, _ in slots})
    return Template(argv, slots)


def _without_repeated_writes(
    commands: list[tuple[Any, ...]],
) -> tuple[tuple[Any, ...], ...]:
    """RQ sets a job's status with one HSET and then writes the whole hash,
    status included: in a script every call counts, so an HSET whose fields
    the next write of the same key sets again to the same values is dropped."""
    kept = []
    for index, command in enumerate(commands):
        later = commands[index + 1] if index + 1 < len(commands) else ()
        if (
            command[0] == "HSET"
            and later[:1] == ("HSET",)
            and command[1] == later[1]
            and _pairs(command) <= _pairs(later)
        ):
            continue
        kept.append(command)
    return tuple(kept)


def _pairs(hset: tuple[Any, ...]) -> set[tuple[Any, Any]]:
    fields = hset[2:]
    return {(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)}


def _hashable(value: Any) -> bool:
    return isinstance(value, str | bytes | int | float)


def _check_every_id_is_marked(argv: tuple[Any, ...], marked: set[int]) -> None:
    for index, arg in enumerate(argv):
        text = arg.decode(errors="replace") if isinstance(arg, bytes) else arg
        if isinstance(text, str) and TEMPLATE_ID in text and index not in marked:
            raise UnexpectedWrite(f"RQ wrote the job id into {text!r}")


def flatten(commands: Iterable[list[Any]]) -> list[Any]:
    """Commands as the guarded script reads them: length, then arguments."""
    argv: list[Any] = []
    for command in commands:
        argv.append(len(command))
        argv.extend(command)
    return argv


def run_guarded(client: Any, writes: list[tuple[str, list[Any]]]) -> list[bool]:
    """Run each (claim key, flattened commands) pair in one pipeline; True
    where this call took the claim and wrote the job.

    A server that lost its script cache (a restart) gets the script again and
    the whole pipeline is re-sent: the claims make that safe, as any write
    that did go through is not repeated.
    """
    for first_try in (True, False):
        with client.pipeline(transaction=False) as pipe:
            for claim, argv in writes:
                pipe.execute_command(
                    "EVALSHA", _GUARDED_SHA, 1, claim, CLAIM_SECONDS, *argv
                )
            try:
                return [bool(done) for done in pipe.execute()]
            except redis.exceptions.NoScriptError:
                if not first_try:
                    raise
                client.script_load(_GUARDED)
    raise AssertionError("unreachable")
