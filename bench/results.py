"""What a run collects: table rows, per-figure details, notes and plots."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.table import Row


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: PNG files drawn, beside the markdown report.
    plots: list[Path] = field(default_factory=list)


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)
