"""Figure 14 shows each side's median round (bench/cpu.py)."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from bench.cpu import Run, _first_put, _spread, median_run
from jobs.backend import queueing
from jobs.backend.client import ClientPipeline
from jobs.services import SubmitRequest, job_submit_many

ORIGINAL_EXECUTE = ClientPipeline.execute


def _run(seconds: float, ms: int = 10) -> Run:
    return Run(
        ms=ms,
        jobs=200,
        seconds=seconds,
        done=200,
        cpu_ms_per_job=12.0,
        monitor_ms_per_job=0.0,
        redis_ms_per_job=0.5,
        busy=90.0,
    )


def test_the_median_round_is_a_real_round_in_the_middle():
    slow, middle, fast = _run(1.6), _run(1.4), _run(1.2)
    assert median_run([fast, slow, middle]) is middle
    assert median_run([middle]) is middle
    # An even number: the lower middle, never a better figure than measured.
    low, high = _run(1.5), _run(1.3)
    assert median_run([high, fast, low, slow]) is low


def test_every_rounds_useful_cpu_is_in_the_details():
    text = _spread({"ours": [_run(1.25), _run(1.0)], "celery": [_run(2.0)]})
    assert text == (
        "14. 10 ms, useful CPU of each round in turn (%): ours 80.0, 100.0; celery 50.0"
    )


@pytest.mark.django_db(transaction=True)
def test_ours_is_timed_from_the_moment_its_jobs_are_sent_to_redis():
    """Figure 14 times ours from its enqueue's pipeline, not its commit."""
    requests = [SubmitRequest(task="demo.echo", payload={"text": "x"})] * 3
    before = time.time()
    with _first_put() as moments, transaction.atomic():
        job_submit_many(requests=requests)
        committing = time.time()
        assert moments == []  # nothing is sent before the commit
    assert moments  # the enqueue's pipeline (and any after it: chunks)
    assert before <= committing <= moments[0] <= time.time()
    assert queueing.rq_queue("default").count == 3
    assert ClientPipeline.execute is ORIGINAL_EXECUTE
