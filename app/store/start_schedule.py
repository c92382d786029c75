"""The start schedule: when each SCHEDULED task is due to become PENDING, one sorted set
in Redis (never Celery ETAs, which redelivery would duplicate). Nothing else is held for
such a task until it is due, so a million of them cost one zset entry each and no CPU.
The database has every ``run_at``: the set is rebuilt from it after a Redis loss."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from app.store import keys, scripts
from app.store.redis_client import redis_errors
from app.store.script_calls import DeferCall, DueClaimCall

#: Entries written per ZADD when many go in at once.
ZADD_CHUNK = 5000


class StartSchedule:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._defer = scripts.load(client, "task_defer")
        self._claim = scripts.load(client, "due_claim")

    def accept_many(self, tasks: list[tuple[str, str, int, int | None]]) -> None:
        """New tasks that do not start at once, as (task id, type, created ms, due ms or
        None while it waits for dependencies): each counted as created, and each due
        one put on the schedule, in one pipelined call per task."""
        calls = [
            DeferCall(
                starts=keys.STARTS_DUE,
                stats=keys.STATS_LIVE,
                task_id=task_id,
                due_ms="" if due_ms is None else str(due_ms),
                task_type=task_type,
                created_ms=created_ms,
            )
            for task_id, task_type, created_ms, due_ms in tasks
        ]
        if calls:
            with redis_errors():
                self._defer.run_many(calls)

    def add_many(self, entries: Iterable[tuple[str, int]], keep_existing: bool = False) -> None:
        """Put (task id, due ms) on the schedule; ``keep_existing`` leaves an entry that
        is already there alone (it may be claimed: its score is its claim's end)."""
        items = list(entries)
        if not items:
            return
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(items), ZADD_CHUNK):
                pipe.zadd(keys.STARTS_DUE, dict(items[start : start + ZADD_CHUNK]), nx=keep_existing)
            pipe.execute()

    def which_contain(self, task_ids: list[str]) -> list[bool]:
        """For each task: is it on the schedule? (One round trip.)"""
        if not task_ids:
            return []
        with redis_errors():
            return [score is not None for score in self.client.zmscore(keys.STARTS_DUE, task_ids)]

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        """Tasks whose start is due, earliest first, each claimed for ``lease_ms``: a
        second claimer skips it, and it is due again by itself if its starter dies."""
        call = DueClaimCall(schedule=keys.STARTS_DUE, now_ms=now_ms, lease_ms=lease_ms, limit=limit)
        with redis_errors():
            return list(self._claim(call))

    def remove(self, task_ids: list[str]) -> None:
        """Off the schedule (started, cancelled, or no longer SCHEDULED)."""
        if task_ids:
            with redis_errors():
                self.client.zrem(keys.STARTS_DUE, *task_ids)

    def count(self) -> int:
        with redis_errors():
            return int(self.client.zcard(keys.STARTS_DUE))

    def sweep_cursor(self) -> str:
        with redis_errors():
            return self.client.get(keys.DEFERRED_CURSOR) or ""

    def set_sweep_cursor(self, task_id: str) -> None:
        with redis_errors():
            self.client.set(keys.DEFERRED_CURSOR, task_id)
