"""Publishing servers for selection: register, change, re-sync, remove; the algorithm."""

from __future__ import annotations

from typing import Any

from app.core.balancing import DEFAULT_ALGORITHM, NO_HISTORY_PENALTY_MS, Algorithm
from app.store import keys
from app.store.fleet.pools import FleetBase, ServerProfile
from app.store.records import POOL_SLOT_FIELDS, ServerRecord
from app.store.redis_client import redis_errors
from app.store.script_calls import RescoreCall, SyncCall


class Registry(FleetBase):
    def put_server(self, profile: ServerProfile, now_ms: int) -> bool:
        """Publish a server (new or updated). In-flight slots follow it to a new pool.
        True if its pool is new (the waiting profiles it serves are then indexed for it)."""
        new_pool = profile.pool_id
        server_key = keys.server(profile.id)
        with redis_errors():
            old_pool = self._pool_of(profile.id)
            if old_pool and old_pool != new_pool:
                self._move(profile.id, old_pool, new_pool)
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(
                    server_key,
                    mapping=ServerRecord.patch(
                        id=profile.id,
                        pool=new_pool,
                        status=profile.status,
                        maintenance=profile.maintenance,
                        max_concurrent=profile.max_concurrent,
                        weight=profile.weight,
                        priority=profile.priority,
                    ),
                )
                for name, value in ServerRecord.patch(last_seen_ms=now_ms, circuit="closed").items():
                    pipe.hsetnx(server_key, name, value)  # kept when it exists already
                pipe.sadd(keys.SERVERS, profile.id)
                pool_added_at = len(pipe.command_stack)
                pipe.sadd(keys.POOLS, new_pool)
                pipe.hset(keys.pool_meta(new_pool), mapping=profile.meta.to_hash())
                for cap in profile.capabilities:
                    pipe.sadd(keys.capability_pools(cap), new_pool)
                for group in profile.groups:
                    pipe.sadd(keys.group_pools(group), new_pool)
                replies = pipe.execute()
        pool_added = replies[pool_added_at]
        self._forget_pools()
        self.sync(profile.id, now_ms)
        return bool(pool_added)

    def _move(self, server_id: str, old_pool: str, new_pool: str) -> None:
        """Carry a server's fields and leases from one pool to another in one transaction."""
        prefix = f"{server_id}|"
        fields = {k: v for k, v in self.client.hgetall(keys.pool(old_pool)).items() if k.startswith(prefix)}
        leases = {
            k: v for k, v in self.client.hgetall(keys.pool_leases(old_pool)).items() if v.startswith(prefix)
        }
        with self.client.pipeline(transaction=True) as pipe:
            if fields:
                pipe.hdel(keys.pool(old_pool), *fields)
                pipe.hset(keys.pool(new_pool), mapping=fields)
            if leases:
                pipe.hdel(keys.pool_leases(old_pool), *leases)
                pipe.hset(keys.pool_leases(new_pool), mapping=leases)
            pipe.zrem(keys.pool_avail(old_pool), server_id)
            pipe.zrem(keys.pool_fresh(old_pool), server_id)
            pipe.execute()

    def remove_server(self, server_id: str) -> None:
        """Take a server out of selection and forget its Redis state."""
        pool_id = self._pool_of(server_id)
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            if pool_id:
                pipe.hdel(keys.pool(pool_id), *(f"{server_id}|{name}" for name in POOL_SLOT_FIELDS))
                pipe.zrem(keys.pool_avail(pool_id), server_id)
                pipe.zrem(keys.pool_fresh(pool_id), server_id)
            pipe.delete(keys.server(server_id))
            pipe.srem(keys.SERVERS, server_id)
            pipe.zrem(keys.SLEEPING, server_id)
            pipe.zrem(keys.HEALTH_DUE, server_id)
            pipe.execute()

    def update(self, server_id: str, now_ms: int, **fields: Any) -> None:
        """Change ``ServerRecord`` fields (status, maintenance, weight, ...) and re-publish."""
        with redis_errors():
            self.client.hset(keys.server(server_id), mapping=ServerRecord.patch(**fields))
        self.sync(server_id, now_ms)

    def touch(self, server_id: str, now_ms: int, figures: dict[str, Any] | None = None) -> None:
        """Record a sign of life (heartbeat or successful check). ``figures`` (the
        heartbeat's, by ``ServerRecord.REPORTED`` names) replace the last ones, stamped now."""
        changes = ServerRecord.patch(last_seen_ms=now_ms)
        if figures:
            changes.update(ServerRecord.reported_patch(figures, now_ms))
        with redis_errors():
            self.client.hset(keys.server(server_id), mapping=changes)

    def sync(self, server_id: str, now_ms: int) -> bool:
        """Re-publish a server's selection fields; True if it can take a task now."""
        pool_id = self._pool_of(server_id)
        if not pool_id:
            return False
        call = SyncCall(
            pool=keys.pool(pool_id),
            avail=keys.pool_avail(pool_id),
            server=keys.server(server_id),
            sleeping=keys.SLEEPING,
            algorithm_key=keys.ALGORITHM,
            fresh_set=keys.pool_fresh(pool_id),
            server_id=server_id,
            now_ms=now_ms,
            penalty_ms=NO_HISTORY_PENALTY_MS,
        )
        with redis_errors():
            return bool(self._sync(call))

    def algorithm(self) -> Algorithm:
        with redis_errors():
            value = self.client.get(keys.ALGORITHM)
        return Algorithm(value) if value else DEFAULT_ALGORITHM

    def set_algorithm(self, algorithm: Algorithm, now_ms: int) -> None:
        """Switch the algorithm and re-score every pool for it (at ``now_ms``)."""
        with redis_errors():
            self.client.set(keys.ALGORITHM, algorithm.value)
            for pool_id in self.client.smembers(keys.POOLS):
                self._rescore(
                    RescoreCall(
                        pool=keys.pool(pool_id),
                        avail=keys.pool_avail(pool_id),
                        fresh_set=keys.pool_fresh(pool_id),
                        alg=algorithm.value,
                        penalty_ms=NO_HISTORY_PENALTY_MS,
                        now_ms=now_ms,
                    )
                )
