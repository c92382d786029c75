"""Settling dependents: when a task ends, the WAITING tasks that depend on it are
released (all their dependencies COMPLETED) or failed (one ended FAILED, TIMEOUT or
CANCELLED), and a failure travels on to their own dependents.

The edges are in the database (``task_dependencies``, indexed from the dependency's
end), and a task some task depends on is flagged (``tasks.has_dependents``, set under
its row lock by the dependent's own transaction). On Postgres a task that ends costs
nothing more when nothing depends on it (its final write reads the flag), and one
indexed query plus work per dependent when something does; nothing in Redis is needed,
so a Redis loss loses no edge. ``state_sync`` calls ``on_final`` after the row of every
final transition is written; a process killed before it settles leaves the WAITING
rows for ``deferred.sweep`` to settle."""

from __future__ import annotations

import logging

from app.core import deferral
from app.core.errors import Conflict, NotFound, StoreUnavailable
from app.core.states import TaskStatus
from app.core.task import TaskState
from app.services import state_sync, statistics
from app.services.context import Context
from app.store import dependencies_repo
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.dependencies")

#: Finished tasks whose dependents are looked up in one query.
BATCH = 500


def on_final(ctx: Context, state: TaskState) -> None:
    """``state`` (final, its row written) settles its dependents. A store failure is
    logged, not raised: the transition stands, and the sweep settles them later."""
    on_final_many(ctx, [state.id])


def on_final_many(ctx: Context, task_ids: list[str]) -> None:
    """``on_final`` for tasks that ended together (their rows written)."""
    if not task_ids:
        return
    try:
        settle_finished(ctx, task_ids)
    except StoreUnavailable:
        log.warning("dependents of %d tasks not settled: store unavailable; the sweep will", len(task_ids))


def settle_finished(ctx: Context, finished_ids: list[str]) -> int:
    """Settle the WAITING dependents of tasks that are final, and theirs in turn when a
    failure travels on (a work list, not recursion: a chain of any length is fine).
    Returns how many dependents changed status."""
    todo, settled = list(finished_ids), 0
    while todo:
        batch, todo = todo[:BATCH], todo[BATCH:]
        dependents = dependencies_repo.waiting_dependents(ctx.db, batch)
        if dependents:
            released, failed = settle_waiting(ctx, dependents)
            settled += released + len(failed)
            todo.extend(failed)
    return settled


def settle_waiting(ctx: Context, task_ids: list[str]) -> tuple[int, list[str]]:
    """Look at the dependencies of these tasks (those still WAITING): release each whose
    dependencies all COMPLETED, fail each with one that ended otherwise. Returns (how
    many were released, the ids of those failed: their own dependents are next)."""
    with ctx.db.session() as session:
        deps = dependencies_repo.dependency_statuses(session, task_ids)
        broken = {t: dep for t, of in deps.items() if (dep := deferral.broken_dependency(of)) is not None}
        ready = {t for t, of in deps.items() if deferral.all_completed(of)}
        if not ready and not broken:
            return 0, []  # the common answer: still waiting, one query
        rows = dependencies_repo.waiting_rows(session, sorted(ready | broken.keys()))
    states = [row_to_state(row) for row in rows]
    # Their hot state in one round trip, rather than one rebuild per transition.
    ctx.tasks.put_many_if_absent(states)
    released = sum(1 for state in states if state.id in ready and _release(ctx, state))
    failed = [
        state.id for state in states if state.id in broken and _fail(ctx, state, broken[state.id], deps)
    ]
    return released, failed


def _release(ctx: Context, state: TaskState) -> bool:
    """WAITING -> PENDING (and dispatched) or SCHEDULED (and on the start schedule)."""
    now = ctx.now_ms()
    target = deferral.status_when_ready(state.spec.run_at_ms, now)
    try:
        moved = state_sync.apply(ctx, state.id, [TaskStatus.WAITING], target, now_ms=now, settle=False)
    except (Conflict, NotFound):
        return False  # settled by another process meanwhile, or cancelled
    # Killed here: the orphan sweep enqueues a PENDING task, the deferred sweep puts a
    # SCHEDULED one back on the schedule.
    if target is TaskStatus.PENDING:
        ctx.queue.enqueue(moved.id, moved.attempt)
    else:
        ctx.starts.add_many([(moved.id, state.spec.run_at_ms or now)])
    return True


def _fail(ctx: Context, state: TaskState, dep_id: str, deps: dict[str, dict[str, TaskStatus | None]]) -> bool:
    """WAITING -> FAILED, naming the dependency that ended without completing."""
    dep_status = deps[state.id][dep_id]
    now = ctx.now_ms()
    try:
        state_sync.apply(
            ctx,
            state.id,
            [TaskStatus.WAITING],
            TaskStatus.FAILED,
            now_ms=now,
            settle=False,
            error=deferral.upstream_failed_error(dep_id, dep_status),
            finished_ms=now,
        )
    except (Conflict, NotFound):
        return False
    ended = dep_status.value if dep_status is not None else "missing"
    statistics.record_error(ctx, deferral.UPSTREAM_FAILED, f"a dependency ended {ended}")
    return True
