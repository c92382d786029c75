"""Batches gathering for servers that take tasks in batches: one line per (server, task
type, mode), and when each line is due to go out. A task attempt joins its line once
it holds a slot on the server; the batch is sent when full (by the dispatch that
filled it) or when its oldest attempt has waited long enough (by a job beat starts)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from app.core.servers import BatchConfig
from app.core.task import TaskState
from app.store import keys, scripts
from app.store.redis_client import redis_errors
from app.store.script_calls import BatchJoinCall, BatchTakeCall, DueClaimCall


@dataclass(frozen=True)
class BatchLine:
    """Which batch: tasks of one type and mode, for one server."""

    server_id: str
    task_type: str
    mode: str

    @property
    def id(self) -> str:
        return json.dumps([self.server_id, self.task_type, self.mode], separators=(",", ":"))

    @classmethod
    def from_id(cls, batch_id: str) -> BatchLine:
        server_id, task_type, mode = json.loads(batch_id)
        return cls(server_id, task_type, mode)


def line_of(state: TaskState) -> BatchLine:
    """The batch a running attempt gathers in (on its server, for its type and mode)."""
    return BatchLine(state.server_id or "", state.spec.type, state.spec.mode.value)


def member(task_id: str, attempt: int) -> str:
    return f"{task_id}:{attempt}"


def parse_member(text: str) -> tuple[str, int]:
    task_id, _, attempt = text.rpartition(":")
    return task_id, int(attempt)


class BatchLines:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._join = scripts.load(client, "batch_join")
        self._take = scripts.load(client, "batch_take")
        self._claim = scripts.load(client, "due_claim")

    def join(
        self, line: BatchLine, task_id: str, attempt: int, config: BatchConfig, now_ms: int
    ) -> list[tuple[str, int]]:
        """Add the attempt to its line; the whole batch when it goes out now, else []."""
        call = BatchJoinCall(
            line=keys.batch_line(line.id),
            due=keys.BATCHES_DUE,
            member=member(task_id, attempt),
            batch_id=line.id,
            now_ms=now_ms,
            max_size=config.max_size,
            max_wait_ms=config.max_wait_ms,
        )
        with redis_errors():
            return [parse_member(m) for m in self._join(call)]

    def take(self, line: BatchLine, config: BatchConfig) -> list[tuple[str, int]]:
        """The oldest attempts of a line whose wait is over, up to a batch."""
        call = BatchTakeCall(
            line=keys.batch_line(line.id),
            due=keys.BATCHES_DUE,
            batch_id=line.id,
            max_size=config.max_size,
            max_wait_ms=config.max_wait_ms,
        )
        with redis_errors():
            return [parse_member(m) for m in self._take(call)]

    def contains(self, line: BatchLine, task_id: str, attempt: int) -> bool:
        """Whether the attempt is still gathering (joined, not yet taken to be sent)."""
        with redis_errors():
            return self.client.zscore(keys.batch_line(line.id), member(task_id, attempt)) is not None

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[BatchLine]:
        """Lines whose oldest attempt has waited long enough, each claimed for ``lease_ms``."""
        call = DueClaimCall(schedule=keys.BATCHES_DUE, now_ms=now_ms, lease_ms=lease_ms, limit=limit)
        with redis_errors():
            return [BatchLine.from_id(batch_id) for batch_id in self._claim(call)]

    def gathering(self) -> int:
        """Attempts waiting in every line (for status)."""
        with redis_errors():
            ids = list(self.client.zrange(keys.BATCHES_DUE, 0, -1))
            with self.client.pipeline(transaction=False) as pipe:
                for batch_id in ids:
                    pipe.zcard(keys.batch_line(batch_id))
                return sum(pipe.execute())
