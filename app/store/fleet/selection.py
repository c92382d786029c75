"""Reserving and releasing slots: the load balancer's scripts, and what they need to
know about pools (which serve a task, which have room)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.core.balancing import (
    BUSY_DEFAULT_S,
    CIRCUIT_FAILURES,
    CIRCUIT_OPEN_S,
    EWMA_ALPHA,
    NO_HISTORY_PENALTY_MS,
    SCAN_PER_POOL,
    Verdict,
)
from app.core.errors import LimitReached, LimitsNotLoaded
from app.core.limits import ALL_TYPES
from app.store import keys
from app.store.fleet.pools import FleetBase
from app.store.records import SlotUse
from app.store.redis_client import redis_errors
from app.store.script_calls import ReleaseCall, RestoreCall, SelectCall

#: What lb_select.lua answers instead of a server: the limits are not in Redis, or the
#: task type's limit or the limit of all tasks is full.
NOT_LOADED, TYPE_FULL, ALL_FULL = -1, -2, -3


class Selection(FleetBase):
    def has_healthy(self, capabilities: Sequence[str], group: str | None) -> bool:
        """Whether any server that fits (capabilities, group) takes tasks at all: online
        or degraded, not in maintenance or draining (full or resting counts as healthy)."""
        pools, _ = self.candidate_pools(capabilities, group, None)
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for pool_id in pools:
                pipe.hgetall(keys.pool(pool_id))
            raws = pipe.execute()
        return any(use.ok for raw in raws for use in SlotUse.from_pool_hash(raw).values())

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
        task_type: str = "",
    ) -> str | None:
        """Choose a server for this task attempt and reserve ``cost`` slots on it, in one
        Lua call; None when no server can take it now. A slot the attempt already holds
        is returned as is. ``now_ms`` stamps the lease (0 marks it as old at once).

        The concurrency limits of ``task_type`` and of all tasks are checked in the same
        call: raises ``LimitReached`` when one is full, ``LimitsNotLoaded`` when Redis
        does not hold them (see ``app.store.limit_state``)."""
        pools, in_region = self.candidate_pools(capabilities, group, region)
        if not pools:
            return None
        call = self.selection_call(pools, in_region, task_id, attempt, cost, avoid, now_ms, task_type)
        with redis_errors():
            chosen = self._select(call)
        if chosen == NOT_LOADED:
            raise LimitsNotLoaded("the concurrency limits are not loaded in Redis")
        if chosen == TYPE_FULL:
            raise LimitReached(task_type)
        if chosen == ALL_FULL:
            raise LimitReached(ALL_TYPES)
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
        task_type: str = "",
    ) -> SelectCall:
        """The ``lb_select.lua`` call for these candidate pools."""
        return SelectCall(
            rr_sequence=keys.RR_SEQUENCE,
            algorithm_key=keys.ALGORITHM,
            limits_loaded=keys.LIMITS_LOADED,
            type_limit=keys.limit(task_type),
            type_held=keys.limit_held(task_type),
            all_limit=keys.limit(ALL_TYPES),
            all_held=keys.limit_held(ALL_TYPES),
            pools=[
                (keys.pool(p), keys.pool_avail(p), keys.pool_leases(p), keys.pool_fresh(p)) for p in pools
            ],
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
        outcome: Verdict = Verdict.NONE,
        duration_ms: int = 0,
        busy_for_s: float | None = None,
        min_age_ms: int = 0,
        hold: bool = False,
        task_type: str | None = None,
    ) -> bool:
        """Free the slot this task attempt holds and record ``outcome`` in the server's
        metrics and circuit breaker. False
        if the attempt held no slot (already freed) or the task is running this attempt
        on this server right now (only the attempt's end frees it), or if the lease is
        younger than ``min_age_ms``. With ``hold`` the outcome is recorded but the slot
        kept (and False returned): the backend may still be serving a call taskfleet gave
        up on; ``reclaim`` frees it later. The attempt's holds on the concurrency limits
        of ``task_type`` and of all tasks go with the slot (without a type, only the
        latter: the other is swept by ``Limits.sweep_holds``)."""
        held_type = keys.limit_held(ALL_TYPES if task_type is None else task_type)

        def call_in(pool_id: str) -> ReleaseCall:
            return ReleaseCall(
                pool=keys.pool(pool_id),
                avail=keys.pool_avail(pool_id),
                leases=keys.pool_leases(pool_id),
                task=keys.task(task_id),
                server=keys.server(server_id),
                sleeping=keys.SLEEPING,
                algorithm_key=keys.ALGORITHM,
                fresh_set=keys.pool_fresh(pool_id),
                type_held=held_type,
                all_held=keys.limit_held(ALL_TYPES),
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

    def restore_lease(
        self, server_id: str, task_id: str, attempt: int, cost: int, now_ms: int, task_type: str = ""
    ) -> bool:
        """Put back a slot the database says is in use (after Redis lost it), with its
        holds on the concurrency limits that exist; idempotent."""
        pool_id = self._pool_of(server_id)
        if not pool_id:
            return False
        with redis_errors():
            return bool(
                self._restore(
                    RestoreCall(
                        pool=keys.pool(pool_id),
                        avail=keys.pool_avail(pool_id),
                        leases=keys.pool_leases(pool_id),
                        algorithm_key=keys.ALGORITHM,
                        fresh_set=keys.pool_fresh(pool_id),
                        type_held=keys.limit_held(task_type),
                        type_limit=keys.limit(task_type),
                        all_held=keys.limit_held(ALL_TYPES),
                        all_limit=keys.limit(ALL_TYPES),
                        lease=keys.lease_field(task_id, attempt),
                        server_id=server_id,
                        cost=cost,
                        now_ms=now_ms,
                        penalty_ms=NO_HISTORY_PENALTY_MS,
                    )
                )
            )
