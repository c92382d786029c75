"""Logging set-up: plain lines or one JSON object per line; never a secret."""

from __future__ import annotations

import json
import logging
import sys

#: Record attributes copied into JSON lines when present.
CONTEXT_FIELDS = ("task_id", "attempt", "server_id", "version")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(as_json: bool, level: int = logging.INFO) -> None:
    """Configure the ``taskfleet`` logger once per process."""
    logger = logging.getLogger("taskfleet")
    if getattr(logger, "_taskfleet_configured", False):
        return
    # The process's real stderr: a Celery worker replaces sys.stderr with a proxy that
    # would re-log every line as a WARNING with its own prefix (breaking JSON lines).
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger._taskfleet_configured = True  # type: ignore[attr-defined]
