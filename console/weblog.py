"""gunicorn's own log lines (start-up, worker exits, the access log) as JSON.

gunicorn formats them as plain text with handlers of its own, which do not
propagate to the project's logging. The image selects this class
(`GUNICORN_CMD_ARGS` in the Dockerfile); only the web imports gunicorn.
"""

from __future__ import annotations

from typing import Any

from gunicorn import glogging

from console.logs import JsonFormatter


class JsonLogger(glogging.Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(JsonFormatter())
