"""Submitting a task: durable first, then hot state, then the dispatch job."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.exc import IntegrityError

from app.core.errors import StoreUnavailable
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.services import statistics
from app.services.context import Context
from app.store import tasks_repo
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.submit")


def submit(
    ctx: Context, owner: str, spec: TaskSpec, idempotency_key: str | None = None
) -> tuple[TaskState, bool]:
    """Store a new PENDING task and enqueue its dispatch. Returns (task, created); the
    same owner and ``idempotency_key`` always return the one task first created."""
    if idempotency_key:
        with ctx.db.session() as session:
            row = tasks_repo.find_by_idempotency_key(session, owner, idempotency_key)
            if row is not None:
                return row_to_state(row), False
    now_ms = ctx.now_ms()
    state = TaskState(
        id=str(uuid.uuid4()),
        owner=owner,
        spec=spec,
        status=TaskStatus.PENDING,
        version=1,
        created_ms=now_ms,
        updated_ms=now_ms,
    )
    try:
        tasks_repo.insert_task(ctx.db, state, idempotency_key)
    except IntegrityError:
        if not idempotency_key:
            raise
        with ctx.db.session() as session:
            row = tasks_repo.find_by_idempotency_key(session, owner, idempotency_key)
            assert row is not None, "unique violation without the conflicting row"
            return row_to_state(row), False
    # The task is durable now. If Redis or the broker fail from here on, the answer is
    # still 201: the orphan sweep (workers.maintenance_jobs) enqueues PENDING tasks it finds.
    try:
        ctx.tasks.put_if_absent(state, new=True)
        ctx.queue.enqueue(state.id, state.attempt)
    except StoreUnavailable:
        log.warning("task %s stored but not enqueued; the orphan sweep will pick it up", state.id)
        statistics.mark_missed(ctx, state.created_ms)
    return state, True
