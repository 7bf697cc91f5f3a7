"""Run the chaos scenarios and write the report (see the package docstring)."""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from bench import environment
from bench.chaos.load import one_line
from bench.chaos.outcome import Outcome, report
from bench.chaos.postgres import PrivatePostgres
from bench.chaos.sizes import Sizes
from console.localredis import LocalRedis
from jobs.backend import connect

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAMES = (
    "kills",
    "kills-slots",
    "kills-fork-slots",
    "kills-process-slots",
    "redis-kill",
    "redis-outage",
    "sentinel-failover",
    "sentinel-cut",
    "database-outage",
    "flaky",
    "bad-input",
    "host-cut",
)
log = logging.getLogger("bench.chaos")


def scenarios(
    directory: Path,
    redis: LocalRedis,
    postgres: PrivatePostgres,
    sizes: Sizes,
    seed: int,
) -> dict[str, Callable[[], Outcome]]:
    from bench.chaos.bad_input import bad_input
    from bench.chaos.database_outage import database_outage
    from bench.chaos.flaky import random_failures
    from bench.chaos.host_cut import host_cut
    from bench.chaos.kill_storm import FORK_SLOTS, PROCESS_SLOTS, SLOTS, kill_storm
    from bench.chaos.redis_faults import redis_kill, redis_outage
    from bench.chaos.sentinel_failover import CUT_BEFORE_KILL, sentinel_failover

    return {
        "kills": lambda: kill_storm(directory, sizes, random.Random(seed)),
        "kills-slots": lambda: kill_storm(directory, sizes, random.Random(seed), SLOTS),
        "kills-fork-slots": lambda: kill_storm(
            directory, sizes, random.Random(seed), FORK_SLOTS
        ),
        "kills-process-slots": lambda: kill_storm(
            directory, sizes, random.Random(seed), PROCESS_SLOTS
        ),
        "redis-kill": lambda: redis_kill(directory, redis, sizes),
        "redis-outage": lambda: redis_outage(directory, redis, sizes),
        "sentinel-failover": lambda: sentinel_failover(directory, sizes),
        "sentinel-cut": lambda: sentinel_failover(directory, sizes, CUT_BEFORE_KILL),
        "database-outage": lambda: database_outage(directory, postgres, sizes),
        "flaky": lambda: random_failures(directory, sizes),
        "bad-input": lambda: bad_input(directory, sizes, random.Random(seed)),
        "host-cut": lambda: host_cut(directory, redis, postgres, sizes),
    }


def run_one(name: str, scenario: Callable[[], Outcome]) -> Outcome:
    """A scenario that crashes is a failed scenario; the others still run."""
    from bench.reset import reset

    began = time.monotonic()
    try:
        reset()
        outcome = scenario()
    except Exception as exc:  # noqa: BLE001 - reported as the scenario's failure
        log.exception("scenario crashed", extra={"scenario": name})
        outcome = Outcome(f"{name} (crashed)")
        outcome.check(f"ran to the end ({one_line(exc)})", False)
    outcome.seconds = time.monotonic() - began
    return outcome


def intro(seed: int, postgres: PrivatePostgres) -> list[str]:
    from bench.machine import cpu_model, server_version

    return [
        "Every run starts from nothing in a new temporary directory: its own"
        " Redis-compatible server (AOF) and its own PostgreSQL instance on free"
        " loopback ports, real `manage.py rqworker` processes (forking, with RQ's"
        " scheduler) and a real `manage.py jobs monitor`. Regenerate with"
        " `make chaos` (full sizes) or `make chaos-quick` (CI sizes).",
        "",
        f"- machine: {cpu_model()}, shared with other work (times are noisy)",
        f"- servers: {server_version(connect.connection())}, PostgreSQL"
        f" {postgres.version()}",
        f"- random seed: {seed} (`python -m bench.chaos --seed {seed}` replays it)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--quick", action="store_true", help="CI sizes")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="these scenarios")
    parser.add_argument("--seed", type=int, help="replay a run's random choices")
    args = parser.parse_args()
    # Served from the build, not from var/static: `collectstatic` is not run here.
    warnings.filterwarnings("ignore", message="No directory at")
    sizes = Sizes.of(args.quick)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    directory = Path(tempfile.mkdtemp(prefix="chaos-"))
    print(f"chaos: working in {directory}, seed {seed}", flush=True)
    postgres = PrivatePostgres.create(directory)
    postgres.start()
    server = environment.start_server(directory)
    try:
        postgres.create_database()
        environment.setup_django(directory, server.url, database_url=postgres.url)
        environment.log_to_file(directory / "chaos.log")
        chosen = scenarios(directory, server, postgres, sizes, seed)
        outcomes = []
        for name in args.only or NAMES:
            outcome = run_one(name, chosen[name])
            outcomes.append(outcome)
            print(outcome.line(), flush=True)
        if args.only:
            print("report not written: not every scenario ran (--only)")
        else:
            target = DOCS / ("resilience-quick.md" if args.quick else "resilience.md")
            target.write_text(report(outcomes, args.quick, intro(seed, postgres)))
            print(f"written: {target}")
        failed = [o.name for o in outcomes if o.result == "FAIL"]
        skipped = [o.name for o in outcomes if o.skipped]
        passed = len(outcomes) - len(failed) - len(skipped)
        print(
            f"chaos: {passed} of {len(outcomes)} passed"
            + (f", {len(skipped)} skipped" if skipped else "")
        )
        return 1 if failed else 0
    finally:
        from django.db import connections

        connections.close_all()
        server.stop()
        if postgres.running():
            postgres.stop()
        shutil.rmtree(postgres.data, ignore_errors=True)  # logs stay


if __name__ == "__main__":
    sys.exit(main())
