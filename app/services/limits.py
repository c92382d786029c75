"""Concurrency limits per task type: setting them (admin), publishing them to Redis,
parking the tasks a full limit holds back and waking them when it has room, and the
routine that scales dynamic limits with their backlog.

The limit itself is enforced by the load balancer's reservation (``lb_select.lua``);
this module keeps Redis's copy right and the waiting lines moving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.core.errors import NotFound
from app.core.limits import ALL_TYPES, Limit, LimitConfig, next_limit
from app.core.states import TaskStatus
from app.core.task import TaskState, waiting_score
from app.services.context import Context
from app.store import limits_repo, tasks_repo
from app.store.limit_state import LiveLimit
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.limits")

#: Rows read per page when collecting the running attempts a limit counts.
PAGE = 500
#: Seconds a dispatch that found the limits unloaded waits before it tries again.
NOT_LOADED_RETRY_S = 1.0


@dataclass(frozen=True)
class LimitView:
    """A limit as the API shows it: the durable record (its ``current`` is the value of
    its last change) and what Redis counts now."""

    limit: Limit
    current: int
    in_flight: int
    waiting: int


def _views(ctx: Context, limits: list[Limit]) -> list[LimitView]:
    live = ctx.limits.live([limit.type for limit in limits])
    views = []
    for limit in limits:
        now = live.get(limit.type)
        views.append(
            LimitView(
                limit=limit,
                current=now.current if now else limit.current,
                in_flight=now.in_flight if now else 0,
                waiting=now.waiting if now else 0,
            )
        )
    return views


def list_limits(ctx: Context) -> list[LimitView]:
    with ctx.db.session() as session:
        limits = limits_repo.list_all(session)
    return _views(ctx, limits)


def get_limit(ctx: Context, limit_type: str) -> LimitView:
    with ctx.db.session() as session:
        limit = limits_repo.get(session, limit_type)
    if limit is None:
        raise NotFound(f"no concurrency limit for type {limit_type!r}")
    return _views(ctx, [limit])[0]


def put_limit(ctx: Context, limit_type: str, config: LimitConfig) -> LimitView:
    """Create or replace a limit. A new one counts the attempts of its type running now
    (they hold it until they end), so it is right from the start."""
    now = ctx.now_ms()
    with ctx.db.session() as session:
        limit = limits_repo.put(session, limit_type, config, now)
    ctx.limits.put(limit)  # from here on every reservation of the type is counted ...
    ctx.limits.hold(limit_type, _running(ctx, limit_type), now)  # ... and so is what runs
    log.info("concurrency limit %r set: %s (current %d)", limit_type, _describe(config), limit.current)
    wake(ctx, limit_type, limit.current)  # a raised limit has room for more
    return get_limit(ctx, limit_type)


def delete_limit(ctx: Context, limit_type: str) -> None:
    """Remove a limit; the tasks it held back are dispatched again."""
    with ctx.db.session() as session:
        found = limits_repo.delete(session, limit_type)
    if not found:
        raise NotFound(f"no concurrency limit for type {limit_type!r}")
    ctx.limits.remove(limit_type)
    log.info("concurrency limit %r removed", limit_type)
    while wake(ctx, limit_type, PAGE, all_taken=True):
        pass


def _describe(config: LimitConfig) -> str:
    if config.dynamic is None:
        return f"maxConcurrent {config.max_concurrent}"
    return f"dynamic {config.dynamic.to_json()}"


def _running(ctx: Context, limit_type: str) -> list[tuple[str, int]]:
    """(task id, attempt) of the attempts holding a slot now that ``limit_type`` counts."""
    leases = ctx.fleet.all_leases()
    states = ctx.tasks.get_many([task_id for _, task_id, _ in leases])
    return [
        (task_id, attempt)
        for (_, task_id, attempt), state in zip(leases, states, strict=True)
        if state is not None and limit_type in (ALL_TYPES, state.spec.type)
    ]


# -- Redis's copy ------------------------------------------------------------------------


def publish(ctx: Context) -> int:
    """Publish every limit from the database, with a hold for each PROCESSING attempt
    they count, then mark the limits loaded (after a Redis loss, before any task of a
    limited type is reserved again). Returns the number of limits."""
    now = ctx.now_ms()
    holds: list[tuple[str, str, int]] = []
    with ctx.db.session() as session:
        limits = limits_repo.list_all(session)
        types = {limit.type for limit in limits}
        after = ""
        while types:
            rows = tasks_repo.in_status(session, [TaskStatus.PROCESSING], after, PAGE)
            if not rows:
                break
            for state in map(row_to_state, rows):
                holds += [(t, state.id, state.attempt) for t in (state.spec.type, ALL_TYPES) if t in types]
            after = rows[-1].id
    ctx.limits.publish(limits, holds, now)
    if limits:
        log.info("published %d concurrency limits with %d holds", len(limits), len(holds))
    return len(limits)


# -- waiting -----------------------------------------------------------------------------


def park(ctx: Context, state: TaskState, limit_type: str) -> None:
    """Put a PENDING task in the line of the limit that holds it back."""
    ctx.limits.park(limit_type, state.id, waiting_score(state.spec.priority, state.created_ms))


def wake(ctx: Context, limit_type: str, count: int, all_taken: bool = False) -> int:
    """Enqueue dispatch for up to ``count`` tasks of the limit's line, best first
    (entries of tasks no longer PENDING are dropped). With ``all_taken``: the number
    taken from the line, not only those enqueued."""
    woken = taken_total = 0
    while woken < count:
        taken = ctx.limits.take(limit_type, count - woken)
        if not taken:
            break
        taken_total += len(taken)
        for task_id, state in zip(taken, ctx.tasks.get_many(taken), strict=True):
            if state is not None and state.status is TaskStatus.PENDING:
                ctx.queue.enqueue(task_id, state.attempt)
                woken += 1
    return taken_total if all_taken else woken


def forget_waiting(ctx: Context, states: list[TaskState]) -> None:
    """Tasks that left PENDING without a slot (cancelled, timed out) out of the lines of
    the limits that may hold them, so a limit's waiting count is only tasks that wait.
    (A taker would drop them anyway; the scaling rule reads the count before that.)"""
    limited = ctx.limits.limited_types()
    if not limited:
        return
    ctx.limits.unpark(
        (limit_type, state.id)
        for state in states
        for limit_type in (state.spec.type, ALL_TYPES)
        if limit_type in limited
    )


def wake_after_release(ctx: Context, task_type: str) -> None:
    """A freed slot of ``task_type`` freed a place in its type's limit and in the limit
    of all tasks: start the best task each holds back. (Which types have limits comes
    from a cache of up to two seconds; the scaling routine covers a stale one.)"""
    limited = ctx.limits.limited_types()
    for limit_type in dict.fromkeys((task_type, ALL_TYPES)):
        if limit_type in limited:
            wake(ctx, limit_type, 1)


# -- the routine -------------------------------------------------------------------------


def scale_and_wake(ctx: Context) -> dict[str, int]:
    """Every second: publish the limits if Redis lost them; move each dynamic limit by
    its rule; start as many held-back tasks as each limit has room for (the safety net
    for missed wake-ups, and how a grown limit fills)."""
    report = {"published": 0, "changed": 0, "woken": 0}
    if not ctx.limits.loaded():
        report["published"] = publish(ctx)
    types = ctx.limits.types()
    if not types:
        return report
    live = ctx.limits.live(types)
    with ctx.db.session() as session:
        limits = {limit.type: limit for limit in limits_repo.list_all(session)}
    for limit_type, now in live.items():
        limit = limits.get(limit_type)
        if limit is None:
            continue
        current = _scale(ctx, limit, now)
        report["changed"] += current != now.current
        report["woken"] += wake(ctx, limit_type, current - now.in_flight)
    return report


def _scale(ctx: Context, limit: Limit, live: LiveLimit) -> int:
    """The limit's value after applying its scaling rule once (written to the database
    and Redis, and logged, when it moves)."""
    now_ms = ctx.now_ms()
    change = next_limit(limit.config, live.current, live.waiting, live.up_ms, live.down_ms, now_ms)
    if change is None:
        return live.current
    with ctx.db.session() as session:
        moved = limits_repo.set_current(session, limit.type, live.current, change.to, change.reason, now_ms)
    if not moved or not ctx.limits.set_current(limit.type, change.to, change.grew, now_ms):
        return live.current
    log.info("concurrency limit %r: %d -> %d (%s)", limit.type, live.current, change.to, change.reason)
    return change.to
