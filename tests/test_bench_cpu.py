"""Figure 14 shows each side's median round (bench/cpu.py)."""

from __future__ import annotations

from bench.cpu import Run, _spread, median_run


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
        "14. 10 ms, useful CPU of each round in turn (%): "
        "ours 80.0, 100.0; celery 50.0"
    )
