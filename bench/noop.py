"""The function plain RQ runs in the comparisons: does nothing."""

from __future__ import annotations


def noop(text: str = "") -> None:
    """Accept the same payload as demo.echo and do nothing with it."""
