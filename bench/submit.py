"""Figures 1 and 2: submitting one job at a time, and in bulk."""

from __future__ import annotations

from dataclasses import dataclass

from bench import plain
from bench.reset import reset
from bench.stats import percentile, rate, timed
from jobs.services import SubmitRequest, job_submit, job_submit_many

WARMUP = 50
P99_LIMIT_MS = 3.0
P99_MAX_RATIO = 3.0
BULK_GOAL = 5000.0


@dataclass(frozen=True)
class Latency:
    ours_ms: list[float]
    plain_ms: list[float]

    def ours(self, pct: float) -> float:
        return percentile(self.ours_ms, pct)

    def plain(self, pct: float) -> float:
        return percentile(self.plain_ms, pct)

    @property
    def fast(self) -> bool:
        return self.ours(99) < P99_LIMIT_MS

    @property
    def close_to_plain(self) -> bool:
        return self.ours(99) < P99_MAX_RATIO * self.plain(99)


def _submit_one() -> None:
    job_submit(task="demo.echo", payload={"text": "x"})


def latency(count: int) -> Latency:
    """Alternate ours and plain RQ, call by call, so drift hits both alike."""
    reset()
    queue = plain.queue()
    ours: list[float] = []
    base: list[float] = []
    for i in range(WARMUP + count):
        _, mine = timed(_submit_one)
        _, theirs = timed(lambda: queue.enqueue(plain.FUNC, text="x"))
        if i >= WARMUP:
            ours.append(mine * 1000)
            base.append(theirs * 1000)
    return Latency(ours, base)


def _requests(count: int) -> list[SubmitRequest]:
    return [
        SubmitRequest(task="demo.echo", payload={"text": str(i)}) for i in range(count)
    ]


def bulk_ours(count: int) -> float:
    """jobs/s of one job_submit_many (validation, SQL insert, Redis enqueue)."""
    reset()
    job_submit_many(requests=_requests(WARMUP))
    requests = _requests(count)
    _, seconds = timed(lambda: job_submit_many(requests=requests))
    return rate(count, seconds)


def bulk_plain(count: int) -> float:
    """jobs/s of one Queue.enqueue_many in a pipeline."""
    reset()
    queue = plain.queue()
    plain.enqueue_many(queue, plain.prepared(WARMUP))
    datas = plain.prepared(count)
    _, seconds = timed(lambda: plain.enqueue_many(queue, datas))
    return rate(count, seconds)
