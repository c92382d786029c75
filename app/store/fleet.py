"""Servers as the dispatcher sees them in Redis: pools, selection, slots, metrics.

Servers that share capabilities, groups and region form a *pool*. A task's candidate
pools come from small index sets (capability -> pools, group -> pools); inside a pool
the Lua scripts look only at the front of its ``avail`` zset. So a selection costs the
same with ten servers or ten thousand.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from cachetools import TTLCache

from app.core.balancing import (
    BUSY_DEFAULT_S,
    CIRCUIT_FAILURES,
    CIRCUIT_OPEN_S,
    DEFAULT_ALGORITHM,
    EWMA_ALPHA,
    NO_HISTORY_PENALTY_MS,
    SCAN_PER_POOL,
    Algorithm,
)
from app.store import keys, scripts
from app.store.records import ServerRecord, SlotUse
from app.store.redis_client import redis_errors
from app.store.script_calls import ReleaseCall, RescoreCall, RestoreCall, SelectCall, SyncCall

#: Not in a cache (a server's cached pool may be None: not registered).
_UNKNOWN = object()

#: Seconds a process trusts its cached list of candidate pools for a task profile.
POOL_CACHE_TTL_S = 2.0


@dataclass(frozen=True)
class ServerProfile:
    """What selection needs to know about a server."""

    id: str
    status: str
    max_concurrent: int
    capabilities: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    region: str | None = None
    weight: float = 1.0
    maintenance: bool = False

    @property
    def pool_id(self) -> str:
        profile = "|".join(
            [",".join(sorted(self.capabilities)), ",".join(sorted(self.groups)), self.region or ""]
        )
        return hashlib.sha1(profile.encode()).hexdigest()[:12]


class FleetStore:
    """Registers servers for selection and reserves/releases their slots atomically."""

    def __init__(self, client: redis.Redis, rng: random.Random | None = None) -> None:
        self.client = client
        self.rng = rng or random.Random()
        self._select = scripts.load(client, "lb_select")
        self._release = scripts.load(client, "lb_release")
        self._sync = scripts.load(client, "lb_sync")
        self._rescore = scripts.load(client, "lb_rescore")
        self._restore = scripts.load(client, "lb_restore")
        # What changes only when servers are (re-)registered, trusted for a moment so the
        # hot path does not read it again per task. A stale entry costs no slot: a release
        # that finds no lease under a cached pool looks the pool up again.
        self._pool_cache: TTLCache[tuple[Any, ...], tuple[list[str], int]] = TTLCache(4096, POOL_CACHE_TTL_S)
        self._server_pool_cache: TTLCache[str, str | None] = TTLCache(65536, POOL_CACHE_TTL_S)
        self._pool_meta_cache: TTLCache[str, dict[str, str]] = TTLCache(4096, POOL_CACHE_TTL_S)
        self._cache_lock = threading.Lock()

    # -- registry -------------------------------------------------------------------

    def put_server(self, profile: ServerProfile, now_ms: int) -> None:
        """Publish a server (new or updated). In-flight slots follow it to a new pool."""
        new_pool = profile.pool_id
        with redis_errors():
            old_pool = self.client.hget(keys.server(profile.id), "pool")
            if old_pool and old_pool != new_pool:
                self._move(profile.id, old_pool, new_pool)
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(
                    keys.server(profile.id),
                    mapping={
                        "id": profile.id,
                        "pool": new_pool,
                        "status": profile.status,
                        "maintenance": "1" if profile.maintenance else "0",
                        "max_concurrent": profile.max_concurrent,
                        "weight": profile.weight,
                    },
                )
                pipe.hsetnx(keys.server(profile.id), "last_seen_ms", now_ms)
                pipe.hsetnx(keys.server(profile.id), "circuit", "closed")
                pipe.sadd(keys.SERVERS, profile.id)
                pipe.sadd(keys.POOLS, new_pool)
                pipe.hset(
                    keys.pool_meta(new_pool),
                    mapping={
                        "capabilities": ",".join(sorted(profile.capabilities)),
                        "groups": ",".join(sorted(profile.groups)),
                        "region": profile.region or "",
                    },
                )
                for cap in profile.capabilities:
                    pipe.sadd(keys.capability_pools(cap), new_pool)
                for group in profile.groups:
                    pipe.sadd(keys.group_pools(group), new_pool)
                pipe.execute()
        self._forget_pools()
        self.sync(profile.id, now_ms)

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
            pipe.execute()

    def remove_server(self, server_id: str) -> None:
        """Take a server out of selection and forget its Redis state."""
        with redis_errors():
            pool_id = self.client.hget(keys.server(server_id), "pool")
            with self.client.pipeline(transaction=True) as pipe:
                if pool_id:
                    names = [
                        f"{server_id}|{f}"
                        for f in (
                            "max",
                            "used",
                            "w",
                            "ewma",
                            "pass",
                            "rr",
                            "ok",
                            "deg",
                            "sleep",
                            "probe",
                        )
                    ]
                    pipe.hdel(keys.pool(pool_id), *names)
                    pipe.zrem(keys.pool_avail(pool_id), server_id)
                pipe.delete(keys.server(server_id))
                pipe.srem(keys.SERVERS, server_id)
                pipe.zrem(keys.SLEEPING, server_id)
                pipe.zrem(keys.HEALTH_DUE, server_id)
                pipe.execute()

    def update(self, server_id: str, now_ms: int, **fields: Any) -> None:
        """Change server-hash fields (status, maintenance, weight, ...) and re-publish."""
        with redis_errors():
            self.client.hset(keys.server(server_id), mapping=ServerRecord.patch(**fields))
        self.sync(server_id, now_ms)

    def sync(self, server_id: str, now_ms: int) -> bool:
        """Re-publish a server's selection fields; True if it can take a task now."""
        with redis_errors():
            pool_id = self.client.hget(keys.server(server_id), "pool")
            if not pool_id:
                return False
            return bool(
                self._sync(
                    SyncCall(
                        pool=keys.pool(pool_id),
                        avail=keys.pool_avail(pool_id),
                        server=keys.server(server_id),
                        sleeping=keys.SLEEPING,
                        algorithm_key=keys.ALGORITHM,
                        server_id=server_id,
                        now_ms=now_ms,
                        penalty_ms=NO_HISTORY_PENALTY_MS,
                    )
                )
            )

    # -- selection ------------------------------------------------------------------

    def candidate_pools(
        self, capabilities: Sequence[str], group: str | None, region: str | None
    ) -> tuple[list[str], int]:
        """Pools whose servers have every capability (and the group), the task's region
        first; returns (pool ids, how many of them are in the region)."""
        cache_key = (tuple(sorted(capabilities)), group, region)
        with self._cache_lock:
            cached = self._pool_cache.get(cache_key)
        if cached:
            return cached
        sets = [keys.capability_pools(c) for c in capabilities]
        if group:
            sets.append(keys.group_pools(group))
        with redis_errors():
            pools = sorted(self.client.sinter(sets) if sets else self.client.smembers(keys.POOLS))
            regions = [self.client.hget(keys.pool_meta(p), "region") for p in pools] if region else []
        if region:
            local = [p for p, r in zip(pools, regions, strict=True) if r == region]
            pools = local + [p for p in pools if p not in local]
            in_region = len(local)
        else:
            in_region = len(pools)
        with self._cache_lock:
            self._pool_cache[cache_key] = (pools, in_region)
        return pools, in_region

    def _server_pool(self, server_id: str, fresh: bool = False) -> str | None:
        """The pool a server is in (cached unless ``fresh``); None if it is not registered."""
        with self._cache_lock:
            cached = self._server_pool_cache.get(server_id, _UNKNOWN)  # (one look: entries expire)
        if not fresh and cached is not _UNKNOWN:
            return cast("str | None", cached)
        with redis_errors():
            pool_id = self.client.hget(keys.server(server_id), "pool")
        with self._cache_lock:
            self._server_pool_cache[server_id] = pool_id
        return pool_id

    def _pool_meta(self, pool_id: str) -> dict[str, str]:
        with self._cache_lock:
            meta = self._pool_meta_cache.get(pool_id)
        if meta is None:
            with redis_errors():
                meta = self.client.hgetall(keys.pool_meta(pool_id))
            with self._cache_lock:
                self._pool_meta_cache[pool_id] = meta
        return meta

    def server_serves(self, server_id: str) -> Callable[[Sequence[str], str | None], bool]:
        """A test: can this server serve tasks needing (capabilities, group)? (From what
        was registered up to ``POOL_CACHE_TTL_S`` ago.)"""
        pool_id = self._server_pool(server_id)
        meta = self._pool_meta(pool_id) if pool_id else {}
        caps = set(filter(None, meta.get("capabilities", "").split(",")))
        groups = set(filter(None, meta.get("groups", "").split(",")))

        def serves(capabilities: Sequence[str], group: str | None) -> bool:
            return bool(meta) and set(capabilities) <= caps and (group is None or group in groups)

        return serves

    def has_room(self, capabilities: Sequence[str], group: str | None) -> bool:
        """Whether any server that fits (capabilities, group) can take a slot now."""
        pools, _ = self.candidate_pools(capabilities, group, None)
        with redis_errors():
            return any(self.client.zcard(keys.pool_avail(p)) for p in pools)

    def has_healthy(self, capabilities: Sequence[str], group: str | None) -> bool:
        """Whether any server that fits (capabilities, group) takes tasks at all: online
        or degraded, not in maintenance or draining (full or resting counts as healthy)."""
        pools, _ = self.candidate_pools(capabilities, group, None)
        with redis_errors():
            for pool_id in pools:
                fields = self.client.hgetall(keys.pool(pool_id))
                if any(name.endswith("|ok") and value == "1" for name, value in fields.items()):
                    return True
        return False

    def _forget_pools(self) -> None:
        with self._cache_lock:
            self._pool_cache.clear()
            self._server_pool_cache.clear()
            self._pool_meta_cache.clear()

    def reserve(
        self,
        task_id: str,
        attempt: int,
        capabilities: Sequence[str] = (),
        group: str | None = None,
        region: str | None = None,
        cost: int = 1,
        avoid: str | None = None,
        now_ms: int = 0,
    ) -> str | None:
        """Choose a server for this task attempt and reserve ``cost`` slots on it, in one
        Lua call; None when no server can take it now. A slot the attempt already holds
        is returned as is. ``now_ms`` stamps the lease (0 marks it as old at once)."""
        pools, in_region = self.candidate_pools(capabilities, group, region)
        if not pools:
            return None
        call = self.selection_call(pools, in_region, task_id, attempt, cost, avoid, now_ms)
        with redis_errors():
            chosen = self._select(call)
        return chosen[0] if chosen else None

    def selection_call(
        self,
        pools: Sequence[str],
        in_region: int,
        task_id: str,
        attempt: int,
        cost: int = 1,
        avoid: str | None = None,
        now_ms: int = 0,
    ) -> SelectCall:
        """The ``lb_select.lua`` call for these candidate pools."""
        return SelectCall(
            rr_sequence=keys.RR_SEQUENCE,
            algorithm_key=keys.ALGORITHM,
            pools=[(keys.pool(p), keys.pool_avail(p), keys.pool_leases(p)) for p in pools],
            lease=keys.lease_field(task_id, attempt),
            cost=cost,
            seed=self.rng.getrandbits(31),
            in_region=in_region,
            avoid=avoid or "",
            penalty_ms=NO_HISTORY_PENALTY_MS,
            per_pool=SCAN_PER_POOL,
            now_ms=now_ms,
        )

    def release(
        self,
        server_id: str,
        task_id: str,
        attempt: int,
        now_ms: int,
        outcome: str = "none",
        duration_ms: int = 0,
        busy_for_s: float | None = None,
        min_age_ms: int = 0,
        hold: bool = False,
    ) -> bool:
        """Free the slot this task attempt holds and record ``outcome`` ('success',
        'failure', 'busy' or 'none') in the server's metrics and circuit breaker. False
        if the attempt held no slot (already freed) or the task is running this attempt
        on this server right now (only the attempt's end frees it), or if the lease is
        younger than ``min_age_ms``. With ``hold`` the outcome is recorded but the slot
        kept (and False returned): the backend may still be serving a call taskfleet gave
        up on; ``reclaim`` frees it later."""

        def call_in(pool_id: str) -> ReleaseCall:
            return ReleaseCall(
                pool=keys.pool(pool_id),
                avail=keys.pool_avail(pool_id),
                leases=keys.pool_leases(pool_id),
                task=keys.task(task_id),
                server=keys.server(server_id),
                sleeping=keys.SLEEPING,
                algorithm_key=keys.ALGORITHM,
                lease=keys.lease_field(task_id, attempt),
                attempt=attempt,
                server_id=server_id,
                outcome=outcome,
                duration_ms=duration_ms,
                now_ms=now_ms,
                ewma_alpha=EWMA_ALPHA,
                circuit_failures=CIRCUIT_FAILURES,
                circuit_open_ms=CIRCUIT_OPEN_S * 1000,
                busy_ms=int((busy_for_s or BUSY_DEFAULT_S) * 1000),
                penalty_ms=NO_HISTORY_PENALTY_MS,
                min_age_ms=min_age_ms,
                hold="1" if hold else "0",
            )

        pool_id = self._server_pool(server_id)
        released = self._release_in(pool_id, call_in)
        if released == 0:  # no such lease there: the server may have moved to another pool
            fresh = self._server_pool(server_id, fresh=True)
            if fresh != pool_id:
                released = self._release_in(fresh, call_in)
        return released == 1

    def _release_in(self, pool_id: str | None, call_in: Callable[[str], ReleaseCall]) -> int:
        """``lb_release.lua`` on one pool: its answer (1 freed, 0 no such lease, ...)."""
        if not pool_id:
            return 0
        with redis_errors():
            return int(self._release(call_in(pool_id)))

    # -- the algorithm --------------------------------------------------------------

    def algorithm(self) -> Algorithm:
        with redis_errors():
            value = self.client.get(keys.ALGORITHM)
        return Algorithm(value) if value else DEFAULT_ALGORITHM

    def set_algorithm(self, algorithm: Algorithm) -> None:
        """Switch the algorithm and re-score every pool for it."""
        with redis_errors():
            self.client.set(keys.ALGORITHM, algorithm.value)
            for pool_id in self.client.smembers(keys.POOLS):
                self._rescore(
                    RescoreCall(
                        pool=keys.pool(pool_id),
                        avail=keys.pool_avail(pool_id),
                        alg=algorithm.value,
                        penalty_ms=NO_HISTORY_PENALTY_MS,
                    )
                )

    # -- reading --------------------------------------------------------------------

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
        with redis_errors():
            pool_id = self.client.hget(keys.server(server_id), "pool")
            if not pool_id:
                return []
            raw = self.client.hgetall(keys.pool_leases(pool_id))
        return [(t, a, cost) for sid, t, a, cost in _parse_leases(raw) if sid == server_id]

    def all_leases(self) -> list[tuple[str, str, int]]:
        """(server_id, task_id, attempt) of every reserved slot in the fleet."""
        with redis_errors():
            pools = list(self.client.smembers(keys.POOLS))
            raws = [self.client.hgetall(keys.pool_leases(p)) for p in pools]
        return [(sid, t, a) for raw in raws for sid, t, a, _ in _parse_leases(raw)]

    def restore_lease(self, server_id: str, task_id: str, attempt: int, cost: int, now_ms: int) -> bool:
        """Put back a slot the database says is in use (after Redis lost it); idempotent."""
        with redis_errors():
            pool_id = self.client.hget(keys.server(server_id), "pool")
            if not pool_id:
                return False
            return bool(
                self._restore(
                    RestoreCall(
                        pool=keys.pool(pool_id),
                        avail=keys.pool_avail(pool_id),
                        leases=keys.pool_leases(pool_id),
                        algorithm_key=keys.ALGORITHM,
                        lease=keys.lease_field(task_id, attempt),
                        server_id=server_id,
                        cost=cost,
                        now_ms=now_ms,
                        penalty_ms=NO_HISTORY_PENALTY_MS,
                    )
                )
            )

    def free_slots(self) -> int:
        """Free slots summed over servers that can take tasks now."""
        with redis_errors():
            pools = list(self.client.smembers(keys.POOLS))
            free = 0
            for pool_id in pools:
                members = self.client.zrange(keys.pool_avail(pool_id), 0, -1)
                if not members:
                    continue
                names = [f"{sid}|{f}" for sid in members for f in ("max", "used")]
                values = self.client.hmget(keys.pool(pool_id), names)
                for i in range(0, len(values), 2):
                    free += max(0, int(values[i] or 0) - int(values[i + 1] or 0))
        return free

    def slots(self) -> dict[str, SlotUse]:
        """Every server's slots now (one pipelined read of all pools)."""
        with redis_errors():
            pools = list(self.client.smembers(keys.POOLS))
            with self.client.pipeline(transaction=False) as pipe:
                for pool_id in pools:
                    pipe.hgetall(keys.pool(pool_id))
                raws = pipe.execute()
        return {sid: use for raw in raws for sid, use in SlotUse.from_pool_hash(raw).items()}

    # -- timers ---------------------------------------------------------------------

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

    def touch(self, server_id: str, now_ms: int, **fields: Any) -> None:
        """Record a sign of life (heartbeat or successful check), with optional figures."""
        with redis_errors():
            self.client.hset(
                keys.server(server_id), mapping=ServerRecord.patch(last_seen_ms=now_ms, **fields)
            )


def _parse_leases(raw: dict[str, str]) -> list[tuple[str, str, int, int]]:
    """Lease hash entries as (server_id, task_id, attempt, cost)."""
    parsed = []
    for lease, value in raw.items():
        sid, cost, _reserved_ms = value.rsplit("|", 2)
        task_id, _, attempt = lease.rpartition(":")
        parsed.append((sid, task_id, int(attempt), int(cost)))
    return parsed
