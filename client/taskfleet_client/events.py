"""A task's event stream (``GET /api/task/{id}/events``, server-sent events), without I/O:
the SSE line decoder, the events, how a stream is asked for and resumed, and the task
snapshots that status and progress events make. Both clients read the stream with these.

The server sends ``status`` ({status, attempt, serverId, at, error?}) on every
transition, ``progress`` ({progress}), ``chunk`` ({data}) for each piece of output a
backend streams, and ``result`` (the task, as ``GET /api/task/{id}`` returns it), after
which the stream ends. Every event has an id; reconnecting with ``Last-Event-ID`` resumes
after it with nothing lost and nothing repeated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from taskfleet_client.errors import NoEventStream, TransportError
from taskfleet_client.models import Task

STATUS, PROGRESS, CHUNK, RESULT = "status", "progress", "chunk", "result"
#: Seconds a read of an open stream may wait: the server sends a comment every 15 s of
#: silence, so four of those missed means the connection is gone.
READ_TIMEOUT_S = 60.0
#: Answers of the events route that mean "this server has no event stream" when the task
#: itself can be read: an older server, or a proxy that does not pass it.
NO_STREAM_STATUSES = frozenset({404, 405, 406, 501})


@dataclass(frozen=True)
class Event:
    """One event of a task's stream: its ``id`` (``<version>-<n>``), ``name`` (status,
    progress, chunk or result) and ``data`` (its JSON, decoded)."""

    id: str
    name: str
    data: Any

    @property
    def task(self) -> Task | None:
        """The final task, for a ``result`` event."""
        return Task(self.data) if self.name == RESULT and isinstance(self.data, dict) else None


class SSEDecoder:
    """SSE lines to events (the WHATWG rules, 9.2.6): a blank line ends an event that has
    data; ``data`` lines join with a newline; one space after the colon is dropped;
    comments (``:``) and unknown fields are ignored; the last id carries over to events
    without one. Lines come without their ending (``httpx``'s ``iter_lines``)."""

    def __init__(self) -> None:
        self.last_id = ""
        self._name = ""
        self._data: list[str] = []

    def line(self, line: str) -> tuple[str, str, str] | None:
        """The (id, name, data) the line completes, if it completes one."""
        if line == "":
            data, name = self._data, self._name or "message"
            self._data, self._name = [], ""
            return None if not data else (self.last_id, name, "\n".join(data))
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._name = value
        elif field == "id" and "\0" not in value:
            self.last_id = value
        return None


def decode(lines: Iterator[str]) -> Iterator[Event]:
    """The events in ``lines`` (for tests and small tools; the clients feed lines one by one)."""
    decoder = SSEDecoder()
    for line in lines:
        found = decoder.line(line)
        if found is not None:
            yield event_of(*found)


def event_of(event_id: str, name: str, data: str) -> Event:
    """An event from its decoded fields; data that is not JSON stays text."""
    try:
        value = json.loads(data)
    except ValueError:
        value = data
    return Event(event_id, name, value)


def path(task_id: str) -> str:
    """The stream's path below the API root."""
    return f"task/{quote(str(task_id), safe='')}/events"


def request_headers(last_event_id: str | None) -> dict[str, str]:
    """The headers of a (re)connection: resume after ``last_event_id`` when given."""
    found = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    return found | ({"Last-Event-ID": last_event_id} if last_event_id else {})


def is_event_stream(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "text/event-stream"


def no_stream(task_id: str, status: int) -> NoEventStream:
    return NoEventStream(f"no event stream for task {task_id} (HTTP {status})", status=status)


def stream_timeout(base: httpx.Timeout, deadline: float | None, now: float) -> httpx.Timeout:
    """The timeouts of one connection: ``base``, with reads bounded by the keep-alives
    (``READ_TIMEOUT_S``) and by what is left before ``deadline`` (a monotonic time)."""
    read = READ_TIMEOUT_S if deadline is None else max(0.01, min(READ_TIMEOUT_S, deadline - now))
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def dropped(task_id: str, tries: int) -> TransportError:
    return TransportError(f"the event stream of task {task_id} dropped {tries} times in a row")


def past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline


@dataclass(frozen=True)
class Reconnect:
    """After a dropped stream: try again ``tries`` times in a row (an event read in
    between resets the count), waiting ``first_s``, then twice as long each time."""

    tries: int = 5
    first_s: float = 0.25
    max_s: float = 4.0

    def delay_s(self, failures: int) -> float | None:
        """The wait before reconnection number ``failures`` (from 1); None: give up."""
        if failures > self.tries:
            return None
        return min(self.first_s * 2.0 ** (failures - 1), self.max_s)


def _ms(value: datetime | None) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)


class Snapshots:
    """Task snapshots from a stream's events: the task as first read, with each status
    and progress event applied; ``result`` gives the final task whole.

    A stream starts with the task's past (a replay): those events are applied without
    being shown until the snapshot has caught up with the task as first read (same
    status and progress, or a status newer than its ``updatedAt``), so a watcher never
    sees the task go back to an earlier state."""

    def __init__(self, first: Task) -> None:
        self.task = first
        self._caught_up = first.done
        self._first = (first.status, first.progress)
        self._first_ms = max(_ms(first.updated_at), _ms(first.created_at))

    def apply(self, event: Event) -> Task | None:
        """The new snapshot when ``event`` changes what a watcher sees."""
        final = event.task
        if final is not None:
            self.task = final
            return final
        if event.name not in (STATUS, PROGRESS) or not isinstance(event.data, dict):
            return None
        before = (self.task.status, self.task.progress)
        raw = dict(self.task.raw)
        if event.name == PROGRESS:
            raw["progress"] = event.data.get("progress", raw.get("progress"))
        else:
            data = event.data
            raw.update(status=data.get("status"), attempts=data.get("attempt", raw.get("attempts")))
            raw.update(serverId=data.get("serverId"), error=data.get("error"))
        self.task = Task(raw)
        if self.task.done:
            return None  # the result event that follows shows the final task whole
        now = (self.task.status, self.task.progress)
        if not self._caught_up:
            newer = event.name == STATUS and int(event.data.get("at") or 0) > self._first_ms
            self._caught_up = now == self._first or newer
            return self.task if newer else None
        return self.task if now != before else None
