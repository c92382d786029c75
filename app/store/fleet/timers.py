"""When each server is next due: its health check, and the end of an open circuit or a
busy period (its wake-up). Beat claims the due ones."""

from __future__ import annotations

from app.store import keys
from app.store.fleet.pools import FleetBase
from app.store.redis_client import redis_errors


class Timers(FleetBase):
    def _claim_due(self, zset: str, now_ms: int, limit: int) -> list[str]:
        """Members of ``zset`` whose time has come, claimed: each is removed, so two
        beats never handle the same one twice."""
        with redis_errors():
            members = self.client.zrangebyscore(zset, "-inf", now_ms, 0, limit)
            return [m for m in members if self.client.zrem(zset, m)]

    def schedule_health(self, server_id: str, at_ms: int) -> None:
        with redis_errors():
            self.client.zadd(keys.HEALTH_DUE, {server_id: at_ms})

    def due_health_checks(self, now_ms: int, limit: int) -> list[str]:
        return self._claim_due(keys.HEALTH_DUE, now_ms, limit)

    def due_wake_ups(self, now_ms: int, limit: int) -> list[str]:
        """Servers whose open circuit or busy period has ended."""
        return self._claim_due(keys.SLEEPING, now_ms, limit)
