"""The printed report and its markdown copy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from bench import table
from bench.results import Results


def general_notes() -> tuple[str, ...]:
    return (
        "ours/RQ and ours/Celery = our figure divided by theirs: for latency "
        "lower is better, for throughput higher.",
        "Logs: the console's JSON lines go to files at the configured level; rq's "
        "loggers are at WARNING for both sides. The worker processes that the "
        "drains and figures 13 and 14 start log at WARNING on every side (ours: "
        "LOG_LEVEL=WARNING, no line per job; Celery --loglevel=WARNING; RQ "
        "--logging-level WARNING); at the default INFO ours writes two JSON "
        "lines a job (about "
        f"25 us each on a warm cache). DEBUG={int(settings.DEBUG)}.",
        "The machine is shared (2 cores, other test suites running): figures are "
        "noisy and not tuned.",
    )


def header(mode: str, machine: list[tuple[str, str]]) -> list[str]:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return [f"mode: {mode}   at: {stamp}", *(f"{k}: {v}" for k, v in machine)]


def _notes(results: Results) -> list[str]:
    lines = (*results.details, *general_notes(), *results.notes)
    return [f"- {line}" for line in lines]


def text(mode: str, machine: list[tuple[str, str]], results: Results) -> str:
    body = table.text(results.rows)
    drawn = [f"plot: {path}" for path in results.plots]
    return "\n".join(
        [*header(mode, machine), "", body, "", *_notes(results), "", *drawn]
    )


def markdown(mode: str, machine: list[tuple[str, str]], results: Results) -> str:
    lines = ["# Benchmarks", "", "Written by `make bench` / `make bench-quick`.", ""]
    lines += [f"- {line}" for line in header(mode, machine)]
    lines += ["", table.markdown(results.rows), ""]
    for path in results.plots:
        lines += [f"![{path.stem}]({path.name})", ""]
    lines += ["Notes:", "", *_notes(results)]
    return "\n".join(lines) + "\n"


def write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
