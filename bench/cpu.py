"""Figure 14: useful CPU of CPU-bound jobs on 2 cores with 2 slots (issue 19).

N busy-loop jobs of M ms on two slots: ours is one `rqworker default
--concurrency 2 --execution process` with the monitor process recording the
history; plain RQ is `rq worker-pool -n 2`; Celery is prefork with two
children. Useful CPU = jobs x M / wall / 2 cores; the rest of the two cores
went to the worker's own work (dequeue, bookkeeping, forks), the monitor,
Redis, or another program on the machine. The CPU each side's processes and
the Redis server spent is read from /proc, so the overhead per job shows.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from rq.utils import utcparse

from bench import celery_app, drain, plain, procs
from bench.context import Context
from bench.pss import tree
from bench.reset import reset
from bench.results import progress
from bench.table import Row
from jobs.backend import connect, live, queueing
from jobs.backend.client import ClientPipeline
from jobs.models import JobRecord
from jobs.services import SubmitRequest, job_submit_many

CORES = 2
SLOTS = 2
#: Job lengths (ms): the 50 ms goal is absolute, the 10 ms one Celery's.
LENGTHS = (50, 10)
GOAL = 90.0
#: Untimed jobs first, so every side has its job processes forked and warm.
WARM_UP = 2 * SLOTS
POLL = 0.02
TICKS = os.sysconf("SC_CLK_TCK")
NOTE = (
    "14: N jobs that each busy-loop until their thread has had M ms of CPU "
    "(ours: demo.cpu with clock=cpu; plain RQ and Celery: bench.noop.cpu, "
    "the same loop: on a shared machine another program's CPU then "
    "lengthens the job rather than shrinking its work) on 2 slots of a "
    "2-core machine: "
    "ours is one `rqworker default --concurrency 2 --execution process` "
    "worker with the monitor process (`jobs monitor`) recording the history, "
    "plain RQ is `rq worker-pool plain -n 2` (a job process forked per job), "
    "Celery is `celery worker --pool=prefork --concurrency=2`; every side's "
    "processes log at WARNING (no line per job). The workers "
    "of one side start once for both lengths and first run 4 untimed 1 ms "
    "jobs. Each side runs 3 rounds (quick: 1), the sides in turn; the round "
    "with the median useful CPU is shown, every round's in the details. "
    "Wall = from the first job put into Redis (ours: the moment the "
    "commit that submitted them all starts sending them to Redis; Celery: "
    "the RENAME that releases its tasks; plain RQ: its enqueue pipeline) to "
    "the last job's end (RQ's ended_at, Celery's date_done). Useful CPU = "
    "N x M / wall / 2 cores. CPU per job = the "
    "user+system time of the side's processes (the worker's tree, its reaped "
    "job processes, and for ours the monitor) over the run / N: the job's M "
    "ms plus the side's overhead; Redis's own CPU apart. Jobs' share = N x "
    "M / (that CPU + Redis's): the figure another program on the machine "
    "moves least. Useful CPU of the cores left = N x M / (2 cores x the "
    "measurement's span, first job in to history recorded, less the CPU "
    "every other program spent meanwhile, the bench's own polling "
    "included). Cores busy = "
    "/proc/stat over the run, the whole machine (other programs too). The "
    "history must be recorded (every job succeeded in the database) for the "
    "run to count, and the CPU is counted until it is (how long after the "
    "last job's end: in the details)."
)


@dataclass(frozen=True)
class Run:
    ms: int
    jobs: int
    seconds: float
    done: int
    cpu_ms_per_job: float  # the side's processes
    monitor_ms_per_job: float  # ours only
    redis_ms_per_job: float
    busy: float  # % of the machine's cores, all programs
    recorded_after: float = 0.0  # ours: history complete this long after
    #: Core-seconds of the measurement left to this side: its span x cores
    #: less what every other program spent meanwhile.
    available: float = 0.0

    @property
    def useful(self) -> float:
        return 100.0 * self.jobs * self.ms / 1000 / self.seconds / CORES

    @property
    def useful_available(self) -> float:
        """Useful CPU of the cores other programs left this side (%)."""
        return 100.0 * self.jobs * self.ms / 1000 / self.available

    @property
    def share(self) -> float:
        """The jobs' part of the CPU the side and Redis spent (%)."""
        return 100.0 * self.ms / (self.cpu_ms_per_job + self.redis_ms_per_job)


# -- CPU counters ----------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes and their reaped children."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(f"/proc/{pid}/stat").read_text()
            fields = text.rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])  # utime .. cstime
    return total / TICKS


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all cores since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Meter:
    """CPU of some process trees, Redis's and the machine's, over a block."""

    roots: list[int]
    redis_pid: int
    spent: float = 0.0
    redis: float = 0.0
    busy: float = 0.0
    #: CPU seconds of every other program (the bench process included).
    others: float = 0.0
    seconds: float = 0.0
    per_root: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[Meter]:
        before = [cpu_seconds(tree(pid)) for pid in self.roots]
        redis_before = cpu_seconds([self.redis_pid])
        busy_before, total_before = machine_ticks()
        start = time.perf_counter()
        yield self
        self.seconds = time.perf_counter() - start
        after = [cpu_seconds(tree(pid)) for pid in self.roots]
        busy_after, total_after = machine_ticks()
        self.redis = cpu_seconds([self.redis_pid]) - redis_before
        self.per_root = [a - b for a, b in zip(after, before, strict=True)]
        self.spent = sum(self.per_root)
        self.busy = 100.0 * (busy_after - busy_before) / (total_after - total_before)
        busy_seconds = (busy_after - busy_before) / TICKS
        self.others = max(0.0, busy_seconds - self.spent - self.redis)


def _job(ms: int) -> dict[str, int | str]:
    """The job's arguments: `ms` of its own CPU time (see NOTE)."""
    return {"ms": ms, "clock": "cpu"}


# -- the sides ---------------------------------------------------------------


class Side:
    """How one side's workers start, get `jobs` jobs of `ms` and end them."""

    name = ""
    graceful = True

    def start(self, fleet: procs.Fleet) -> list[int]:
        raise NotImplementedError

    def push(self, jobs: int, ms: int) -> float:
        """Put the jobs into Redis; the time.time() they started to appear."""
        raise NotImplementedError

    def finished(self) -> int:
        raise NotImplementedError

    def last_end(self) -> float | None:
        """The time.time() the last finished job ended, if known."""
        raise NotImplementedError

    def recorded(self) -> int:
        return self.finished()


class Ours(Side):
    name = "ours"

    def start(self, fleet: procs.Fleet) -> list[int]:
        argv = [*procs.MANAGE, "rqworker", "default", "--concurrency", str(SLOTS)]
        worker = fleet.start("cpu-ours", [*argv, "--execution", "process", "-v", "0"])
        monitor = fleet.start("cpu-monitor", procs.monitor())
        procs.wait_idle(fleet, [worker])
        return [worker, monitor]

    def push(self, jobs: int, ms: int) -> float:
        """The records are written and committed as any submission; the clock
        starts as the commit's enqueue sends the jobs to Redis (one pipeline
        of guarded writes, built first), as Celery's starts at the RENAME
        that releases its tasks and plain RQ's at its enqueue pipeline: their
        producers' work is not timed either."""
        requests = [SubmitRequest(task="demo.cpu", payload=_job(ms))] * jobs
        with _first_put() as moments, transaction.atomic():
            job_submit_many(requests=requests)
            committing = time.time()
        return moments[0] if moments else committing

    def finished(self) -> int:
        return drain._registered(queueing.rq_queue("default"))

    def last_end(self) -> float | None:
        return _rq_last_end(queueing.rq_queue("default").finished_job_registry)

    def recorded(self) -> int:
        succeeded = JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED)
        return succeeded.count()


@contextlib.contextmanager
def _first_put() -> Iterator[list[float]]:
    """time.time() each time our enqueue sends its pipeline of guarded
    writes (EVALSHA, a job each) to Redis: built first, then sent at once."""
    moments: list[float] = []
    original = ClientPipeline.execute

    def timed(pipe: ClientPipeline, raise_on_error: bool = True) -> Any:
        if any(args[0] == "EVALSHA" for args, _options in pipe.command_stack):
            moments.append(time.time())
        return original(pipe, raise_on_error)

    ClientPipeline.execute = timed  # type: ignore[method-assign, assignment]
    try:
        yield moments
    finally:
        ClientPipeline.execute = original  # type: ignore[method-assign]


class Plain(Side):
    name = "plain"

    def start(self, fleet: procs.Fleet) -> list[int]:
        argv = [procs.RQ_CLI, "worker-pool", plain.QUEUE, "-n", str(SLOTS)]
        argv += ["--url", settings.REDIS_URL, "--logging-level", "WARNING"]
        argv += ["--serializer", "rq.serializers.JSONSerializer"]
        pid = fleet.start("cpu-plain", [*argv, "--path", str(procs.BASE_DIR)])

        def idle() -> bool:
            found = live.live_workers()
            return sum(1 for w in found if w.state == "idle") >= SLOTS

        fleet.wait_until(idle, 180)
        return [pid]

    def push(self, jobs: int, ms: int) -> float:
        queue = plain.queue()
        datas = [queue.prepare_data("bench.noop.cpu", kwargs=_job(ms))] * jobs
        start = time.time()
        plain.enqueue_many(queue, datas)
        return start

    def finished(self) -> int:
        return int(plain.queue().finished_job_registry.count)

    def last_end(self) -> float | None:
        return _rq_last_end(plain.queue().finished_job_registry)


class Celery(Side):
    name = "celery"
    #: An idle Celery worker's warm shutdown joins its pool for seconds.
    graceful = False

    def start(self, fleet: procs.Fleet) -> list[int]:
        argv = [procs.CELERY_CLI, "-A", "bench.celery_app", "worker"]
        argv += ["--pool=prefork", f"--concurrency={SLOTS}", "--loglevel=WARNING"]
        argv += ["--without-mingle", "-n", "cpu@%h"]
        pid = fleet.start("cpu-celery", argv, celery_app.urls(settings.REDIS_URL))
        celery_app.wait_ready(["cpu"], fleet.check_alive)
        return [pid]

    def push(self, jobs: int, ms: int) -> float:
        celery_app.fill(jobs, celery_app.cpu, _job(ms))
        start = time.time()
        celery_app.release()
        return start

    def finished(self) -> int:
        return celery_app.finished()

    def last_end(self) -> float | None:
        client = celery_app.app.backend.client
        keys = list(client.scan_iter("celery-task-meta-*", count=1000))
        ends = [_celery_end(raw) for raw in client.mget(keys)] if keys else []
        return max((e for e in ends if e is not None), default=None)


def _rq_last_end(registry: object) -> float | None:
    ids = registry.get_job_ids()  # type: ignore[attr-defined]
    with connect.connection().pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "ended_at")
        values = pipe.execute()
    ends = [utcparse(v.decode()).timestamp() for v in values if v]
    return max(ends, default=None)


def _celery_end(raw: bytes | None) -> float | None:
    import json

    if raw is None:
        return None
    done = json.loads(raw).get("date_done")
    if not done:
        return None
    moment = datetime.fromisoformat(done)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- measuring -----------------------------------------------------------------


def _batch(side: Side, fleet: procs.Fleet, meter: Meter, jobs: int, ms: int) -> Run:
    """Run `jobs` jobs of `ms` and wait for their history: the meter runs
    until it is recorded (the monitor's work is the jobs' too)."""
    finished, recorded = side.finished(), side.recorded()
    with meter.measuring():
        start = side.push(jobs, ms)
        seen = fleet.wait_until(
            lambda: side.finished() - finished >= jobs, 120 + jobs, POLL
        )
        with contextlib.suppress(TimeoutError):
            fleet.wait_until(lambda: side.recorded() - recorded >= jobs, 60, POLL)
        written = time.time()
    end = side.last_end() or seen
    monitor = meter.per_root[1] if len(meter.roots) > 1 else 0.0
    return Run(
        ms=ms,
        jobs=jobs,
        seconds=end - start,
        done=side.recorded() - recorded,
        cpu_ms_per_job=1000 * meter.spent / jobs,
        monitor_ms_per_job=1000 * monitor / jobs,
        redis_ms_per_job=1000 * meter.redis / jobs,
        busy=meter.busy,
        recorded_after=max(0.0, written - end),
        available=meter.seconds * CORES - meter.others,
    )


def measure(ctx: Context, side: Side, jobs: int) -> list[Run]:
    """Both job lengths on one start of the side's workers."""
    reset()
    redis_pid = int(plain.client().info("server")["process_id"])
    with procs.Fleet(ctx.directory, graceful=side.graceful, quiet=True) as fleet:
        roots = side.start(fleet)
        _batch(side, fleet, Meter(roots, redis_pid), WARM_UP, 1)
        meters = [Meter(roots, redis_pid) for _ in LENGTHS]
        return [
            _batch(side, fleet, meter, jobs, ms)
            for meter, ms in zip(meters, LENGTHS, strict=True)
        ]


SIDES = (Ours(), Plain(), Celery())


def figure(ctx: Context) -> None:
    """Each side `rounds` times, the sides taking turns (ours, plain RQ,
    Celery, ours, ...): a burst of another program's CPU lands on one
    round of one side, and the median round of each side is the one shown
    (every round's useful CPU is in the details)."""
    jobs, rounds = ctx.sizes.cpu_jobs, ctx.sizes.cpu_rounds
    found: dict[str, list[list[Run]]] = {side.name: [] for side in SIDES}
    for number in range(1, rounds + 1):
        for side in SIDES:
            progress(
                f"figure 14: {side.name}, {jobs} CPU-bound jobs of {LENGTHS} ms "
                f"(round {number} of {rounds})"
            )
            found[side.name].append(measure(ctx, side, jobs))
    for index in range(len(LENGTHS)):
        runs = {name: [r[index] for r in each] for name, each in found.items()}
        ours, base, celery = (median_run(runs[s.name]) for s in SIDES)
        ctx.results.rows += _rows(ours, base, celery)
        ctx.results.details.append(_detail(ours, base, celery))
        if rounds > 1:
            ctx.results.details.append(_spread(runs))


def median_run(runs: list[Run]) -> Run:
    """The round whose useful CPU is the median (the lower middle of an
    even number): one real round, all its figures consistent."""
    ordered = sorted(runs, key=lambda run: run.useful)
    return ordered[(len(ordered) - 1) // 2]


def _spread(runs: dict[str, list[Run]]) -> str:
    ms = next(iter(runs.values()))[0].ms
    sides = "; ".join(
        f"{name} " + ", ".join(f"{run.useful:.1f}" for run in each)
        for name, each in runs.items()
    )
    return f"14. {ms} ms, useful CPU of each round in turn (%): {sides}"


def _rows(ours: Run, base: Run, celery: Run) -> list[Row]:
    label = f"14. {ours.jobs} x {ours.ms} ms demo.cpu, 2 slots, 2 cores"
    if ours.ms >= 50:
        goal, met = f"> {GOAL:g} %", ours.useful > GOAL
    else:
        goal, met = ">= Celery prefork", ours.useful >= celery.useful
    return [
        Row(
            f"{label}, useful CPU (%)",
            ours.useful,
            base.useful,
            goal,
            met,
            1,
            celery=celery.useful,
        ),
        Row(
            f"{label}, useful CPU of the cores left by other programs (%)",
            ours.useful_available,
            base.useful_available,
            decimals=1,
            celery=celery.useful_available,
        ),
        Row(
            f"{label}, jobs' share of the CPU spent (%)",
            ours.share,
            base.share,
            decimals=1,
            celery=celery.share,
        ),
        Row(
            f"{label}, CPU per job (ms)",
            ours.cpu_ms_per_job,
            base.cpu_ms_per_job,
            decimals=2,
            celery=celery.cpu_ms_per_job,
        ),
        Row(
            f"{label}, every job done (history recorded)",
            float(ours.done),
            float(base.done),
            "all",
            ours.done == ours.jobs and base.done == base.jobs,
            required=True,
            celery=float(celery.done),
        ),
    ]


def _detail(ours: Run, base: Run, celery: Run) -> str:
    def side(name: str, run: Run) -> str:
        return (
            f"{name} {run.seconds:.2f} s, cores busy {run.busy:.0f} %, Redis "
            f"{run.redis_ms_per_job:.2f} ms CPU per job"
        )

    return (
        f"14. {ours.jobs} x {ours.ms} ms: {side('ours', ours)} (of its "
        f"{ours.cpu_ms_per_job:.2f} ms CPU per job, the monitor "
        f"{ours.monitor_ms_per_job:.2f} ms; history recorded "
        f"{ours.recorded_after:.2f} s after the last job's end); "
        f"{side('plain RQ', base)}; {side('Celery prefork', celery)}"
    )
