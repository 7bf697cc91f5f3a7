"""The chaos scenarios' own task, whose side effect can be counted: each run
that gets to its end appends the job's id to a file (CHAOS_MARKS), outside
Redis and the database, as a real task's e-mail or payment would land."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from jobs import progress
from jobs.registry import task

MODULE = "bench.chaos.marks"
#: The file the runs append to (every process of a run sees the same file,
#: also those in other network namespaces).
MARKS = "CHAOS_MARKS"


class Mark(BaseModel):
    seconds: float = Field(default=0.0, ge=0, le=600)


@task("chaos.mark", schema=Mark, timeout=900)
def mark(payload: Mark) -> dict[str, float]:
    """Sleep, then leave the mark (one line of under PIPE_BUF bytes, appended
    in one write: whole lines even with many writers)."""
    time.sleep(payload.seconds)
    line = f"{progress.current().job_id}\n".encode()
    fd = os.open(os.environ[MARKS], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return {"slept": payload.seconds}


def marks(path: Path) -> Counter[str]:
    """How many times each job left its mark."""
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_text().splitlines() if line)


@contextmanager
def marking(path: Path) -> Iterator[None]:
    """The processes started in the block (they inherit the environment) run
    chaos.mark, leaving their marks in `path`."""
    names = ("JOB_TASK_MODULES", MARKS)
    saved = {name: os.environ.get(name) for name in names}
    modules = os.environ.get("JOB_TASK_MODULES") or "jobs.tasks.demo"
    os.environ["JOB_TASK_MODULES"] = f"{modules},{MODULE}"
    os.environ[MARKS] = str(path)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
