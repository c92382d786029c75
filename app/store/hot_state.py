"""Hot task state in Redis: one hash per task, changed only by compare-and-set Lua."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from app.core.errors import Conflict
from app.core.events import STREAM_MAXLEN
from app.core.states import FINAL_STATUSES, TaskStatus, is_final
from app.core.task import TaskState
from app.store import keys, scripts
from app.store.records import TaskRecord
from app.store.redis_client import redis_errors
from app.store.script_calls import HydrateCall, SyncedCall, TransitionCall

#: The final statuses as ``task_synced.lua`` takes them (comma-separated, in a stable
#: order): the one list in ``app.core.states``, not a copy in Lua.
_FINAL_STATUSES_ARG = ",".join(sorted(s.value for s in FINAL_STATUSES))


class HotStateMissing(Exception):
    """Raised when a task has no hot state in Redis (never created, expired or lost)."""


def _flat(pairs: Iterable[Any]) -> dict[str, str]:
    items = list(pairs)
    return dict(zip(items[::2], items[1::2], strict=True))


def _transitioned(task_id: str, target: TaskStatus, reply: Any) -> TaskState:
    """The new state from ``task_transition.lua``'s reply, or the error it means."""
    code = int(reply[0])
    if code == -1:
        raise HotStateMissing(task_id)
    if code == 0:
        raise Conflict(
            f"task {task_id} is {reply[1]} at attempt {reply[2]}; cannot become {target}",
            current_status=reply[1],
        )
    return TaskRecord.from_hash(_flat(reply[1])).state


class TaskStateStore:
    """Reads and compare-and-sets the hot state of tasks."""

    def __init__(self, client: redis.Redis, finished_ttl_s: int) -> None:
        self.client = client
        self.finished_ttl_ms = finished_ttl_s * 1000
        self._transition = scripts.load(client, "task_transition")
        self._hydrate = scripts.load(client, "task_hydrate")
        self._synced = scripts.load(client, "task_synced")

    def get(self, task_id: str) -> TaskState | None:
        with redis_errors():
            fields = self.client.hgetall(keys.task(task_id))
        return TaskRecord.from_hash(fields).state if fields else None

    def get_many(self, task_ids: list[str]) -> list[TaskState | None]:
        """``get`` for each of ``task_ids``, in one round trip."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(keys.task(task_id))
            replies = pipe.execute()
        return [TaskRecord.from_hash(fields).state if fields else None for fields in replies]

    def server_to_avoid(self, task_id: str) -> str | None:
        """The server the task's last failed attempt ran on (the next one avoids it)."""
        with redis_errors():
            return self.client.hget(keys.task(task_id), TaskRecord.AVOID_SERVER)

    def put_if_absent(self, state: TaskState, new: bool = False) -> bool:
        """Write ``state`` unless Redis already holds this task; True if written. A
        ``new`` task is also counted as created in the statistics."""
        with redis_errors():
            written = self._hydrate(self._hydrate_call(state, new))
        return bool(written)

    def put_many_if_absent(self, states: list[TaskState], new: bool = False) -> int:
        """``put_if_absent`` for many tasks, pipelined; how many were written."""
        with redis_errors():
            answers = self._hydrate.run_many([self._hydrate_call(state, new) for state in states])
        return sum(1 for written in answers if written)

    def _hydrate_call(self, state: TaskState, new: bool) -> HydrateCall:
        deadline = ""
        if state.status is TaskStatus.PROCESSING:
            deadline = str((state.started_ms or state.updated_ms) + state.spec.timeout_s * 1000)
        elif state.status is TaskStatus.PENDING:
            deadline = str(state.updated_ms + state.spec.timeout_s * 1000)
        ttl_ms = self.finished_ttl_ms if is_final(state.status) else 0
        return HydrateCall(
            task=keys.task(state.id),
            deadlines=keys.DEADLINES,
            stats=keys.STATS_LIVE,
            events=keys.task_events(state.id),
            ttl_ms=str(ttl_ms),
            deadline_ms=deadline,
            new_task_type=state.spec.type if new else "",
            created_ms=str(state.created_ms),
            maxlen=STREAM_MAXLEN,
            fields=TaskRecord(state).to_hash(),
        )

    def transition(
        self,
        task_id: str,
        sources: Iterable[TaskStatus],
        target: TaskStatus,
        now_ms: int,
        expect_attempt: int | None = None,
        attempt_outcome: str = "",
        **fields: Any,
    ) -> TaskState:
        """Move the task to ``target`` if it is in one of ``sources`` (and at
        ``expect_attempt``), counting the event in the statistics (``attempt_outcome``:
        how the running attempt ended, if it did). Returns the new state; raises
        ``Conflict`` when the task is elsewhere and ``HotStateMissing`` when Redis has no
        copy of it."""
        call = self._transition_call(
            task_id, sources, target, now_ms, expect_attempt, attempt_outcome, fields
        )
        with redis_errors():
            reply = self._transition(call)
        return _transitioned(task_id, target, reply)

    def transition_many(
        self,
        moves: list[tuple[str, int]],
        sources: Iterable[TaskStatus],
        target: TaskStatus,
        now_ms: int,
        **fields: Any,
    ) -> list[TaskState | Exception]:
        """``transition`` of each (task id, expected attempt) in ``moves`` with the same
        fields, pipelined; per task the new state, or the ``Conflict`` /
        ``HotStateMissing`` that ``transition`` would have raised."""
        sources = tuple(sources)
        calls = [
            self._transition_call(task_id, sources, target, now_ms, attempt, "", fields)
            for task_id, attempt in moves
        ]
        with redis_errors():
            replies = self._transition.run_many(calls)
        out: list[TaskState | Exception] = []
        for (task_id, _), reply in zip(moves, replies, strict=True):
            try:
                out.append(_transitioned(task_id, target, reply))
            except (Conflict, HotStateMissing) as exc:
                out.append(exc)
        return out

    def _transition_call(
        self,
        task_id: str,
        sources: Iterable[TaskStatus],
        target: TaskStatus,
        now_ms: int,
        expect_attempt: int | None,
        attempt_outcome: str,
        fields: dict[str, Any],
    ) -> TransitionCall:
        return TransitionCall(
            task=keys.task(task_id),
            deadlines=keys.DEADLINES,
            stats=keys.STATS_LIVE,
            latency=keys.DISPATCH_LATENCY,
            unsynced=keys.UNSYNCED,
            events=keys.task_events(task_id),
            sources=",".join(s.value for s in sources),
            target=target.value,
            expected_attempt="" if expect_attempt is None else str(expect_attempt),
            now_ms=str(now_ms),
            is_final="1" if is_final(target) else "0",
            attempt_outcome=attempt_outcome,
            maxlen=STREAM_MAXLEN,
            fields=TaskRecord.patch(**fields),
        )

    def schedule(self, task_id: str, due_ms: int) -> None:
        """Dispatch this PENDING task again at ``due_ms`` (a retry's backoff)."""
        with redis_errors():
            self.client.zadd(keys.SCHEDULED, {task_id: due_ms})

    def dispatch_latency(self) -> dict[str, int]:
        """The dispatch-latency histogram: bucket upper bound in ms (or 'inf') -> count,
        plus 'sum_ms' and 'count'."""
        with redis_errors():
            return {name: int(value) for name, value in self.client.hgetall(keys.DISPATCH_LATENCY).items()}

    def scheduled_count(self) -> int:
        with redis_errors():
            return int(self.client.zcard(keys.SCHEDULED))

    def which_scheduled(self, task_ids: list[str]) -> list[bool]:
        """For each task: is it waiting in the retry schedule? (One round trip.)"""
        if not task_ids:
            return []
        with redis_errors():
            return [score is not None for score in self.client.zmscore(keys.SCHEDULED, task_ids)]

    def claim_due(self, now_ms: int, limit: int) -> list[str]:
        """Scheduled tasks whose time has come, each removed so only one caller gets it."""
        with redis_errors():
            due = self.client.zrangebyscore(keys.SCHEDULED, "-inf", now_ms, 0, limit)
            return [task_id for task_id in due if self.client.zrem(keys.SCHEDULED, task_id)]

    def unsynced(self, limit: int) -> list[str]:
        with redis_errors():
            return list(self.client.srandmember(keys.UNSYNCED, limit) or [])

    def mark_synced(self, state: TaskState) -> bool:
        """The database holds ``state``: out of the unsynced set (a finished task's hash
        expires from now), unless the task has moved on since."""
        with redis_errors():
            return bool(self._synced(self._synced_call(state)))

    def mark_many_synced(self, states: list[TaskState]) -> None:
        """``mark_synced`` for each of ``states``, pipelined."""
        with redis_errors():
            self._synced.run_many([self._synced_call(state) for state in states])

    def _synced_call(self, state: TaskState) -> SyncedCall:
        return SyncedCall(
            task=keys.task(state.id),
            unsynced=keys.UNSYNCED,
            events=keys.task_events(state.id),
            version=state.version,
            ttl_ms=self.finished_ttl_ms,
            task_id=state.id,
            final_statuses=_FINAL_STATUSES_ARG,
        )

    def heartbeat(self, task_id: str, attempt: int, ttl_s: int) -> None:
        """Say this attempt's worker is alive for the next ``ttl_s`` seconds."""
        with redis_errors():
            self.client.set(keys.attempt_alive(task_id, attempt), 1, ex=ttl_s)

    def stop_heartbeat(self, task_id: str, attempt: int) -> None:
        with redis_errors():
            self.client.delete(keys.attempt_alive(task_id, attempt))

    def is_alive(self, task_id: str, attempt: int) -> bool:
        with redis_errors():
            return bool(self.client.exists(keys.attempt_alive(task_id, attempt)))

    def sweep_cursor(self) -> str:
        with redis_errors():
            return self.client.get(keys.SWEEP_CURSOR) or ""

    def set_sweep_cursor(self, task_id: str) -> None:
        with redis_errors():
            self.client.set(keys.SWEEP_CURSOR, task_id)

    def needs_rebuild(self) -> bool:
        """True when Redis holds no rebuilt state (it is new or lost its data)."""
        with redis_errors():
            return not self.client.exists(keys.ALIVE)

    def rebuilt(self, now_ms: int) -> None:
        with redis_errors():
            self.client.set(keys.ALIVE, now_ms)

    def due_deadlines(self, now_ms: int, limit: int) -> list[str]:
        with redis_errors():
            return list(self.client.zrangebyscore(keys.DEADLINES, "-inf", now_ms, 0, limit))
