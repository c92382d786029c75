"""Task event streams in Redis: one stream per task (``keys.task_events``), written by
``task_transition.lua`` / ``task_hydrate.lua`` (statuses, progress) and
``task_chunk.lua`` (a backend's output), read here. Entries are flat: ``event`` names
the event, the other fields are its data (``app.services.events`` builds the JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from app.core.errors import Conflict
from app.core.events import RESULT_SEQ, STREAM_MAXLEN, EventId
from app.store import keys, scripts
from app.store.hot_state import HotStateMissing
from app.store.records import TaskRecord
from app.store.redis_client import redis_errors
from app.store.script_calls import ChunkCall


@dataclass(frozen=True)
class StreamEntry:
    """One entry of a task's stream: its id, event name and fields."""

    id: EventId
    event: str
    fields: dict[str, str]


def _entries(raw: Iterable[Any]) -> list[StreamEntry]:
    out = []
    for entry_id, fields in raw:
        version, _, seq = entry_id.partition("-")
        out.append(StreamEntry(EventId(int(version), int(seq)), fields.get("event", ""), fields))
    return out


class EventLog:
    """Reads task event streams and appends chunks to them."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._chunk = scripts.load(client, "task_chunk")

    def after(self, task_id: str, after: EventId, count: int | None = None) -> list[StreamEntry]:
        """The stream's entries after ``after``, oldest first (``count`` at most)."""
        # After a result: everything of the next version on; else after the id itself.
        start = f"{after.version + 1}-0" if after.seq == RESULT_SEQ else f"({after.version}-{after.seq}"
        with redis_errors():
            raw = self.client.xrange(keys.task_events(task_id), start, "+", count=count)
        return _entries(raw)

    def read_many(
        self, cursors: dict[str, EventId], block_ms: int, count: int = 500
    ) -> dict[str, list[StreamEntry]]:
        """New entries of each task's stream after its cursor (task id -> id), waiting up
        to ``block_ms`` for the first one (0: do not wait). One XREAD for them all."""
        if not cursors:
            return {}
        streams = {keys.task_events(task_id): f"{c.version}-{c.seq}" for task_id, c in cursors.items()}
        with redis_errors():
            reply = self.client.xread(streams, count=count, block=block_ms or None)
        prefix = len(keys.task_events(""))
        out: dict[str, list[StreamEntry]] = {}
        for stream, raw in reply or []:
            out[stream[prefix:]] = _entries(raw)
        return out

    def version_of(self, task_id: str) -> int | None:
        """The version of the task's hot state (None: Redis has none)."""
        with redis_errors():
            raw = self.client.hget(keys.task(task_id), TaskRecord.VERSION)
        return int(raw) if raw else None

    def append_chunks(self, task_id: str, attempt: int, chunks: list[Any]) -> EventId:
        """Append ``chunks`` (JSON values) of the running ``attempt``; the last one's id.
        Raises ``Conflict`` when the attempt is no longer running and
        ``HotStateMissing`` when Redis has no copy of the task."""
        call = ChunkCall(
            task=keys.task(task_id),
            events=keys.task_events(task_id),
            attempt=attempt,
            maxlen=STREAM_MAXLEN,
            chunks=[json.dumps(chunk, separators=(",", ":")) for chunk in chunks],
        )
        with redis_errors():
            reply = self._chunk(call)
        code = int(reply[0])
        if code == -1:
            raise HotStateMissing(task_id)
        if code == 0:
            raise Conflict(
                f"attempt {attempt} of task {task_id} is no longer running ({reply[1]}, {reply[2]})",
                current_status=reply[1],
            )
        return EventId.parse(reply[1])
