"""PSS per pool worker of `manage.py rqworker-pool` (issue 19, the freeze).

Starts a private Redis-compatible server, then `rqworker-pool default
--num-workers N`, waits until the N workers are registered and idle, lets
them settle and reads /proc/PID/smaps_rollup of the whole process tree.

    DEBUG=1 .venv/bin/python scripts/pool_pss.py 8
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.pss import pss_kb, tree, tree_kb  # noqa: E402
from console.localredis import LocalRedis, free_port  # noqa: E402


def registered(url: str) -> int:
    import redis

    client: Any = redis.Redis.from_url(url)
    return sum(
        1
        for key in client.smembers("rq:workers")
        if client.hget(key, "state") == b"idle"
    )


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = LocalRedis(directory=Path(directory), port=free_port()).start()
        env = dict(os.environ, REDIS_URL=server.url, DEBUG="1")
        started = time.monotonic()
        pool = subprocess.Popen(
            [
                sys.executable,
                str(BASE_DIR / "manage.py"),
                "rqworker-pool",
                "default",
                "--num-workers",
                str(count),
                "-v",
                "0",
            ],
            env=env,
            cwd=BASE_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while registered(server.url) < count:
                if pool.poll() is not None:
                    raise SystemExit("the pool exited")
                time.sleep(0.1)
            ready = time.monotonic() - started
            time.sleep(3)
            pss, rss, processes = tree_kb(pool.pid)
            parent = pss_kb(pool.pid)
            workers = [p for p in tree(pool.pid) if p != pool.pid]
            print(
                f"pool of {count}: start-up {ready:.1f} s, {processes} processes, "
                f"tree PSS {pss / 1024:.1f} MiB (RSS {rss / 1024:.1f} MiB), parent "
                f"PSS {parent / 1024:.1f} MiB, per pool worker "
                f"{(pss - parent) / 1024 / max(1, len(workers)):.1f} MiB PSS "
                f"(tree PSS / workers: {pss / 1024 / count:.1f} MiB)"
            )
        finally:
            os.killpg(pool.pid, signal.SIGTERM)
            try:
                pool.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(pool.pid, signal.SIGKILL)
                pool.wait()
            server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
