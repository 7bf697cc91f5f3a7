"""What a run collects: table rows, per-figure details and notes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from bench.table import Row


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)
