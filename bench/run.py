"""`python -m bench.run [--quick] [--only NAMES]`: the figures, ours against
plain RQ where there is a plain RQ equivalent.

Needs no prior state: starts its own Redis-compatible server and SQLite
database in a temporary directory and removes both at the end.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--quick", action="store_true", help="small sizes (< 2 min)")
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
        help="markdown file (default: docs/benchmarks/results.md, "
        "results-quick.md with --quick)",
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


def measure(directory: Path, args: argparse.Namespace) -> None:
    """Everything after the server is up (Django is set up here)."""
    from bench import machine, plain, report
    from bench.context import Context, Sizes
    from bench.figures import measure as figures

    log = directory / "bench.log"
    environment.log_to_file(log)
    environment.quiet_rq()
    info = machine.describe(plain.client())
    ctx = Context(
        Sizes.of(args.quick),
        directory,
        chart=DOCS / f"throughput-by-workers{_suffix(args.quick)}.svg",
        screens_chart=DOCS / f"render-by-records{_suffix(args.quick)}.png",
    )
    results = figures(ctx, args.only or list(NAMES))
    mode = "quick" if args.quick else "full"
    if args.only:
        mode += f", only {','.join(args.only)}"
    print(report.text(mode, info, results))
    output = output_path(args)
    if output is not None:
        report.write(output, report.markdown(mode, info, results))
    for line in environment.log_problems(log):
        print(f"logged: {line}")
    for line in environment.log_problems_in(directory, exclude=log):
        print(f"logged by a process: {line}")
    print(f"\nwritten: {output or '(no markdown: partial run without --output)'}")


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    with tempfile.TemporaryDirectory(prefix="bench-") as name:
        directory = Path(name)
        server = environment.start_server(directory)
        try:
            environment.setup_django(directory, server.url)
            measure(directory, args)
        finally:
            from django.db import connections

            connections.close_all()
            server.stop()


if __name__ == "__main__":
    main()
