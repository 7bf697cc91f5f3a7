"""A forked job process's Redis connection, opened by its worker before the
fork (issue 19: no new connection, no AUTH, per job).

redis-py's pool forgets every connection in a forked child (its `_checkpid`),
so each job process used to connect and authenticate afresh. The worker now
keeps spare "job connections" (Spares: at most one per running job process),
connected and authenticated, that it never uses itself. A job process adopts
the one it was lent as the only connection of its pool (`adopt`), so the
worker's client, RQ's bookkeeping and `connect.connection()` all use it.

The socket is shared with the worker, so a spare is lent to one job process
at a time, and the worker takes it back only when that process

- exited with status 0,
- vouched for it as it ended (`vouch`: idle in its pool, never reconnected,
  so no request is left unanswered on it), in a byte of shared memory, and
- left nothing readable on it (no stray reply, no end of stream).

Otherwise the worker shuts the socket down (for every process that holds a
copy) and the next job gets a new spare. A job process that cannot vouch for
its connection shuts it down itself before it exits.

What a job changes in its connection's server-side state (SELECT, CLIENT
SETNAME, CLIENT TRACKING, through the worker's client or connect.connection())
would reach the jobs after it; the app changes none of it. A job that ends its
own process with os._exit(0) never vouches: its connection is not reused.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.sentinel import SentinelManagedConnection

from jobs.backend import connect

log = logging.getLogger("jobs.worker")

#: After a spare could not be opened, the worker does not try again for this
#: long (seconds): an unreachable Redis must not hold every fork up for a
#: connect timeout; the job processes connect by themselves meanwhile.
SPARE_RETRY = 2.0


@dataclass(eq=False)
class Spare:
    """A connected job connection and its "vouched for" byte, shared with the
    job process it is lent to (a MAP_SHARED anonymous page)."""

    conn: Any
    vouched: mmap.mmap = field(default_factory=lambda: mmap.mmap(-1, 1))
    #: The socket the connection had when it was lent (a job process that
    #: reconnected has another one: not the worker's to reuse).
    sock: Any = None


def adoptable(client: Any) -> bool:
    """Can a job process adopt a connection into this client's pool? redis-py's
    plain ConnectionPool (also the Sentinel one), not the blocking one."""
    pool = getattr(client, "connection_pool", None)
    return (
        isinstance(pool, redis.ConnectionPool)
        and not isinstance(pool, redis.BlockingConnectionPool)
        and isinstance(getattr(pool, "_available_connections", None), list)
    )


class Spares:
    """The worker's idle job connections (only the worker's main thread uses
    this). Never used for a command by the worker."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._enabled = adoptable(client)
        self._idle: list[Spare] = []
        self._failed_at = -SPARE_RETRY

    def take(self) -> Spare | None:
        """A quiet idle spare, else a new one; None if Redis cannot be
        reached now (the job process then connects by itself, as before)."""
        if not self._enabled:
            return None
        while self._idle:
            spare = self._idle.pop()
            if _quiet(spare.conn):
                return _lend(spare)
            _shut(spare.conn)
        if time.monotonic() - self._failed_at < SPARE_RETRY:
            return None
        conn = self._client.connection_pool.make_connection()
        try:
            _connect_once(conn)
        except (redis.RedisError, OSError) as exc:
            log.debug("no spare job connection", extra={"error": str(exc)})
            self._failed_at = time.monotonic()
            _shut(conn)
            return None
        # Never a shutdown by redis-py in the worker (its disconnect shuts a
        # socket down only in the process whose pid the connection carries).
        conn.pid = 0
        return _lend(Spare(conn))

    def prime(self) -> None:
        """One spare ready before the first job (a worker starting up)."""
        if self._enabled and not self._idle:
            spare = self.take()
            if spare is not None:
                self._idle.append(spare)

    def give_back(self, spare: Spare | None, status: int | None) -> None:
        """The job process that had `spare` has been reaped with wait status
        `status` (None: not known to have ended)."""
        if spare is None:
            return
        if status is None:
            _drop(spare.conn)  # it may still run: its copy stays its own
            return
        if status == 0 and spare.vouched[0] == 1 and _quiet(spare.conn):
            # Its last exchange was as it ended (its outcome): no health-check
            # PING is due before the next job's first command.
            spare.conn.next_health_check = (
                time.monotonic() + spare.conn.health_check_interval
            )
            self._idle.append(spare)
            return
        _shut(spare.conn)

    def forget(self) -> None:
        """In a job process: the worker's idle spares are not its own (their
        sockets are closed here, not shut down)."""
        for spare in self._idle:
            _drop(spare.conn)
        self._idle = []


def _connect_once(conn: Any) -> None:
    """Connect (and authenticate) with one attempt, no retries: this runs
    in the worker before a fork. Through Sentinel, to the primary the
    sentinels name now."""
    if isinstance(conn, SentinelManagedConnection):
        conn.connect_to(conn.connection_pool.get_master_address())
    else:
        conn.connect_check_health(check_health=True, retry_socket_connect=False)


def _lend(spare: Spare) -> Spare:
    spare.vouched[0] = 0
    spare.sock = spare.conn._sock
    return spare


def _quiet(conn: Any) -> bool:
    """Connected, with nothing to read and no hang-up, looked at without
    reading (the socket is shared with job processes)."""
    sock = conn._sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _shut(conn: Any) -> None:
    """End the connection for every process holding a copy of its socket."""
    sock = conn._sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    _drop(conn)


def _drop(conn: Any) -> None:
    """Close this process's copy of the socket, sending nothing."""
    conn.pid = 0  # redis-py's disconnect: no shutdown in this process
    with contextlib.suppress(Exception):
        conn.disconnect()


# -- in the job process --------------------------------------------------------

#: (the pool the spare was adopted into, the spare), in a job process.
_adopted: tuple[Any, Spare] | None = None


def adopt(client: Any, spare: Spare) -> None:
    """Make `spare` the only connection of `client`'s pool in this (just
    forked) job process, and `client` this process's connect.connection()."""
    global _adopted
    pool = client.connection_pool
    pool.reset()  # what redis-py does at its first use after a fork
    if isinstance(spare.conn, SentinelManagedConnection):
        # The primary it is connected to: reset() forgot it, and the pool
        # keeps only a connection to the primary it knows (owns_connection):
        # it would close this one at its first release. A primary the
        # sentinels name later still drops it (the worker then finds its
        # socket shut down).
        pool.proxy.master_address = (spare.conn.host, spare.conn.port)
    spare.conn.pid = os.getpid()  # ours now: redis-py's pool keeps it
    pool._available_connections.append(spare.conn)
    _adopted = (pool, spare)
    connect.use_in_this_process(client)


def vouch(client: Any) -> None:
    """As the job process ends: tell the worker its connection can serve the
    next job (idle in the pool, on the socket it was lent), or shut it down."""
    global _adopted
    if _adopted is None:
        return
    pool, spare = _adopted
    _adopted = None
    conn = spare.conn
    clean = (
        client.connection_pool is pool
        and conn._sock is not None
        and conn._sock is spare.sock
        and any(c is conn for c in pool._available_connections)
    )
    if clean:
        spare.vouched[0] = 1
    else:
        _shut(conn)
