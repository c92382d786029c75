"""Concurrency limits in Redis: the copy of each limit that ``lb_select.lua`` checks,
the holds of the attempts each one counts, and the lines of tasks each one holds back.

Per limit type (a task type, or ``*`` for all tasks): a hash ``tf:limit:<type>``
('current', 'up_ms', 'down_ms'), a hash of holds ``tf:limit-held:<type>`` (lease ->
ms reserved, written and deleted by the load balancer's scripts) and a waiting line
``tf:limit-waiting:<type>``. ``tf:limits`` lists every limit (type -> config JSON) and
``tf:limits:loaded`` says they were published from the database: without it nothing is
reserved, so a Redis that lost its data never runs a limited task early.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from cachetools import TTLCache

from app.core.limits import Limit
from app.store import keys
from app.store.redis_client import redis_errors

#: Seconds a process trusts its copy of which types have a limit (every freed slot asks).
TYPES_CACHE_TTL_S = 2.0


@dataclass(frozen=True)
class LiveLimit:
    """What Redis holds of one limit now."""

    current: int
    up_ms: int
    down_ms: int
    in_flight: int
    waiting: int


class LimitState:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._types: TTLCache[str, frozenset[str]] = TTLCache(1, TYPES_CACHE_TTL_S)
        self._lock = threading.Lock()

    # -- publishing ---------------------------------------------------------------------

    def loaded(self) -> bool:
        with redis_errors():
            return bool(self.client.exists(keys.LIMITS_LOADED))

    def publish(self, limits: Sequence[Limit], holds: Iterable[tuple[str, str, int]], now_ms: int) -> None:
        """Every limit of the database (others are dropped), the holds of running
        attempts ((limit type, task id, attempt), kept if present), then the loaded
        marker: in one transaction, so a reservation sees all of it or none."""
        with redis_errors():
            stale = set(self.client.hkeys(keys.LIMITS)) - {limit.type for limit in limits}
            with self.client.pipeline(transaction=True) as pipe:
                for limit_type in stale:
                    self._queue_remove(pipe, limit_type)
                for limit in limits:
                    pipe.hset(keys.LIMITS, limit.type, _config_json(limit))
                    # When it last moved is not kept: as if it moved at its last change.
                    moved = limit.changed_ms
                    fields = {"current": limit.current, "up_ms": moved, "down_ms": moved}
                    pipe.hset(keys.limit(limit.type), mapping=fields)
                for limit_type, task_id, attempt in holds:
                    pipe.hsetnx(keys.limit_held(limit_type), keys.lease_field(task_id, attempt), now_ms)
                pipe.set(keys.LIMITS_LOADED, now_ms)
                pipe.execute()
        self._forget_types()

    def put(self, limit: Limit) -> None:
        """Publish one new or replaced limit (a scaling limit keeps when it last moved)."""
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.LIMITS, limit.type, _config_json(limit))
            pipe.hset(keys.limit(limit.type), "current", limit.current)
            pipe.hsetnx(keys.limit(limit.type), "up_ms", 0)
            pipe.hsetnx(keys.limit(limit.type), "down_ms", 0)
            pipe.execute()
        self._forget_types()

    def hold(self, limit_type: str, attempts: Iterable[tuple[str, int]], now_ms: int) -> None:
        """Count these running attempts ((task id, attempt)) against a limit (kept if
        already counted)."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for task_id, attempt in attempts:
                pipe.hsetnx(keys.limit_held(limit_type), keys.lease_field(task_id, attempt), now_ms)
            pipe.execute()

    def remove(self, limit_type: str) -> None:
        """Drop a limit and its holds (its waiting line is left to ``take``)."""
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            self._queue_remove(pipe, limit_type)
            pipe.execute()
        self._forget_types()

    @staticmethod
    def _queue_remove(pipe: redis.client.Pipeline, limit_type: str) -> None:
        pipe.hdel(keys.LIMITS, limit_type)
        pipe.delete(keys.limit(limit_type), keys.limit_held(limit_type))

    def set_current(self, limit_type: str, current: int, grew: bool, now_ms: int) -> bool:
        """A scaling change: the new value, stamped as the last growth or shrink. False
        (and nothing written) when the limit is gone."""
        with redis_errors():
            if not self.client.exists(keys.limit(limit_type)):
                return False
            self.client.hset(
                keys.limit(limit_type), mapping={"current": current, ("up_ms" if grew else "down_ms"): now_ms}
            )
            return True

    # -- reading ------------------------------------------------------------------------

    def types(self) -> list[str]:
        """Every limit type in force (read fresh)."""
        with redis_errors():
            return sorted(self.client.hkeys(keys.LIMITS))

    def limited_types(self) -> frozenset[str]:
        """The types that have a limit, as of up to ``TYPES_CACHE_TTL_S`` ago (this
        process's own changes at once): it decides whether a freed slot looks at a
        limit's waiting line at all."""
        with self._lock:
            known = self._types.get("all")
        if known is not None:
            return known
        with redis_errors():
            found = frozenset(self.client.hkeys(keys.LIMITS))
        with self._lock:
            self._types["all"] = found
        return found

    def _forget_types(self) -> None:
        with self._lock:
            self._types.clear()

    def live(self, types: Sequence[str]) -> dict[str, LiveLimit]:
        """What Redis holds of each of these limits (those it has), in one round trip."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for limit_type in types:
                pipe.hmget(keys.limit(limit_type), "current", "up_ms", "down_ms")
                pipe.hlen(keys.limit_held(limit_type))
                pipe.zcard(keys.limit_waiting(limit_type))
            replies = pipe.execute()
        out = {}
        for i, limit_type in enumerate(types):
            (current, up_ms, down_ms), held, waiting = replies[3 * i : 3 * i + 3]
            if current is not None:
                out[limit_type] = LiveLimit(int(current), int(up_ms or 0), int(down_ms or 0), held, waiting)
        return out

    def held(self, limit_type: str) -> dict[str, int]:
        """Lease -> ms reserved of every attempt the limit counts."""
        with redis_errors():
            return {lease: int(ms) for lease, ms in self.client.hgetall(keys.limit_held(limit_type)).items()}

    # -- waiting lines ------------------------------------------------------------------

    def park(self, limit_type: str, task_id: str, score: float) -> None:
        with redis_errors():
            self.client.zadd(keys.limit_waiting(limit_type), {task_id: score})

    def take(self, limit_type: str, count: int) -> list[str]:
        """Up to ``count`` task ids from the limit's line, best first (removed from it)."""
        if count <= 0:
            return []
        with redis_errors():
            return [task_id for task_id, _ in self.client.zpopmin(keys.limit_waiting(limit_type), count)]

    def unpark(self, entries: Iterable[tuple[str, str]]) -> None:
        """Take (limit type, task id) entries out of their lines (tasks that left
        PENDING some other way, so they no longer count as waiting); one round trip."""
        by_line: dict[str, list[str]] = {}
        for limit_type, task_id in entries:
            by_line.setdefault(keys.limit_waiting(limit_type), []).append(task_id)
        if not by_line:
            return
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for line, task_ids in by_line.items():
                pipe.zrem(line, *task_ids)
            pipe.execute()

    def waiting(self, limit_type: str) -> list[str]:
        with redis_errors():
            return list(self.client.zrange(keys.limit_waiting(limit_type), 0, -1))

    # -- leaks --------------------------------------------------------------------------

    def sweep_holds(self, live: Iterable[tuple[str, int]], reserved_before_ms: int) -> int:
        """Drop holds whose lease no pool holds any more and that were made before
        ``reserved_before_ms`` (a slot freed by a release that did not name the task
        type); a hold made since may belong to a reservation in progress."""
        live_leases = {keys.lease_field(task_id, attempt) for task_id, attempt in live}
        dropped = 0
        for limit_type in self.types():
            stale = [
                lease
                for lease, ms in self.held(limit_type).items()
                if lease not in live_leases and ms < reserved_before_ms
            ]
            if stale:
                with redis_errors():
                    dropped += self.client.hdel(keys.limit_held(limit_type), *stale)
        return dropped


def _config_json(limit: Limit) -> str:
    config = limit.config
    if config.dynamic is not None:
        return json.dumps({"dynamic": config.dynamic.to_json()})
    return json.dumps({"maxConcurrent": config.max_concurrent})
