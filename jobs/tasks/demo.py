"""Built-in demo tasks: used by the demo, the tests and the benchmarks."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Literal

from pydantic import BaseModel, Field

from jobs import progress
from jobs.registry import RetryPolicy, task


class DemoFailure(RuntimeError):
    """Raised by demo.fail on purpose."""


class Echo(BaseModel):
    text: str = Field(max_length=100_000)


class Sleep(BaseModel):
    seconds: float = Field(ge=0, le=3600)


class Fail(BaseModel):
    times: int = Field(ge=-1, description="failing attempts; -1 fails every time")
    message: str = "demo failure"


class Crash(BaseModel):
    how: Literal["kill", "segfault", "exit"] = "kill"


class Progress(BaseModel):
    steps: int = Field(default=10, ge=1, le=10_000)
    delay: float = Field(default=0.5, ge=0, le=60)


class Cpu(BaseModel):
    ms: int = Field(ge=0, le=600_000)
    #: "cpu": loop until the job's own thread has had `ms` of CPU, so a busy
    #: machine lengthens the job instead of shrinking its work (benchmarks).
    clock: Literal["wall", "cpu"] = "wall"


@task("demo.echo", schema=Echo)
def echo(payload: Echo) -> dict[str, str]:
    """Return the text it was given."""
    return {"text": payload.text}


@task("demo.sleep", schema=Sleep, timeout=3700)
def sleep(payload: Sleep) -> dict[str, float]:
    """Sleep for a number of seconds."""
    time.sleep(payload.seconds)
    return {"slept": payload.seconds}


# Equal jitter so that the delays between attempts visibly grow.
@task(
    "demo.fail",
    schema=Fail,
    retry=RetryPolicy(max_attempts=4, base=0.5, factor=2.0, cap=30.0, jitter=0.5),
)
def fail(payload: Fail) -> dict[str, int]:
    """Fail the first `times` attempts, then succeed (-1: always fail)."""
    attempt = progress.current().attempt
    if payload.times == -1 or attempt <= payload.times:
        raise DemoFailure(f"{payload.message} (attempt {attempt})")
    return {"succeeded_on_attempt": attempt}


@task("demo.crash", schema=Crash, retry=RetryPolicy(max_attempts=3, base=0.5))
def crash(payload: Crash) -> None:
    """End the job's own process abruptly: killed (as by the OOM killer), a
    segmentation fault, or an exit that skips every clean-up."""
    if payload.how == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif payload.how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


@task("demo.progress", schema=Progress, timeout=3600)
def report_progress(payload: Progress) -> dict[str, int]:
    """Report progress and a log line at every step."""
    for step in range(1, payload.steps + 1):
        time.sleep(payload.delay)
        progress.report(100.0 * step / payload.steps, f"step {step} of {payload.steps}")
    return {"steps": payload.steps}


@task("demo.cpu", schema=Cpu, timeout=900)
def cpu(payload: Cpu) -> dict[str, int]:
    """Busy-loop for a number of milliseconds (of wall-clock or CPU time)."""
    clock = time.thread_time if payload.clock == "cpu" else time.perf_counter
    deadline = clock() + payload.ms / 1000
    loops = 0
    while clock() < deadline:
        loops += 1
    return {"loops": loops}


class Hog(BaseModel):
    megabytes: int = Field(ge=1, le=4096)


@task("demo.hog", schema=Hog, memory_limit_mb=64, retry=RetryPolicy(max_attempts=1))
def hog(payload: Hog) -> dict[str, int]:
    """Allocate memory; over 64 MB the job (only it) fails with MemoryError."""
    block = bytearray(payload.megabytes * 1024 * 1024)
    return {"allocated_mb": len(block) // (1024 * 1024)}


class Empty(BaseModel):
    pass


@task("demo.count_jobs", schema=Empty)
def count_jobs(payload: Empty) -> dict[str, int]:
    """Count job records: shows a job process using the database."""
    from jobs.models import JobRecord

    return {"jobs": JobRecord.objects.count()}


class Flaky(BaseModel):
    rate: float = Field(default=0.2, ge=0, le=1)


@task("demo.flaky", schema=Flaky, retry=RetryPolicy(max_attempts=4, base=0.2, cap=2.0))
def flaky(payload: Flaky) -> dict[str, int]:
    """Fail at random with probability `rate` on every attempt (chaos tests)."""
    import random

    if random.random() < payload.rate:
        raise DemoFailure(f"random failure (rate {payload.rate})")
    return {"attempt": progress.current().attempt}
