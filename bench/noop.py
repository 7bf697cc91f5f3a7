"""The function plain RQ runs in the comparisons: does nothing."""

from __future__ import annotations


def noop(text: str = "") -> None:
    """Accept the same payload as demo.echo and do nothing with it."""


def sleep(seconds: float = 0.0) -> None:
    """The I/O-bound job of the slots figure (demo.sleep's counterpart)."""
    import time

    time.sleep(seconds)
