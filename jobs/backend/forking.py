"""Process tricks for the worker and its job processes: a good parent for forks,
a job process that dies with its worker and never touches the worker's sockets."""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import signal
import time
from functools import cache
from typing import Any

from django.db import connections as db_connections

from jobs.backend import queueing

#: Resident size is read at most this often (every heartbeat asks for it).
RSS_EVERY = 1.0


_rss: list[float] = [0.0, 0.0]  # [read at (monotonic), kB]


def resident_kb() -> int:
    """Resident set size of this process (not the peak), at most RSS_EVERY
    seconds old."""
    moment = time.monotonic()
    if moment - _rss[0] >= RSS_EVERY or not _rss[1]:
        try:
            with open("/proc/self/statm") as statm:
                pages = int(statm.read().split()[1])
            _rss[:] = [moment, pages * os.sysconf("SC_PAGE_SIZE") // 1024]
        except (OSError, ValueError, IndexError):
            return 0
    return int(_rss[1])


#: The job processes' proportional memory is read at most this often: each
#: read walks their page tables (/proc/PID/smaps_rollup).
JOB_PROCESSES_EVERY = 10.0

_job_processes: list[float] = [-JOB_PROCESSES_EVERY, 0.0, 0.0]  # [at, count, kB]


def job_processes_kb(pids: set[int]) -> tuple[int, int]:
    """(how many, their proportional set size in kB, PSS) of these job
    processes, at most JOB_PROCESSES_EVERY seconds old. PSS, not RSS: the
    pages a job process shares with its worker since the fork count once,
    split between them, where RSS would count them in every process."""
    if not pids:
        return 0, 0
    moment = time.monotonic()
    if moment - _job_processes[0] >= JOB_PROCESSES_EVERY:
        sizes = [kb for kb in map(_pss_kb, pids) if kb]
        _job_processes[:] = [moment, len(sizes), sum(sizes)]
    return int(_job_processes[1]), int(_job_processes[2])


def _pss_kb(pid: int) -> int:
    """A process's proportional set size in kB; 0 once it is gone (or
    /proc does not say: not Linux, or a kernel older than 4.14)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


@cache
def _libc() -> Any:
    """glibc, loaded once in the worker (job processes inherit it); None
    where there is none."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return None


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the worker) dies, so
    a job never runs on without the worker that heartbeats it."""
    parent = os.getppid()
    libc = _libc()
    if libc is None:  # pragma: no cover - not Linux
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1


#: Database connections inherited across fork, kept referenced (never closed,
#: never garbage-collected) so the job process cannot send a disconnect on
#: the parent's socket; the job opens its own.
_inherited_db: list[Any] = []


def forget_inherited_db_connections() -> None:
    for conn in db_connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited_db.append(conn.connection)
            conn.connection = None


def prepare_to_fork() -> None:
    """Make this process a good parent for job processes.

    The task runner is imported here, once: RQ would otherwise import it
    afresh in every forked job (about 2 ms a job). Then what start-up freed
    is handed back, and the objects that remain are taken out of the garbage
    collector's reach: a collection in a job would otherwise walk, and so
    copy page by page, the whole inherited heap.
    """
    global _prepared_in
    if _prepared_in is not None:
        # An ancestor (the pool's parent) froze the heap before it forked us:
        # collecting or trimming again would write to, and so un-share, the
        # pages it left shared. Only what this process made since is frozen.
        gc.freeze()
        return
    importlib.import_module(queueing.RUNNER.rpartition(".")[0])
    gc.collect()
    gc.freeze()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    _prepared_in = os.getpid()


#: The pid of the process that ran prepare_to_fork (inherited by its forks).
_prepared_in: int | None = None
