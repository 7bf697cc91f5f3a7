"""The function plain RQ runs in the comparisons: does nothing."""

from __future__ import annotations


def noop(text: str = "") -> None:
    """Accept the same payload as demo.echo and do nothing with it."""


def sleep(seconds: float = 0.0) -> None:
    """The I/O-bound job of the slots figure (demo.sleep's counterpart)."""
    import time

    time.sleep(seconds)


def cpu(ms: int = 0, clock: str = "wall") -> dict[str, int]:
    """The CPU-bound job of the CPU figure: demo.cpu's busy loop."""
    import time

    tick = time.thread_time if clock == "cpu" else time.perf_counter
    deadline = tick() + ms / 1000
    loops = 0
    while tick() < deadline:
        loops += 1
    return {"loops": loops}
