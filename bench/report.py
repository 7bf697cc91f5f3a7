"""The printed report and its markdown copy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench import table
from bench.figures import Results

NOTES = (
    "ratio = ours / plain RQ: for latency lower is better, for throughput higher.",
    "1: job_submit(demo.echo) (SQL insert and commit, then one Redis MULTI) against "
    "Queue.enqueue(bench.noop.noop); calls alternate, 50 warm-up calls each are "
    "not counted.",
    "2: one job_submit_many against one Queue.enqueue_many in one pipeline; "
    "building the request lists is not timed.",
    "3: only worker.work(burst=True) is timed, on a queue filled beforehand, in "
    "rounds alternating plain RQ and ours (figure = total jobs / total time); ours "
    "runs demo.echo through the task runner and emits events, plain RQ runs "
    "bench.noop.noop. The recorder is timed on its own: one Recorder().drain_all() "
    "of the history (enqueued, started, succeeded) of that many jobs.",
    "Logs: the console's JSON lines go to a file at the configured level; rq's "
    "loggers are at WARNING for both sides. DEBUG=1 as the make targets set it.",
)


def header(mode: str, machine: list[tuple[str, str]]) -> list[str]:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return [f"mode: {mode}   at: {stamp}", *(f"{k}: {v}" for k, v in machine)]


def _notes(results: Results) -> list[str]:
    return [f"- {line}" for line in (*results.details, *NOTES)]


def text(mode: str, machine: list[tuple[str, str]], results: Results) -> str:
    body = table.text(results.rows)
    return "\n".join([*header(mode, machine), "", body, "", *_notes(results)])


def markdown(mode: str, machine: list[tuple[str, str]], results: Results) -> str:
    lines = ["# Benchmarks", "", "Written by `make bench` / `make bench-quick`.", ""]
    lines += [f"- {line}" for line in header(mode, machine)]
    lines += ["", table.markdown(results.rows), "", "Notes:", "", *_notes(results)]
    return "\n".join(lines) + "\n"


def write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
