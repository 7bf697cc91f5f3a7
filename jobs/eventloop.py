"""One event loop per worker process for `async def` tasks (thread model).

A thread-model worker runs its async tasks as tasks of one loop, in a thread
of their own, so that N waiting coroutines cost N small objects, not N event
loops. Anywhere else (a forked job process, a test) a coroutine gets a loop of
its own for the job's duration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Awaitable
from typing import Any

#: The job thread waits in slices this long, so that an exception sent to it
#: (its timeout) is raised within a slice: a wait in C would never see it.
WAIT_SLICE = 0.25
_shared: dict[int, asyncio.AbstractEventLoop] = {}
_lock = threading.Lock()


def start() -> asyncio.AbstractEventLoop:
    """This process's shared loop, started on first use."""
    with _lock:
        loop = _shared.get(os.getpid())
        if loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="jobs-event-loop", daemon=True
            ).start()
            _shared.clear()  # a loop inherited across fork has no thread here
            _shared[os.getpid()] = loop
        return loop


def run(awaitable: Awaitable[Any]) -> Any:
    """Await `awaitable` from a job's thread: on the shared loop if this
    process has one, else on a loop of its own. The job's context variables
    (its progress reporter) go with it."""
    loop = _shared.get(os.getpid())
    if loop is None:
        return asyncio.run(_as_coroutine(awaitable))
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()
    tasks: list[asyncio.Task[Any]] = []

    def begin() -> None:
        task = loop.create_task(_as_coroutine(awaitable))
        tasks.append(task)
        task.add_done_callback(lambda t: _settle(t, done))

    loop.call_soon_threadsafe(begin, context=contextvars.copy_context())
    try:
        while True:
            try:
                return done.result(timeout=WAIT_SLICE)
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        # Timed out or stopped: the coroutine must not run on without its job.
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])
        raise


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _settle(task: asyncio.Task[Any], done: concurrent.futures.Future[Any]) -> None:
    if task.cancelled():
        done.set_exception(asyncio.CancelledError())
    elif task.exception() is not None:
        done.set_exception(task.exception())
    else:
        done.set_result(task.result())
