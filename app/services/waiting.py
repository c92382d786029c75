"""Tasks waiting for a free slot: parking them, and waking the ones a freed server can
serve without busy polling.

A freed slot goes to the waiting client (the task's owner) most behind its weighted
fair share, then to that client's best task by priority then age: priority orders a
client's own tasks only. With ``FAIR_SHARE=off`` every task waits as one client's, in
one global order. The work per wake-up depends on the profiles the freed server's pool
can serve, never on how many profiles wait (see ``app.store.waiting_lines``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from app.core.errors import ProfileCapReached, RedisRefusesWrites, StoreUnavailable
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState, front_of_line_score, waiting_score
from app.services.context import Context
from app.store.waiting_lines import EVERYONE, Entry, profile_id

log = logging.getLogger("taskfleet.waiting")


def _client(ctx: Context, state: TaskState) -> str:
    return (state.owner or EVERYONE) if ctx.settings.fair_share else EVERYONE


def _entry(ctx: Context, state: TaskState, front: bool = False) -> Entry:
    spec = state.spec
    normal = waiting_score(spec.priority, state.created_ms)
    ahead = front_of_line_score(spec.priority)
    return Entry(
        task_id=state.id,
        capabilities=spec.capabilities,
        group=spec.group,
        client=_client(ctx, state),
        score=ahead if front else normal,
        other=normal if front else ahead,
    )


def _pools(ctx: Context, entry: Entry) -> list[str]:
    return ctx.fleet.candidate_pools(entry.capabilities, entry.group, None)[0]


def _index_missed(ctx: Context, entries: Iterable[Entry]) -> None:
    """New profiles were indexed under cached candidate pools: add any pool created
    since (read fresh for all of them in one round trip; once per new profile)."""
    new = list(entries)
    fresh = ctx.fleet.serving_pools([(e.capabilities, e.group) for e in new])
    for entry, pools in zip(new, fresh, strict=True):
        missed = set(pools) - set(_pools(ctx, entry))
        if missed:
            ctx.waiting.add_to_pools(entry.profile, missed)


def park(ctx: Context, state: TaskState, front: bool = False) -> None:
    """Put a PENDING task in its profile's line under its client (``front``: ahead of
    the client's tasks of its priority)."""
    entry = _entry(ctx, state, front)
    if ctx.waiting.park(entry, _pools(ctx, entry)):
        _index_missed(ctx, [entry])


def park_many(ctx: Context, states: Sequence[TaskState]) -> None:
    """``park`` for many tasks (a job's), one script call per (profile, client)."""
    entries = [_entry(ctx, state) for state in states]
    new = set(ctx.waiting.park_many(entries, lambda e: _pools(ctx, e)))
    if new:
        _index_missed(ctx, {e.profile: e for e in entries if e.profile in new}.values())


def unpark(ctx: Context, states: Sequence[TaskState]) -> int:
    """Take tasks that left PENDING some other way (cancelled, timed out) out of their
    lines; a profile left empty is forgotten."""
    entries = [_entry(ctx, state) for state in states]
    return ctx.waiting.unpark(entries, lambda e: _pools(ctx, e)) if entries else 0


def which_parked(ctx: Context, states: list[TaskState]) -> list[bool]:
    """For each task: is it in its waiting line? (One round trip for them all.)"""
    return ctx.waiting.which_contain([_entry(ctx, s) for s in states])


def admit(ctx: Context, specs: Iterable[TaskSpec]) -> None:
    """Refuse (``ProfileCapReached``, nothing written) tasks that no server can serve
    when their new profiles would pass ``MAX_WAITING_PROFILES``; admit them (all of
    them) otherwise. Profiles some server serves are always admitted: their number is
    bounded by the fleet's own capabilities and groups, and one client's made-up
    capabilities must not lock everyone else out."""
    cap = ctx.settings.max_waiting_profiles
    try:
        unserved: dict[str, tuple[Sequence[str], str | None]] = {}
        for spec in specs:
            pid = profile_id(spec.capabilities, spec.group)
            if pid not in unserved and not ctx.fleet.candidate_pools(spec.capabilities, spec.group, None)[0]:
                unserved[pid] = (spec.capabilities, spec.group)
        admitted = not unserved or ctx.waiting.admit(unserved.values(), cap)
    except RedisRefusesWrites:
        raise  # full: it would refuse the task too (503, nothing stored)
    except StoreUnavailable:
        # Tasks are accepted durably without Redis (the orphan sweep parks them when it
        # is back), as the client limits are: the cap is not checked meanwhile.
        log.warning("waiting-profile cap not checked: redis unavailable")
        return
    if not admitted:
        raise ProfileCapReached(cap)


def _take(ctx: Context, pool_id: str, count: int) -> int:
    """Enqueue up to ``count`` waiting tasks the pool serves (stale entries dropped)."""
    woken = 0
    while woken < count:
        taken = ctx.waiting.take(pool_id, count - woken, ctx.settings.fair_share)
        if not taken:
            break
        for task_id, state in zip(taken, ctx.tasks.get_many(taken), strict=True):
            if state is not None and state.status is TaskStatus.PENDING:
                ctx.queue.enqueue(task_id, state.attempt)
                woken += 1
    return woken


def wake(ctx: Context, count: int, server_id: str | None = None) -> int:
    """Enqueue dispatch for up to ``count`` waiting tasks among the profiles that
    ``server_id``'s pool can serve (or, without a server, the pools with free slots)."""
    if count <= 0:
        return 0
    if server_id is not None:
        pool_id = ctx.fleet.pool_of_server(server_id)
        return _take(ctx, pool_id, count) if pool_id else 0
    woken = 0
    for pool_id, free in ctx.fleet.free_by_pool().items():
        if woken >= count:
            break
        woken += _take(ctx, pool_id, min(free, count - woken))
    return woken


def wake_for_free_slots(ctx: Context) -> int:
    """The beat safety net: per pool with free slots, as many waiting tasks as it has
    free slots (a Redis call per pool, none per waiting profile)."""
    woken = 0
    for pool_id, free in ctx.fleet.free_by_pool().items():
        woken += _take(ctx, pool_id, free)
    return woken


def index_pool(ctx: Context, pool_id: str) -> int:
    """A pool was created: make the waiting profiles it can serve findable by it."""
    meta = ctx.fleet.pool_meta(pool_id)
    return ctx.waiting.index_pool(pool_id, meta.serves)
