"""What the Celery side looks like from Redis: workers that said they are alive, and
the messages waiting in each queue (the broker is the same Redis)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from app.store import keys
from app.store.redis_client import redis_errors


class WorkerPresence:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def beat(self, name: str, now_ms: int) -> None:
        with redis_errors():
            self.client.zadd(keys.WORKERS, {name: now_ms})

    def seen_since(self, since_ms: int) -> list[str]:
        """Workers alive at ``since_ms`` or later; older entries are dropped."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.WORKERS, "-inf", f"({since_ms}")
            pipe.zrange(keys.WORKERS, 0, -1)
            return sorted(pipe.execute()[1])

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each Celery queue (kombu's Redis transport keeps a list
        per queue)."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for name in queues:
                pipe.llen(name)
            return dict(zip(queues, pipe.execute(), strict=True))
