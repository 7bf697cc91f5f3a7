"""The sizes of a full run (issue 9) and of a quick one (CI, about 6 minutes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    #: SIGKILL storm: jobs to drain, workers to kill.
    kill_jobs: int
    kills: int
    #: Redis SIGKILLed with AOF: jobs submitted one by one, kills among them.
    redis_kill_jobs: int
    redis_kills: int
    #: Seconds Redis, and then the database, stay down under load.
    outage: float
    #: Jobs waiting when the database stops (the work that keeps running).
    database_backlog: int
    #: Jobs whose attempts fail at random.
    flaky_jobs: int
    #: Random submissions over the API, the form and the CLI together, and
    #: how many of the CLI's also run as real `manage.py` processes.
    bad_inputs: int
    cli_processes: int
    #: Redis primary SIGKILLed, replica promoted by Sentinel: jobs submitted.
    failover_jobs: int = 2000
    #: Worker hosts (network namespaces, one worker each) and the jobs they
    #: run while one host's link is cut.
    hosts: int = 4
    host_jobs: int = 1000

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                kill_jobs=300,
                kills=5,
                redis_kill_jobs=400,
                redis_kills=1,
                outage=5.0,
                database_backlog=300,
                flaky_jobs=500,
                bad_inputs=300,
                cli_processes=3,
                failover_jobs=300,
                hosts=3,
                host_jobs=150,
            )
        return cls(
            kill_jobs=2000,
            kills=50,
            redis_kill_jobs=5000,
            redis_kills=3,
            outage=20.0,
            database_backlog=1500,
            flaky_jobs=10_000,
            bad_inputs=1000,
            cli_processes=10,
        )
