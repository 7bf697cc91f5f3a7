"""Structured logging: one JSON object per line, with the process name."""

from __future__ import annotations

import json
import logging
import logging.config
import multiprocessing
import multiprocessing.util
import os
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

#: LogRecord attributes that are not "extra" fields given by the caller.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def process_name() -> str:
    name = os.environ.get("PROCESS_NAME")
    if name:
        return name
    if os.path.basename(sys.argv[0]) == "gunicorn":
        return "web"  # its arguments name the application, not the process
    argv = sys.argv[1:3]
    return "-".join(argv) if argv else os.path.basename(sys.argv[0] or "python")


#: One encoder for every line (json.dumps with `default` builds one a call).
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON line; extra= fields become top-level keys.

    Workers write two lines a job: the process name is worked out once, when
    the first line is written (processes get it from their environment)."""

    _process: str | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._process is None:
            self._process = process_name()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "process": self._process,
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


_uncaught = logging.getLogger("console.uncaught")


def _log_uncaught(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: the traceback inside one JSON line, not 60 plain ones."""
    if issubclass(kind, KeyboardInterrupt):
        _uncaught.warning("interrupted")
        return
    _uncaught.critical("uncaught %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # as Python's own hook: a thread that exits is not an error
    _uncaught.critical(
        "uncaught %s in thread %s: %s",
        args.exc_type.__name__,
        args.thread.name if args.thread else "?",
        args.exc_value,
        exc_info=args.exc_value,  # carries its own traceback
    )


def _log_uncaught_in_child(_: object) -> None:
    """In a multiprocessing child (RQ's worker runs its scheduler in one):
    multiprocessing prints a dying child's traceback as plain text, so the
    child's run() is wrapped to log it instead and exit 1."""
    process = multiprocessing.current_process()
    run = process.run

    def run_and_log() -> None:
        try:
            run()
        except (Exception, KeyboardInterrupt):
            _uncaught.critical("process %s died", process.name, exc_info=True)
            raise SystemExit(1) from None

    process.run = run_and_log  # type: ignore[method-assign]


class _AfterFork:
    """multiprocessing keeps its after-fork callbacks by weak reference."""


_AFTER_FORK = _AfterFork()


def configure(config: dict[str, Any]) -> None:
    """Applies the logging configuration, and sends what Python itself would
    print as plain text (uncaught exceptions, in any thread or multiprocessing
    child, and warnings) through it, so every line a process writes is JSON."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    multiprocessing.util.register_after_fork(_AFTER_FORK, _log_uncaught_in_child)
