"""Figures 1 and 2: submitting one job at a time, and in bulk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import background, celery_app, plain
from bench.reset import reset
from bench.stats import percentile, rate, timed
from jobs.services import SubmitRequest, job_submit, job_submit_many

WARMUP = 50
P99_LIMIT_MS = 3.0
P99_MAX_RATIO = 3.0
BULK_GOAL = 5000.0


OURS, PLAIN, CELERY = "ours", "plain RQ", "Celery"


@dataclass(frozen=True)
class Latency:
    """Milliseconds per call, by side."""

    samples: dict[str, list[float]]

    def p(self, side: str, pct: float) -> float:
        return percentile(self.samples[side], pct)

    @property
    def fast(self) -> bool:
        return self.p(OURS, 99) < P99_LIMIT_MS

    @property
    def close_to_plain(self) -> bool:
        return self.p(OURS, 99) < P99_MAX_RATIO * self.p(PLAIN, 99)


def _submit_one() -> None:
    job_submit(task="demo.echo", payload={"text": "x"})


def submitters() -> dict[str, Callable[[], object]]:
    """One submission of a no-op job by each side."""
    queue = plain.queue()
    return {
        OURS: _submit_one,
        PLAIN: lambda: queue.enqueue(plain.FUNC, text="x"),
        CELERY: lambda: celery_app.submit("x"),
    }


def interleaved(count: int, calls: dict[str, Callable[[], object]]) -> Latency:
    """Each side in turn, call by call, so drift hits them alike; the first
    WARMUP rounds are not counted."""
    samples: dict[str, list[float]] = {side: [] for side in calls}
    with background.checkpointing():
        for i in range(WARMUP + count):
            for side, call in calls.items():
                _, seconds = timed(call)
                if i >= WARMUP:
                    samples[side].append(seconds * 1000)
    return Latency(samples)


def latency(count: int) -> Latency:
    reset()
    return interleaved(count, submitters())


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


def bulk_celery(count: int, send: Callable[[list[str]], None]) -> float:
    """tasks/s of one `send` of `count` tasks (a function of bench.celery_app)."""
    reset()
    send([str(i) for i in range(WARMUP)])
    texts = [str(i) for i in range(count)]
    _, seconds = timed(lambda: send(texts))
    return rate(count, seconds)
