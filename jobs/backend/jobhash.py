"""Reading a job's hash in Redis, which any client of that Redis may have written.

Part of the RQ adapter. RQ's own reading (Job.restore, get_meta, the lazy
`data` property) raises on bytes another client wrote: rq-dashboard's
Requeue pickles `meta`, a plain `rq` producer pickles `data`, and an
exception there ends a worker. So a hash is examined here first, field by
field, and what cannot be read becomes a reason to refuse that one job.
Nothing is ever unpickled: a pickle's first string (the function path RQ
stores first) is read with pickletools, which parses opcodes and builds no
object.
"""

from __future__ import annotations

import json
import pickletools
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq.job import JobStatus

RUNNER = "jobs.runner.run"
#: Decompressed bytes of `data` looked at; a job's data is far smaller.
MAX_DATA = 4 * 1024 * 1024
#: Characters of a foreign job's JSON arguments kept in its record.
MAX_ARGUMENTS = 8192
#: Longest function path kept (JobRecord.task holds 200 characters).
MAX_NAME = 200
#: Fields RQ stores as binary: every other field must be UTF-8 text.
BINARY_FIELDS = {b"data", b"meta", b"result", b"exc_info"}
STATUSES = {status.value for status in JobStatus}
FOREIGN = "ForeignJob"
UNDECODABLE = "UndecodableJob"


@dataclass(frozen=True)
class Verdict:
    """What a job hash says, as far as it can be read safely."""

    #: Why the job may not run here; "" when it is one of ours and readable.
    reason: str = ""
    #: The function path the job names, "" when unreadable.
    function: str = ""
    #: Our task name, when the job is one of ours.
    task: str = ""
    #: The exception type recorded for a refusal (FOREIGN or UNDECODABLE).
    exc_type: str = ""
    #: Arguments of a foreign job written as JSON (never from a pickle).
    arguments: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The task label of counters: our task, else the function named
        (counters are keyed "queue|task|outcome")."""
        return (self.task or self.function or "unknown").replace("|", "/")


def text(value: bytes | str | None) -> str:
    """Bytes from Redis as text, whatever they hold (for display and logs)."""
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def examine(raw: dict[bytes, bytes]) -> Verdict:
    """Judge a job hash (HGETALL's reply) without running or unpickling it."""
    data = raw.get(b"data")
    if data is None:
        return Verdict(
            "job hash has no data field: written by another client?",
            exc_type=UNDECODABLE,
        )
    verdict = _judge_data(decompressed(data))
    if verdict.reason:
        return verdict
    return _judge_fields(raw, verdict)


def _judge_data(data: bytes) -> Verdict:
    if data.startswith(b"\x80"):
        function = pickled_function(data)
        named = f" (it names {function!r})" if function else ""
        return Verdict(
            f"job data is pickled, not JSON: written by another client?{named} "
            "Only tasks submitted through the console run; pickles are never read.",
            function=function,
            exc_type=FOREIGN if function != RUNNER else UNDECODABLE,
        )
    try:
        parsed = json.loads(data.decode())
    except ValueError:
        return Verdict(
            "job data is not JSON: written by another client?", exc_type=UNDECODABLE
        )
    if not (isinstance(parsed, list) and len(parsed) == 4):
        return Verdict(
            "job data is not an RQ job (a list of four): written by another client?",
            exc_type=UNDECODABLE,
        )
    function, _instance, args, kwargs = parsed
    function = str(function)[:MAX_NAME] if function is not None else ""
    if function != RUNNER:
        return Verdict(
            f"job names {function!r}, not a registered task: written by another "
            "client? Only tasks submitted through the console run.",
            function=function,
            exc_type=FOREIGN,
            arguments=_bounded({"args": args, "kwargs": kwargs}),
        )
    task = kwargs.get("task") if isinstance(kwargs, dict) else None
    if not isinstance(task, str) or not isinstance(kwargs.get("payload"), dict):
        return Verdict(
            "job data names no task and payload: written by another client?",
            function=function,
            exc_type=UNDECODABLE,
        )
    return Verdict(function=function, task=task[:MAX_NAME])


def _bounded(arguments: dict[str, Any]) -> dict[str, Any]:
    """A foreign job's arguments as kept in its record: small ones whole."""
    shown = json.dumps(arguments)
    if len(shown) <= MAX_ARGUMENTS:
        return arguments
    return {"truncated": True, "preview": shown[:MAX_ARGUMENTS]}


def _judge_fields(raw: dict[bytes, bytes], verdict: Verdict) -> Verdict:
    def refused(reason: str) -> Verdict:
        return Verdict(
            reason, function=verdict.function, task=verdict.task, exc_type=UNDECODABLE
        )

    if b"meta" in raw and meta(raw[b"meta"]) is None:
        return refused(
            "job meta is not JSON: written by another client? (rq-dashboard's "
            "Requeue pickles it; retry the job from the console instead)"
        )
    for name, value in raw.items():
        if name in BINARY_FIELDS:
            continue
        try:
            value.decode()
            name.decode()
        except UnicodeDecodeError:
            shown = text(name)
            return refused(
                f"job field {shown!r} is not UTF-8 text: written by another client?"
            )
    status = raw.get(b"status")
    if status and status.decode() not in STATUSES:
        shown = status.decode()[:40]
        return refused(
            f"job status {shown!r} is not an RQ status: written by another client?"
        )
    return verdict


def moment(raw: bytes | None) -> datetime | None:
    """One of RQ's timestamps (ISO 8601, UTC), None when it is not one."""
    try:
        found = datetime.fromisoformat(text(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def meta(raw: bytes | None) -> dict[str, Any] | None:
    """A job's `meta` field as a dict ({} when absent), None when unreadable."""
    if not raw:
        return {}
    try:
        found = json.loads(raw.decode())
    except ValueError:  # UnicodeDecodeError is a ValueError
        return None
    return found if isinstance(found, dict) else None


def unreadable(exc: BaseException) -> str:
    """The reason for a hash that passed examine() but that RQ cannot parse."""
    return f"job hash is not readable by RQ ({type(exc).__name__}: {exc})"[:500]


def decompressed(data: bytes) -> bytes:
    """RQ compresses `data` when it is worth it; bounded, in case of a bomb."""
    if not data.startswith(b"x"):  # every zlib stream starts with 0x78
        return data
    try:
        inflater = zlib.decompressobj()
        return inflater.decompress(data, MAX_DATA)
    except zlib.error:
        return data


def pickled_function(data: bytes) -> str:
    """The first string of a pickle (RQ pickles (function, instance, args,
    kwargs)), read from its opcodes; "" when the pickle starts otherwise."""
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name in ("PROTO", "FRAME", "MARK"):
                continue
            if "UNICODE" in opcode.name and isinstance(arg, str):
                return arg[:MAX_NAME]
            return ""
    except (ValueError, TypeError, EOFError, UnicodeDecodeError):
        return ""
    return ""
