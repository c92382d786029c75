"""Dispatching one task attempt: reserve a slot, mark PROCESSING, call the backend."""

from __future__ import annotations

import logging

from app.core.errors import (
    BackendBusy,
    BackendError,
    Conflict,
    LimitReached,
    LimitsNotLoaded,
    StoreUnavailable,
)
from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskState
from app.services import batching, limits, liveness, outcomes, polling, state_sync, streaming, waiting
from app.services.attempt_calls import (
    DispatchResult,
    fail_quietly,
    fail_server_gone,
    predict_call,
    requeue_busy,
)
from app.services.context import Context
from app.store import tasks_repo
from app.store.servers_repo import Endpoint

log = logging.getLogger("taskfleet.dispatch")


def _reserve(ctx: Context, state: TaskState, attempt: int) -> str | None:
    spec = state.spec
    return ctx.fleet.reserve(
        state.id,
        attempt,
        spec.capabilities,
        group=spec.group,
        region=spec.region,
        cost=ctx.settings.slot_cost(spec.type),
        avoid=ctx.tasks.server_to_avoid(state.id) if state.attempt else None,
        now_ms=ctx.now_ms(),
        task_type=spec.type,
    )


def _reserve_loaded(ctx: Context, state: TaskState, attempt: int) -> str | None:
    """``_reserve``, publishing the concurrency limits first if Redis has none. Raises
    ``LimitsNotLoaded`` instead while Redis awaits its rebuild and attempts run: Redis
    lost their slots, and reservations wait until reconcile has put them back and
    published the limits itself, or a server would be given more than its
    ``maxConcurrent``."""
    try:
        return _reserve(ctx, state, attempt)
    except LimitsNotLoaded:
        if ctx.tasks.needs_rebuild() and _attempts_running(ctx):
            raise
        limits.publish(ctx)
        return _reserve(ctx, state, attempt)


def _attempts_running(ctx: Context) -> bool:
    with ctx.db.session() as session:
        return bool(tasks_repo.in_status(session, [TaskStatus.PROCESSING], "", 1))


def _reserve_or_park(ctx: Context, state: TaskState, attempt: int) -> str | None:
    """A server for the attempt, or None with the task parked where it waits: the line
    of the concurrency limit that is full, else its profile's line (no server free)."""
    parked = False
    try:
        server_id = _reserve_loaded(ctx, state, attempt)
    except LimitReached as full:
        limits.park(ctx, state, full.limit_type)
    else:
        if server_id is not None:
            return server_id
        waiting.park(ctx, state)
        parked = True
    # A slot or a limit's place freed between the reservation and the parking would
    # have woken nobody: try once more.
    try:
        server_id = _reserve_loaded(ctx, state, attempt)
    except LimitReached:
        return None
    if server_id is None:
        waiting.park(ctx, state)  # no-op if parked there already; else held by a server now
    elif parked:
        waiting.unpark(ctx, [state])  # it has a slot: its entry would only linger
    return server_id


def dispatch(ctx: Context, task_id: str, attempt: int) -> DispatchResult:
    """Run the attempt after ``attempt`` for a PENDING task. A job whose ``attempt`` is
    not the task's current one is stale (a duplicate or redelivered message) and does
    nothing, so dispatch jobs are safe to deliver more than once."""
    state = state_sync.load(ctx, task_id)
    if state is None or state.status is not TaskStatus.PENDING or state.attempt != attempt:
        return DispatchResult.STALE
    next_attempt = attempt + 1
    try:
        server_id = _reserve_or_park(ctx, state, next_attempt)
    except LimitsNotLoaded:
        ctx.tasks.schedule(task_id, ctx.now_ms() + int(limits.NOT_LOADED_RETRY_S * 1000))
        return DispatchResult.WAITING
    if server_id is None:
        return DispatchResult.WAITING
    now = ctx.now_ms()
    try:
        state = state_sync.apply(
            ctx,
            task_id,
            [TaskStatus.PENDING],
            TaskStatus.PROCESSING,
            expect_attempt=attempt,
            now_ms=now,
            attempt=next_attempt,
            server_id=server_id,
            started_ms=now,
            progress=0,
        )
    except Conflict:
        ctx.fleet.release(server_id, task_id, next_attempt, ctx.now_ms(), task_type=state.spec.type)
        return DispatchResult.STALE
    except StoreUnavailable:
        started = _started_without_its_row(ctx, task_id, next_attempt)
        if started is None:
            raise
        state = started
    return _call_backend(ctx, state)


def _started_without_its_row(ctx: Context, task_id: str, attempt: int) -> TaskState | None:
    """The attempt's start when it took in Redis and only the database missed it (its
    row follows through reconcile): the backend must still be called, or a callback
    task would hold its slot unused until its timeout. None when it did not take."""
    try:
        state = ctx.tasks.get(task_id)
    except StoreUnavailable:
        return None
    if state is None or state.status is not TaskStatus.PROCESSING or state.attempt != attempt:
        return None
    log.warning("task %s attempt %s started; its row waits for the database", task_id, attempt)
    return state


def _call_backend(ctx: Context, state: TaskState) -> DispatchResult:
    server_id = state.server_id
    assert server_id is not None
    endpoint = ctx.endpoints.get(server_id)
    if endpoint is None:
        fail_server_gone(ctx, state)
        return DispatchResult.FAILED
    if endpoint.batch is not None:
        return batching.join(ctx, state, endpoint)
    return call_backend(ctx, state, endpoint)


def call_backend(ctx: Context, state: TaskState, endpoint: Endpoint) -> DispatchResult:
    """One predict call for the running attempt, and what its answer means by mode."""
    attempt, server_id = state.attempt, state.server_id
    call = predict_call(ctx, state, endpoint)
    try:
        with liveness.heartbeat(ctx, state.id, attempt, state.started_ms):
            if state.spec.mode is TaskMode.SYNC:  # its answer may stream
                answer = ctx.backends.predict(call, streaming.relay(ctx, state.id, attempt))
            else:
                answer = ctx.backends.predict(call)
    except Conflict:  # the task moved on while its answer streamed: stop reading it
        log.info("task %s attempt %s moved on while its answer streamed", state.id, attempt)
        outcomes.release_and_wake(ctx, state, state.id, attempt)
        return DispatchResult.STALE
    except BackendBusy as busy:
        requeue_busy(ctx, state, busy)
        return DispatchResult.BUSY
    except BackendError as exc:
        # After a timeout the backend may still be working on the call: keep its slot.
        hold = exc.kind == "timeout"
        fail_quietly(ctx, state, f"server {server_id}: {exc.message}", exc.retryable, hold, exc.kind)
        return DispatchResult.FAILED
    if state.spec.mode is TaskMode.CALLBACK:
        return DispatchResult.ACCEPTED
    if state.spec.mode is TaskMode.POLL:
        return polling.start(ctx, state, endpoint, answer)
    try:
        outcomes.complete(ctx, state.id, attempt, answer, current=state)
    except Conflict:
        log.info("task %s attempt %s answered after it moved on", state.id, attempt)
        return DispatchResult.STALE
    return DispatchResult.COMPLETED
