"""The periodic jobs' use cases: deadlines, waking waiting tasks, reconciling lost state."""

from __future__ import annotations

import logging

from app.core.clock import ms_to_datetime
from app.core.errors import Conflict, NotFound
from app.core.states import TaskStatus
from app.services import outcomes, servers
from app.services.context import Context
from app.store import tasks_repo
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.maintenance")

#: Tasks handled per run of a periodic job, so one run stays short.
BATCH = 500
#: Seconds a PENDING task may sit untouched before the sweep checks it was enqueued.
ORPHAN_AFTER_S = 120


def expire_deadlines(ctx: Context) -> int:
    """Fail every PROCESSING attempt past its deadline as TIMEOUT (retried while the
    budget allows). Returns how many attempts were expired."""
    expired = 0
    for task_id in ctx.tasks.due_deadlines(ctx.now_ms(), BATCH):
        state = ctx.tasks.get(task_id)
        if state is None or state.status is not TaskStatus.PROCESSING:
            continue
        try:
            outcomes.fail(
                ctx,
                task_id,
                state.attempt,
                f"timed out after {state.spec.timeout_s}s on server {state.server_id}",
                outcome=TaskStatus.TIMEOUT,
            )
            expired += 1
        except (Conflict, NotFound):
            continue
    return expired


def wake_for_free_slots(ctx: Context) -> int:
    """Enqueue as many waiting tasks as there are free slots in the fleet."""
    free = ctx.fleet.free_slots()
    return outcomes.wake_waiting(ctx, free) if free > 0 else 0


def reconcile(ctx: Context) -> dict[str, int]:
    """Rebuild server selection data lost from Redis, and re-enqueue PENDING tasks that
    no queue or waiting set holds (a crash between commit and enqueue, a Redis restart)."""
    republished = servers.republish_all(ctx) if ctx.fleet.is_empty() else 0
    cutoff = ms_to_datetime(ctx.now_ms() - ORPHAN_AFTER_S * 1000)
    assert cutoff is not None
    with ctx.db.session() as session:
        rows = tasks_repo.stale_pending(session, cutoff, BATCH)
        states = [row_to_state(row) for row in rows]
    requeued = 0
    for state in states:
        ctx.tasks.put_if_absent(state)
        if not ctx.tasks.is_waiting(state.id):
            ctx.queue.enqueue(state.id, state.attempt)
            requeued += 1
    if requeued or republished:
        log.info("reconcile: %d servers republished, %d tasks re-enqueued", republished, requeued)
    return {"servers": republished, "tasks": requeued}
