"""Servers as the dispatcher sees them in Redis: selection data, capability index, slots."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import redis

from app.store import keys, scripts
from app.store.redis_client import redis_errors


class FleetStore:
    """Registers servers for selection and reserves/releases their slots atomically."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._reserve = scripts.load(client, "slot_reserve")
        self._release = scripts.load(client, "slot_release")

    def put_server(
        self,
        server_id: str,
        status: str,
        max_concurrent: int,
        capabilities: Iterable[str],
        previous_capabilities: Iterable[str] = (),
    ) -> None:
        """Publish a server (new or updated); its in-flight count and leases are kept."""
        caps = set(capabilities)
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.server(server_id),
                mapping={"id": server_id, "status": status, "max_concurrent": max_concurrent},
            )
            pipe.hsetnx(keys.server(server_id), "in_flight", 0)
            pipe.sadd(keys.SERVERS, server_id)
            for cap in set(previous_capabilities) - caps:
                pipe.srem(keys.capability(cap), server_id)
            for cap in caps:
                pipe.sadd(keys.capability(cap), server_id)
            pipe.execute()

    def candidates(self, capabilities: Sequence[str]) -> list[str]:
        """Ids of registered servers offering every capability in ``capabilities``."""
        with redis_errors():
            if capabilities:
                members = self.client.sinter([keys.capability(c) for c in capabilities])
            else:
                members = self.client.smembers(keys.SERVERS)
        return sorted(members)

    def reserve(
        self,
        candidate_ids: Sequence[str],
        task_id: str,
        attempt: int,
        cost: int = 1,
        rng: random.Random | None = None,
    ) -> str | None:
        """Reserve ``cost`` slots for this task attempt on the least-loaded candidate
        with room; None when none has room."""
        if not candidate_ids:
            return None
        order = list(candidate_ids)
        (rng or random).shuffle(order)
        script_keys: list[str] = []
        for server_id in order:
            script_keys += [keys.server(server_id), keys.server_leases(server_id)]
        with redis_errors():
            chosen = self._reserve(
                keys=script_keys, args=[keys.lease_field(task_id, attempt), cost]
            )
        return chosen or None

    def release(self, server_id: str, task_id: str, attempt: int) -> bool:
        """Free the slot this task attempt holds. False if it held none (already freed)
        or if the task is running this attempt on this server right now (the lease is
        in use: only the attempt's end frees it)."""
        with redis_errors():
            released = self._release(
                keys=[keys.server(server_id), keys.server_leases(server_id), keys.task(task_id)],
                args=[keys.lease_field(task_id, attempt), attempt, server_id],
            )
        return int(released) == 1

    def is_empty(self) -> bool:
        with redis_errors():
            return not self.client.exists(keys.SERVERS)

    def free_slots(self) -> int:
        """Free slots summed over online servers."""
        with redis_errors():
            ids = list(self.client.smembers(keys.SERVERS))
            if not ids:
                return 0
            with self.client.pipeline(transaction=False) as pipe:
                for server_id in ids:
                    pipe.hmget(keys.server(server_id), "status", "max_concurrent", "in_flight")
                rows = pipe.execute()
        return sum(
            max(0, int(cap or 0) - int(used or 0))
            for status, cap, used in rows
            if status == "online"
        )

    def in_flight(self, server_id: str) -> int:
        with redis_errors():
            return int(self.client.hget(keys.server(server_id), "in_flight") or 0)

    def leases(self, server_id: str) -> dict[str, str]:
        with redis_errors():
            return self.client.hgetall(keys.server_leases(server_id))
