"""`python -m bench.run [--quick] [--only NAMES]`: the figures, ours against
plain RQ and Celery where they have an equivalent.

Needs no prior state: starts its own Redis-compatible server and SQLite
database in a temporary directory and removes both at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import environment
from bench.context import NAMES

BASE_DIR = Path(__file__).resolve().parent.parent
DOCS = BASE_DIR / "docs" / "benchmarks"


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown figure {', '.join(unknown) or '(none)'}; "
            f"choose from {','.join(NAMES)}"
        )
    return names


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--quick", action="store_true", help="small sizes (~3 min)")
    parser.add_argument(
        "--only",
        type=_names,
        metavar="NAMES",
        help=f"comma-separated subset of: {','.join(NAMES)} (the markdown file "
        "is then written only if --output is given)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="markdown file, the PNG plots beside it (default: "
        "docs/benchmarks/results.md, results-quick.md with --quick)",
    )
    return parser.parse_args(argv)


def _suffix(quick: bool) -> str:
    return "-quick" if quick else ""


def output_path(args: argparse.Namespace) -> Path | None:
    if args.output is not None:
        return Path(args.output)
    if args.only:
        return None  # a partial run never overwrites the whole table
    return DOCS / f"results{_suffix(args.quick)}.md"


def measure(directory: Path, args: argparse.Namespace) -> int:
    """Everything after the server is up (Django is set up here); the exit
    status: 1 when a check that the bench worked failed (not for a
    performance goal missed)."""
    from django.conf import settings

    from bench import celery_app, machine, plain, report
    from bench.context import Context, Sizes
    from bench.figures import measure as figures

    log = directory / "bench.log"
    environment.log_to_file(log)
    environment.quiet_rq()
    celery_app.configure(settings.REDIS_URL)
    info = machine.describe(plain.client())
    output = output_path(args)
    ctx = Context(
        Sizes.of(args.quick),
        directory,
        # The plots go beside the markdown file, and only with it.
        plots=None if output is None else output.parent,
        suffix=_suffix(args.quick),
    )
    results = figures(ctx, args.only or list(NAMES))
    mode = "quick" if args.quick else "full"
    if args.only:
        mode += f", only {','.join(args.only)}"
    print(report.text(mode, info, results))
    if output is not None:
        report.write(output, report.markdown(mode, info, results))
    for line in environment.log_problems(log):
        print(f"logged: {line}")
    for line in environment.log_problems_in(directory, exclude=log):
        print(f"logged by a process: {line}")
    print(f"\nwritten: {output or '(no markdown: partial run without --output)'}")
    broken = [row.figure for row in results.rows if row.broken]
    for figure in broken:
        print(f"FAILED check: {figure}", file=sys.stderr)
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as name:
        directory = Path(name)
        environment.compile_bytecode(BASE_DIR)
        server = environment.start_server(directory)
        try:
            environment.setup_django(directory, server.url)
            return measure(directory, args)
        except Exception:
            for line in environment.log_tails(directory):
                print(f"log tail: {line}", file=sys.stderr)
            raise
        finally:
            from django.db import connections

            connections.close_all()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
