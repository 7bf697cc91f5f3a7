from __future__ import annotations

import pytest

from jobs import registry
from jobs.registry import RetryPolicy


def test_full_jitter_delay_stays_under_the_growing_ceiling():
    policy = RetryPolicy(base=1, factor=2, cap=10, jitter=1.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [1, 2, 4, 8, 10]
    assert policy.delay(3, rand=lambda: 0.0) == 4
    assert policy.delay(3, rand=lambda: 0.999) == pytest.approx(0.004)
    assert policy.delay(9, rand=lambda: 0.5) == 5  # capped


def test_equal_jitter_delays_never_shrink():
    policy = RetryPolicy(base=1, factor=2, cap=100, jitter=0.5)
    worst_then_best = [policy.delay(n, rand=lambda: 0.999) for n in (2, 3)]
    best_then_worst = [policy.delay(n, rand=lambda: 0.0) for n in (1, 2)]
    assert worst_then_best[1] >= best_then_worst[1] >= best_then_worst[0]


def test_no_retry_exceptions_and_the_attempt_limit():
    policy = RetryPolicy(max_attempts=3, no_retry=("ValueError",))
    assert policy.allows_retry(1, ["KeyError", "LookupError"])
    assert not policy.allows_retry(1, ["ValueError", "Exception"])
    assert not policy.allows_retry(3, ["KeyError"])


def test_policy_round_trips_and_merges_overrides():
    policy = RetryPolicy(max_attempts=5, no_retry=("X",))
    assert RetryPolicy.from_dict(policy.as_dict()) == policy
    assert policy.merged({"max_attempts": 2, "evil": 1}).max_attempts == 2
    assert policy.merged(None) is policy


def test_unknown_task_is_a_lookup_error_not_an_import():
    with pytest.raises(registry.UnknownTask):
        registry.get("os.system")


def test_demo_tasks_are_registered():
    names = {t.name for t in registry.all_tasks()}
    assert {
        "demo.echo",
        "demo.sleep",
        "demo.fail",
        "demo.crash",
        "demo.progress",
        "demo.cpu",
    } <= names
