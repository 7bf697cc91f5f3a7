"""Structured logging: one JSON object per line, with the process name."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
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
