"""Dispatching one task attempt: reserve a slot, mark PROCESSING, call the backend."""

from __future__ import annotations

import logging
from enum import StrEnum

from app.backends import PredictCall
from app.core.balancing import Verdict
from app.core.errors import BackendBusy, BackendError, Conflict
from app.core.states import AttemptOutcome, TaskMode, TaskStatus
from app.core.task import TaskState
from app.services import liveness, outcomes, state_sync, waiting
from app.services.context import Context
from app.store.tasks_repo import AttemptEnd

log = logging.getLogger("taskfleet.dispatch")


class DispatchResult(StrEnum):
    STALE = "stale"  # the job's attempt already moved on: nothing done
    WAITING = "waiting"  # no server had room: parked in the waiting set
    COMPLETED = "completed"  # sync answer stored
    ACCEPTED = "accepted"  # callback mode: the backend will PUT the result
    BUSY = "busy"  # the backend said 429/503: requeued without spending the attempt
    FAILED = "failed"  # the attempt failed; retried later or given up


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
    )


def dispatch(ctx: Context, task_id: str, attempt: int) -> DispatchResult:
    """Run the attempt after ``attempt`` for a PENDING task. A job whose ``attempt`` is
    not the task's current one is stale (a duplicate or redelivered message) and does
    nothing, so dispatch jobs are safe to deliver more than once."""
    state = state_sync.load(ctx, task_id)
    if state is None or state.status is not TaskStatus.PENDING or state.attempt != attempt:
        return DispatchResult.STALE
    next_attempt = attempt + 1
    server_id = _reserve(ctx, state, next_attempt)
    if server_id is None:
        waiting.park(ctx, state)
        # A slot freed between the reservation and the parking would have woken nobody.
        server_id = _reserve(ctx, state, next_attempt)
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
        ctx.fleet.release(server_id, task_id, next_attempt, ctx.now_ms())
        return DispatchResult.STALE
    return _call_backend(ctx, state)


def _call_backend(ctx: Context, state: TaskState) -> DispatchResult:
    attempt, server_id = state.attempt, state.server_id
    assert server_id is not None
    endpoint = ctx.endpoints.get(server_id)
    if endpoint is None:
        _fail_quietly(ctx, state, f"server {server_id} is no longer registered", error_type="server_removed")
        return DispatchResult.FAILED
    call = PredictCall(
        url=endpoint.predict_url,
        api_key=endpoint.api_key,
        task_id=state.id,
        request={
            "type": state.spec.type,
            "payload": state_sync.payload_of(ctx, state),
            "async": state.spec.mode is TaskMode.CALLBACK,
            "priority": state.spec.priority,
        },
        callback_url=ctx.tokens.url(ctx.settings.public_url, state.id, attempt),
    )
    try:
        with liveness.heartbeat(ctx, state.id, attempt, state.started_ms):
            answer = ctx.backends.predict(call)
    except BackendBusy as busy:
        _requeue_busy(ctx, state, busy)
        return DispatchResult.BUSY
    except BackendError as exc:
        # After a timeout the backend may still be working on the call: keep its slot.
        hold = exc.kind == "timeout"
        _fail_quietly(ctx, state, f"server {server_id}: {exc.message}", exc.retryable, hold, exc.kind)
        return DispatchResult.FAILED
    if state.spec.mode is TaskMode.CALLBACK:
        return DispatchResult.ACCEPTED
    try:
        outcomes.complete(ctx, state.id, attempt, answer, current=state)
    except Conflict:
        log.info("task %s attempt %s answered after it moved on", state.id, attempt)
        return DispatchResult.STALE
    return DispatchResult.COMPLETED


def _fail_quietly(
    ctx: Context,
    state: TaskState,
    message: str,
    retryable: bool = True,
    hold_slot: bool = False,
    error_type: str = "failed",
) -> None:
    try:
        outcomes.fail(
            ctx, state.id, state.attempt, message, retryable, hold_slot=hold_slot, error_type=error_type
        )
    except Conflict:
        log.info("task %s attempt %s failed after it moved on", state.id, state.attempt)


def _requeue_busy(ctx: Context, state: TaskState, busy: BackendBusy) -> None:
    """Back to PENDING without spending the attempt (the budget base moves up by one), at
    the front of the waiting line; the server is skipped until its Retry-After passes."""
    try:
        state_sync.apply(
            ctx,
            state.id,
            [TaskStatus.PROCESSING],
            TaskStatus.PENDING,
            expect_attempt=state.attempt,
            retry_base=state.retry_base + 1,
            server_id=None,
            attempt_end=AttemptEnd(state.attempt, AttemptOutcome.BUSY, busy.message, ctx.now_ms()),
        )
    except Conflict:
        return
    finally:
        outcomes.release_and_wake(ctx, state, state.id, state.attempt, Verdict.BUSY, busy.retry_after_s)
    waiting.park(ctx, state, front=True)
    waiting.wake(ctx, 1)
