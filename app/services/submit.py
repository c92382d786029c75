"""Submitting a task: durable first, then hot state, then the dispatch job."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from sqlalchemy.exc import IntegrityError

from app.core.errors import RedisRefusesWrites, StoreUnavailable
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.services import client_limits, deferred, statistics, waiting
from app.services.context import Context
from app.store import dependencies_repo, tasks_repo
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.submit")


def submit(
    ctx: Context, owner: str, spec: TaskSpec, idempotency_key: str | None = None, as_admin: bool = False
) -> tuple[TaskState, bool]:
    """Store a new task and start it: PENDING and dispatched, or SCHEDULED until its
    ``run_at_ms``, or WAITING until its ``depends_on`` tasks complete (they must exist,
    be readable by ``owner``, or by anyone ``as_admin``, and not have failed). Returns
    (task, created); the same owner and ``idempotency_key`` always return the one task
    first created."""
    if idempotency_key:
        with ctx.db.session() as session:
            row = tasks_repo.find_by_idempotency_key(session, owner, idempotency_key)
            if row is not None:
                return row_to_state(row), False
    with client_limits.admitted(ctx, owner, 1) as admission:
        state, created = _create(ctx, owner, spec, idempotency_key, as_admin)
        admission.stored = created
    return state, created


def _create(
    ctx: Context, owner: str, spec: TaskSpec, idempotency_key: str | None, as_admin: bool
) -> tuple[TaskState, bool]:
    """``submit`` once the client's limits admitted the task."""
    spec = replace(spec, depends_on=tuple(dict.fromkeys(spec.depends_on)))  # one edge each
    dependency_statuses = deferred.validate_dependencies(
        ctx, None if as_admin else owner, list(spec.depends_on)
    )
    now_ms = ctx.now_ms()
    if deferred.initial_status(spec.run_at_ms, dependency_statuses, now_ms) is TaskStatus.PENDING:
        waiting.admit(ctx, [spec])  # past the cap on waiting profiles: 429, nothing stored
    state = TaskState(
        id=str(uuid.uuid4()),
        owner=owner,
        spec=spec,
        status=deferred.initial_status(spec.run_at_ms, dependency_statuses, now_ms),
        version=1,
        created_ms=now_ms,
        updated_ms=now_ms,
    )
    try:
        if spec.depends_on:
            dependencies_repo.insert_with_edges(ctx.db, state, idempotency_key)
        else:
            tasks_repo.insert_task(ctx.db, state, idempotency_key)
    except IntegrityError:
        if not idempotency_key:
            raise
        with ctx.db.session() as session:
            row = tasks_repo.find_by_idempotency_key(session, owner, idempotency_key)
            assert row is not None, "unique violation without the conflicting row"
            return row_to_state(row), False
    if state.status is not TaskStatus.PENDING:
        deferred.after_insert(ctx, [state])
        return state, True
    # The task is durable now. If Redis or the broker fail from here on, the answer is
    # still 201: the orphan sweep (workers.maintenance_jobs) enqueues PENDING tasks it finds.
    # Except when Redis refuses writes (full at maxmemory): the row is taken back and
    # the answer is 503, so a full Redis pushes back on clients instead of the database
    # filling with tasks nothing can start.
    try:
        ctx.tasks.put_if_absent(state, new=True)
    except RedisRefusesWrites:
        _take_back(ctx, state)
        raise
    except StoreUnavailable:
        _missed(ctx, state)
        return state, True
    try:
        ctx.queue.enqueue(state.id, state.attempt)
    except StoreUnavailable:
        _missed(ctx, state)
    return state, True


def _missed(ctx: Context, state: TaskState) -> None:
    log.warning("task %s stored but not enqueued; the orphan sweep will pick it up", state.id)
    statistics.mark_missed(ctx, state.created_ms)


def _take_back(ctx: Context, state: TaskState) -> None:
    """Delete the row of a task Redis refused (the refused script wrote nothing): the
    client is told 503 and may send it again. If the delete fails too, the row stays
    and the orphan sweep starts it once Redis has room."""
    try:
        tasks_repo.delete_unstarted(ctx.db, state.id)
    except StoreUnavailable:
        _missed(ctx, state)
