"""What a pool is, and the per-process caches of pool lookups.

What changes only when servers are (re-)registered is trusted for a moment
(``POOL_CACHE_TTL_S``) so the hot path does not read it again per task. A stale entry
costs no slot: a release that finds no lease under a cached pool looks the pool up
again.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from cachetools import TTLCache

from app.store import keys, scripts
from app.store.records import PoolMeta, ServerRecord
from app.store.redis_client import redis_errors

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
    #: 0..100: among servers that score the same, the higher is chosen first.
    priority: int = 0

    @property
    def meta(self) -> PoolMeta:
        return PoolMeta.of(self.capabilities, self.groups, self.region)

    @property
    def pool_id(self) -> str:
        meta = self.meta
        profile = "|".join([meta.capabilities, meta.groups, meta.region])
        return hashlib.sha1(profile.encode()).hexdigest()[:12]


class FleetBase:
    """The client, the scripts and the pool caches every part of the store shares."""

    def __init__(self, client: redis.Redis, rng: random.Random | None = None) -> None:
        self.client = client
        self.rng = rng or random.Random()
        self._select = scripts.load(client, "lb_select")
        self._release = scripts.load(client, "lb_release")
        self._sync = scripts.load(client, "lb_sync")
        self._rescore = scripts.load(client, "lb_rescore")
        self._restore = scripts.load(client, "lb_restore")
        self._pool_cache: TTLCache[tuple[Any, ...], tuple[list[str], int]] = TTLCache(4096, POOL_CACHE_TTL_S)
        self._server_pool_cache: TTLCache[str, str | None] = TTLCache(65536, POOL_CACHE_TTL_S)
        self._pool_meta_cache: TTLCache[str, PoolMeta] = TTLCache(4096, POOL_CACHE_TTL_S)
        self._cache_lock = threading.Lock()

    def _pool_of(self, server_id: str) -> str | None:
        """The pool a server is in, read now; None if it is not registered."""
        with redis_errors():
            pool_id: str | None = self.client.hget(keys.server(server_id), ServerRecord.POOL_FIELD)
        return pool_id

    def _server_pool(self, server_id: str, fresh: bool = False) -> str | None:
        """The pool a server is in (cached unless ``fresh``); None if it is not registered."""
        with self._cache_lock:
            cached = self._server_pool_cache.get(server_id, _UNKNOWN)  # (one look: entries expire)
        if not fresh and cached is not _UNKNOWN:
            return cast("str | None", cached)
        pool_id = self._pool_of(server_id)
        with self._cache_lock:
            self._server_pool_cache[server_id] = pool_id
        return pool_id

    def _pool_metas(self, pool_ids: Sequence[str]) -> list[PoolMeta]:
        """Each pool's profile (cached; the missing ones read in one round trip)."""
        with self._cache_lock:
            found = {p: meta for p in pool_ids if (meta := self._pool_meta_cache.get(p)) is not None}
        missing = [p for p in pool_ids if p not in found]
        if missing:
            with redis_errors(), self.client.pipeline(transaction=False) as pipe:
                for pool_id in missing:
                    pipe.hgetall(keys.pool_meta(pool_id))
                read = {p: PoolMeta.from_hash(raw) for p, raw in zip(missing, pipe.execute(), strict=True)}
            with self._cache_lock:
                self._pool_meta_cache.update(read)
            found.update(read)
        return [found[p] for p in pool_ids]

    def _forget_pools(self) -> None:
        with self._cache_lock:
            self._pool_cache.clear()
            self._server_pool_cache.clear()
            self._pool_meta_cache.clear()

    def serving_pools(self, profiles: Sequence[tuple[Sequence[str], str | None]]) -> list[list[str]]:
        """For each (capabilities, group): the pools whose servers serve it, read now
        (no cache) for all of them in one round trip."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for capabilities, group in profiles:
                sets = [keys.capability_pools(c) for c in capabilities]
                if group:
                    sets.append(keys.group_pools(group))
                if sets:
                    pipe.sinter(sets)
                else:
                    pipe.smembers(keys.POOLS)
            return [sorted(found) for found in pipe.execute()]

    def pool_meta(self, pool_id: str) -> PoolMeta:
        """The pool's profile: capabilities, groups, region (cached)."""
        return self._pool_metas([pool_id])[0]

    def pool_of_server(self, server_id: str) -> str | None:
        """The pool a server is in (as of up to ``POOL_CACHE_TTL_S`` ago)."""
        return self._server_pool(server_id)

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
        if region:
            metas = self._pool_metas(pools)
            local = [p for p, meta in zip(pools, metas, strict=True) if meta.region == region]
            pools = local + [p for p in pools if p not in local]
            in_region = len(local)
        else:
            in_region = len(pools)
        with self._cache_lock:
            self._pool_cache[cache_key] = (pools, in_region)
        return pools, in_region
