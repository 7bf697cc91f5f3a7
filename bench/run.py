"""`python -m bench.run [--quick]`: every figure, ours against plain RQ.

Needs no prior state: starts its own Redis-compatible server and SQLite
database in a temporary directory and removes both at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import environment

BASE_DIR = Path(__file__).resolve().parent.parent
OUTPUT = BASE_DIR / "docs" / "benchmarks" / "results.md"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="small sizes (< 2 min)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="markdown file")
    return parser.parse_args(argv)


def measure(directory: Path, quick: bool, output: Path) -> None:
    """Everything after the server is up (Django is set up here)."""
    from bench import machine, plain, report
    from bench.figures import Sizes
    from bench.figures import measure as figures

    log = directory / "bench.log"
    environment.log_to_file(log)
    environment.quiet_rq()
    info = machine.describe(plain.client())
    results = figures(Sizes.of(quick))
    mode = "quick" if quick else "full"
    print(report.text(mode, info, results))
    report.write(output, report.markdown(mode, info, results))
    for line in environment.log_problems(log):
        print(f"logged: {line}")
    print(f"\nwritten: {output}")


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as name:
        directory = Path(name)
        server = environment.start_server(directory)
        try:
            environment.setup_django(directory, server.url)
            measure(directory, args.quick, args.output)
        finally:
            from django.db import connections

            connections.close_all()
            server.stop()


if __name__ == "__main__":
    main()
