"""Polls of poll-mode attempts: each attempt's poll record and when its next poll is
due. Between polls nothing is held but these two entries (no greenlet, no Celery ETA):
beat claims the due ones and a poll job runs each."""

from __future__ import annotations

import redis

from app.store import keys, scripts
from app.store.records import PollRecord
from app.store.redis_client import redis_errors
from app.store.script_calls import DueClaimCall


class PollSchedule:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._claim = scripts.load(client, "due_claim")

    def start(self, task_id: str, attempt: int, url: str, due_ms: int) -> None:
        """Follow ``attempt`` of the task at ``url`` from ``due_ms`` (replaces an older poll)."""
        record = PollRecord(attempt=attempt, url=url)
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.poll(task_id))
            pipe.hset(keys.poll(task_id), mapping=record.to_hash())
            pipe.zadd(keys.POLLS_DUE, {task_id: due_ms})
            pipe.execute()

    def get(self, task_id: str) -> PollRecord | None:
        with redis_errors():
            raw = self.client.hgetall(keys.poll(task_id))
        return PollRecord.from_hash(raw) if raw else None

    def polled(self, task_id: str, errors_in_row: int, next_due_ms: int) -> None:
        """One more poll was made; the next one is due at ``next_due_ms``."""
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(keys.poll(task_id), PollRecord.POLLS_FIELD, 1)
            pipe.hset(keys.poll(task_id), mapping=PollRecord.patch(errors_in_row=errors_in_row))
            pipe.zadd(keys.POLLS_DUE, {task_id: next_due_ms})
            pipe.execute()

    def stop(self, task_id: str) -> None:
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.poll(task_id))
            pipe.zrem(keys.POLLS_DUE, task_id)
            pipe.execute()

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[str]:
        """Tasks whose poll is due, each claimed for ``lease_ms`` (due again after that
        if its poll job is lost)."""
        call = DueClaimCall(schedule=keys.POLLS_DUE, now_ms=now_ms, lease_ms=lease_ms, limit=limit)
        with redis_errors():
            return list(self._claim(call))

    def count(self) -> int:
        with redis_errors():
            return int(self.client.zcard(keys.POLLS_DUE))
