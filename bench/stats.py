"""Small timing helpers: percentiles, a stopwatch and rates."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 300 samples is the 297th smallest)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def timed(action: Callable[[], T]) -> tuple[T, float]:
    """What `action` returned and the seconds it took (perf_counter)."""
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def ratio(ours: float | None, plain: float | None) -> float | None:
    if ours is None or not plain:
        return None
    return ours / plain
