"""What every figure gets: the sizes of this run, its directory, its results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.results import Results

if TYPE_CHECKING:
    from bench.drain import Drain

#: Every figure's name for `--only`, in the order they run (bench.figures).
NAMES = (
    "latency",
    "bulk",
    "workers",
    "recorder",
    "scaling",
    "memory",
    "recovery",
    "schedule",
    "metrics",
    "stored",
    "screens",
    "standard",
    "slots",
    "cpu",
)


@dataclass(frozen=True)
class Sizes:
    latency: int
    bulk: int
    worker: int
    rounds: int
    scaling: int
    memory: int
    recoveries: int
    firings: int
    records: int
    dead: int
    requests: int
    #: Job records already stored when submit latency is measured again.
    stored: tuple[int, ...]
    stored_calls: int
    #: Figure 10 grows the history through these sizes (`dead` / `records` of
    #: them dead) and requests each screen `screen_requests` times at the last.
    screen_steps: tuple[int, ...]
    screen_requests: int
    #: Figure 3 live: jobs a round, the monitor beside two workers.
    live: int = 1000
    counts: tuple[int, ...] = (1, 2, 4)
    #: Figure 13: this many jobs sleeping this long, all at once.
    slot_jobs: int = 50
    slot_seconds: float = 10.0
    #: Figure 14: this many CPU-bound jobs of each length, each side this
    #: many rounds in turn (the median round shown).
    cpu_jobs: int = 200
    cpu_rounds: int = 3

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:  # the whole run in about 3 minutes on 2 cores
            return cls(
                latency=300,
                bulk=1000,
                worker=60,
                rounds=3,
                scaling=200,
                memory=200,  # = scaling: the one-worker drain serves both
                recoveries=1,  # a smoke test: the full run takes the median of 5
                firings=10,
                records=50_000,
                dead=5_000,
                requests=30,
                stored=(1_000, 10_000, 50_000),
                stored_calls=200,
                screen_steps=(2_000, 20_000),
                screen_requests=15,
                slot_jobs=10,
                slot_seconds=2.0,
                cpu_jobs=40,
                cpu_rounds=1,
                live=150,
            )
        return cls(
            latency=2000,
            bulk=10_000,
            worker=2000,
            rounds=20,
            scaling=2000,
            memory=2000,
            recoveries=5,
            firings=60,
            records=1_000_000,
            dead=100_000,
            requests=30,
            stored=(10_000, 100_000, 1_000_000),
            stored_calls=1000,
            screen_steps=(10_000, 100_000, 1_000_000),
            screen_requests=30,
        )


@dataclass
class Context:
    sizes: Sizes
    directory: Path
    #: Where the figures draw their PNG plots (None: not drawn), and what
    #: ends their names ("-quick" for the quick run).
    plots: Path | None = None
    suffix: str = ""
    results: Results = field(default_factory=Results)
    #: Drains already measured, by (side, workers, jobs, the workers' database
    #: when not the bench's): the memory figure reuses the one-worker scaling
    #: drain when the sizes agree.
    drains: dict[tuple[str, int, int, str], Drain] = field(default_factory=dict)
    #: Monitor cycles that failed (and were retried) in any figure.
    monitor_failures: list[str] = field(default_factory=list)

    def draw(self, name: str, drawing: Callable[[Path], None]) -> None:
        """Has `drawing` write the plot `name` (a PNG of bench.plots) and lists
        it in the results; nothing when plots are not drawn."""
        if self.plots is not None:
            path = self.plots / f"{name}{self.suffix}.png"
            drawing(path)
            self.results.plots.append(path)
