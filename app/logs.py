"""Logging set-up: plain lines or one JSON object per line; never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys

#: Record attributes copied into JSON lines when present.
CONTEXT_FIELDS = ("task_id", "attempt", "server_id", "version")
#: The plain line format: one record, one line.
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Characters that would end, hide or rewrite a line of text: C0 and C1 controls (CR,
#: LF, ESC of terminal sequences...), the Unicode line and paragraph separators, and
#: lone surrogates (which a UTF-8 stream cannot write at all).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``,
    ``\\x1b``): what clients and backends send (a task type, a capability, an error)
    reaches log messages, and must not forge or hide lines of a plain-text log."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


class PlainFormatter(logging.Formatter):
    """Plain lines, one per record: the message's control characters escaped. (A
    traceback, which the formatter itself appends, keeps its lines.)"""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        shown = logging.makeLogRecord(record.__dict__)
        shown.message = escape_controls(record.message)
        return super().formatMessage(shown)


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


def configure_logging(as_json: bool, level: int | str = logging.INFO) -> None:
    """Configure the ``taskfleet`` logger once per process."""
    logger = logging.getLogger("taskfleet")
    if getattr(logger, "_taskfleet_configured", False):
        return
    # The process's real stderr: a Celery worker replaces sys.stderr with a proxy that
    # would re-log every line as a WARNING with its own prefix (breaking JSON lines).
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(JsonFormatter() if as_json else PlainFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger._taskfleet_configured = True  # type: ignore[attr-defined]
