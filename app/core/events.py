"""A task's events as clients see them: names, ids, data, and the SSE text format.

Ids are rebuilt from the task's version, so the database can give the same ones Redis
did: the transition to version ``v`` is event ``v-0``; the chunks a backend streams
while the task is at version ``v`` are ``v-1``, ``v-2``, ...; the ``result`` that ends a
finished task's stream is ``v-r`` (after everything of its version). Ids compare as
(version, sequence), ``r`` counting as infinite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.core.states import FAILED_OUTCOMES, TaskStatus

#: Entries a task's Redis stream keeps at most (XADD MAXLEN ~): a streaming LLM answer is
#: a few thousand tokens; older chunks of a longer one are dropped, never statuses the
#: database cannot give back.
STREAM_MAXLEN = 10_000
#: Seconds of silence after which an open stream sends a comment line, so proxies and
#: load balancers (often 30-60 s idle timeouts) keep it open.
KEEPALIVE_S = 15.0

STATUS, PROGRESS, CHUNK, RESULT, JOB = "status", "progress", "chunk", "result", "job"

#: The sequence of a ``result`` event: after every chunk of its version.
RESULT_SEQ = 1 << 62
_ID = re.compile(r"^([0-9]{1,15})-([0-9]{1,15}|r)$")  # ASCII digits: \d takes "\u0661" too


@dataclass(frozen=True, order=True)
class EventId:
    """``<version>-<seq>``: seq 0 is the transition, 1.. the chunks, ``r`` the result."""

    version: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> EventId:
        """The id in ``text``; raises ``ValueError`` for anything this module did not make."""
        found = _ID.match(text.strip())
        if found is None:
            raise ValueError(f"not an event id: {text[:40]!r}")
        seq = found.group(2)
        return cls(int(found.group(1)), RESULT_SEQ if seq == "r" else int(seq))

    def __str__(self) -> str:
        return f"{self.version}-{'r' if self.seq == RESULT_SEQ else self.seq}"


#: Before every event: resuming after it replays the whole stream.
START = EventId(0, 0)


@dataclass(frozen=True)
class Event:
    """One event of a stream: its id, name and JSON data."""

    id: EventId
    name: str
    data: Any = field(compare=False)


def error_shown(status: str, attempt_outcome: str | None, error: str | None) -> str | None:
    """The error a status event carries: the task's error when the transition ended an
    attempt as failed (a retry follows, or not) or the task as FAILED/TIMEOUT. The same
    rule is in task_transition.lua (the tests hold both to it)."""
    failed = attempt_outcome in {o.value for o in FAILED_OUTCOMES}
    if failed or status in (TaskStatus.FAILED.value, TaskStatus.TIMEOUT.value):
        return error
    return None


def status_data(
    status: str, attempt: int, server_id: str | None, at_ms: int, error: str | None = None
) -> dict[str, Any]:
    """A ``status`` event's data."""
    data: dict[str, Any] = {"status": status, "attempt": attempt, "serverId": server_id, "at": at_ms}
    if error is not None:
        data["error"] = error
    return data


def transition_event(
    version: int,
    from_status: str | None,
    to_status: str,
    attempt: int,
    server_id: str | None,
    at_ms: int,
    progress: int | None,
    previous_progress: int | None,
    error: str | None = None,
) -> Event | None:
    """The event of the transition to ``version``: ``progress`` for a PROCESSING ->
    PROCESSING update whose progress changed, none for one that did not, ``status`` for
    every other transition (``error``: the error it shows, see ``error_shown``)."""
    event_id = EventId(version, 0)
    if from_status == to_status == TaskStatus.PROCESSING.value:
        if progress is None or progress == previous_progress:
            return None
        return Event(event_id, PROGRESS, {"progress": progress})
    return Event(event_id, STATUS, status_data(to_status, attempt, server_id, at_ms, error))


def chunk_data(raw: str) -> dict[str, Any]:
    """A ``chunk`` event's data from the JSON text a backend sent."""
    return {"data": json.loads(raw)}


def format_sse(event: Event) -> str:
    """``event`` as the text of one SSE event (data on one line: it is compact JSON)."""
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n"


KEEPALIVE = ": keep-alive\n\n"


@dataclass
class SSEMessage:
    """One event read from a ``text/event-stream`` body."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class SSEParser:
    """Reads SSE events from bytes as they arrive (WHATWG HTML, 9.2.6): lines end in
    CRLF, LF or CR; ``data`` lines join with LF; a blank line dispatches an event that has
    data; comments and unknown fields are ignored; an event not ended by a blank line
    when the body ends is dropped."""

    def __init__(self) -> None:
        self._buffer = b""
        self._current = SSEMessage()
        self._has_data = False
        self._lines: list[str] = []
        self._data_chars = 0

    @property
    def pending_bytes(self) -> int:
        """About the size of the event being read (its data so far and the line not yet
        ended): what a reader bounds, since an event can be sent without end."""
        return len(self._buffer) + self._data_chars

    def feed(self, data: bytes) -> Iterator[SSEMessage]:
        """The events completed by ``data``."""
        self._buffer += data
        while True:
            found = re.search(rb"\r\n|\r|\n", self._buffer)
            if found is None:
                return
            if found.group() == b"\r" and found.end() == len(self._buffer):
                return  # a CR at the end may be the first half of a CRLF still to come
            line, self._buffer = self._buffer[: found.start()], self._buffer[found.end() :]
            message = self._line(line.decode("utf-8", "replace"))
            if message is not None:
                yield message

    def _line(self, line: str) -> SSEMessage | None:
        if line == "":
            current, has_data, lines = self._current, self._has_data, self._lines
            self._current, self._has_data, self._lines = SSEMessage(), False, []
            self._data_chars = 0
            if not has_data:
                return None
            current.data = "\n".join(lines)
            return current
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._has_data = True
            self._lines.append(value)
            self._data_chars += len(value) + 1
        elif name == "event":
            self._current.event = value or "message"
        elif name == "id" and "\x00" not in value:
            self._current.id = value
        return None


def sse_payload(message: SSEMessage) -> Any:
    """An SSE event's data as JSON when it is, else the text itself."""
    try:
        return json.loads(message.data)
    except ValueError:
        return message.data
