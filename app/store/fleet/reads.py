"""What the fleet looks like now, for status, metrics, health and recovery: live server
records, leases, slots. Reads over many pools or servers go in one pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.core.slot_ledger import Lease
from app.store import keys
from app.store.fleet.pools import FleetBase
from app.store.records import PoolMeta, ServerRecord, SlotUse
from app.store.redis_client import redis_errors


class Reads(FleetBase):
    def server_ids(self) -> list[str]:
        with redis_errors():
            return sorted(self.client.smembers(keys.SERVERS))

    def state(self, server_id: str) -> ServerRecord:
        """The server's live record: status, breaker, metrics (``known`` False if unknown)."""
        with redis_errors():
            return ServerRecord.from_hash(self.client.hgetall(keys.server(server_id)))

    def states(self, server_ids: Sequence[str]) -> list[ServerRecord]:
        """``state`` of each server, in one round trip."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for server_id in server_ids:
                pipe.hgetall(keys.server(server_id))
            return [ServerRecord.from_hash(raw) for raw in pipe.execute()]

    def in_flight(self, server_id: str) -> int:
        return sum(cost for _, _, cost in self.leases(server_id))

    def leases(self, server_id: str) -> list[tuple[str, int, int]]:
        """(task_id, attempt, cost) of every slot the server holds."""
        pool_id = self._pool_of(server_id)
        if not pool_id:
            return []
        with redis_errors():
            raw = self.client.hgetall(keys.pool_leases(pool_id))
        return [(t, a, cost) for sid, t, a, cost in _parse_leases(raw) if sid == server_id]

    def all_leases(self) -> list[tuple[str, str, int]]:
        """(server_id, task_id, attempt) of every reserved slot in the fleet."""
        raws = self._every_pool(keys.pool_leases)
        return [(sid, t, a) for raw in raws for sid, t, a, _ in _parse_leases(raw)]

    def held_leases(self) -> list[Lease]:
        """Every slot held in the fleet, with its cost and when it was reserved (one
        read per pool, in one round trip)."""
        return [
            Lease(sid, t, a, cost, reserved_ms)
            for raw in self._every_pool(keys.pool_leases)
            for sid, t, a, cost, reserved_ms in _parse_lease_entries(raw)
        ]

    def free_slots(self) -> int:
        """Free slots summed over servers that can take tasks now (in an avail zset)."""
        return sum(self.free_by_pool().values())

    def free_by_pool(self) -> dict[str, int]:
        """Pool -> free slots of its servers that can take tasks now (pools with none
        left out); one round trip."""
        with redis_errors():
            pools = list(self.client.smembers(keys.POOLS))
            with self.client.pipeline(transaction=False) as pipe:
                for pool_id in pools:
                    pipe.zrange(keys.pool_avail(pool_id), 0, -1)
                    pipe.hgetall(keys.pool(pool_id))
                replies = pipe.execute()
        free = {}
        for pool_id, members, raw in zip(pools, replies[::2], replies[1::2], strict=True):
            uses = SlotUse.from_pool_hash(raw)
            room = sum(uses[sid].free for sid in members if sid in uses)
            if room > 0:
                free[pool_id] = room
        return free

    def healthy_pool_metas(self) -> list[PoolMeta]:
        """The profile of every pool with a server that takes tasks at all (online or
        degraded, not in maintenance or draining); two round trips."""
        with redis_errors():
            pools = sorted(self.client.smembers(keys.POOLS))
            with self.client.pipeline(transaction=False) as pipe:
                for pool_id in pools:
                    pipe.hgetall(keys.pool(pool_id))
                raws = pipe.execute()
        healthy = [
            p
            for p, raw in zip(pools, raws, strict=True)
            if any(u.ok for u in SlotUse.from_pool_hash(raw).values())
        ]
        return self._pool_metas(healthy)

    def slots(self) -> dict[str, SlotUse]:
        """Every server's slots now."""
        return {
            sid: use
            for raw in self._every_pool(keys.pool)
            for sid, use in SlotUse.from_pool_hash(raw).items()
        }

    def _every_pool(self, key_of: Callable[[str], str]) -> list[dict[str, str]]:
        """The hash ``key_of(pool)`` of every pool, in one round trip."""
        with redis_errors():
            pools = list(self.client.smembers(keys.POOLS))
            with self.client.pipeline(transaction=False) as pipe:
                for pool_id in pools:
                    pipe.hgetall(key_of(pool_id))
                return list(pipe.execute())


def _parse_leases(raw: dict[str, str]) -> list[tuple[str, str, int, int]]:
    """Lease hash entries as (server_id, task_id, attempt, cost)."""
    return [(sid, t, a, cost) for sid, t, a, cost, _ in _parse_lease_entries(raw)]


def _parse_lease_entries(raw: dict[str, str]) -> list[tuple[str, str, int, int, int]]:
    """Lease hash entries as (server_id, task_id, attempt, cost, reserved_ms)."""
    parsed = []
    for lease, value in raw.items():
        sid, cost, reserved_ms = value.rsplit("|", 2)
        task_id, _, attempt = lease.rpartition(":")
        parsed.append((sid, task_id, int(attempt), int(cost), int(reserved_ms)))
    return parsed
