"""Which alerts are firing, in Redis, so each condition is announced once (and its
resolution once) however many beat processes check it."""

from __future__ import annotations

import json

import redis

from app.store import keys
from app.store.redis_client import redis_errors


class ActiveAlerts:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def all(self) -> dict[str, dict[str, object]]:
        with redis_errors():
            raw = self.client.hgetall(keys.ALERTS)
        return {key: json.loads(value) for key, value in raw.items()}

    def start(self, key: str, message: str, now_ms: int) -> bool:
        """Record the alert as firing; True for the one caller that started it."""
        with redis_errors():
            return bool(
                self.client.hsetnx(keys.ALERTS, key, json.dumps({"message": message, "since_ms": now_ms}))
            )

    def end(self, key: str) -> dict[str, object] | None:
        """Clear the alert; its record for the one caller that cleared it, else None."""
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.hget(keys.ALERTS, key)
            pipe.hdel(keys.ALERTS, key)
            value, removed = pipe.execute()
        return json.loads(value) if removed and value else None
