"""What every way of running an attempt on a backend shares (one call, a batch, a
poll): the predict request, how long the backend may take, and ending an attempt that
failed or found the backend busy."""

from __future__ import annotations

import logging
from enum import StrEnum

from app.backends import PredictCall
from app.core.balancing import Verdict
from app.core.errors import BackendBusy, Conflict
from app.core.states import AttemptOutcome, TaskMode, TaskStatus
from app.core.task import TaskState
from app.services import outcomes, state_sync, waiting
from app.services.context import Context
from app.store.servers_repo import Endpoint
from app.store.tasks_repo import AttemptEnd

log = logging.getLogger("taskfleet.dispatch")


class DispatchResult(StrEnum):
    STALE = "stale"  # the job's attempt already moved on: nothing done
    WAITING = "waiting"  # no server had room: parked in the waiting set
    COMPLETED = "completed"  # sync answer stored
    ACCEPTED = "accepted"  # callback mode: the backend will PUT the result
    BUSY = "busy"  # the backend said 429/503: requeued without spending the attempt
    POLLING = "polling"  # poll mode: the backend took the job; its status is polled
    GATHERING = "gathering"  # batch server: waiting in a batch for more tasks or time
    BATCHED = "batched"  # batch server: sent with a batch (each task's own outcome)
    FAILED = "failed"  # the attempt failed; retried later or given up


def predict_call(ctx: Context, state: TaskState, endpoint: Endpoint) -> PredictCall:
    """The predict request of the task's running attempt."""
    return PredictCall(
        url=endpoint.predict_url,
        api_key=endpoint.api_key,
        task_id=state.id,
        request={
            "type": state.spec.type,
            "payload": state_sync.payload_of(ctx, state),
            "mode": state.spec.mode.value,
            "async": state.spec.mode is TaskMode.CALLBACK,
            "priority": state.spec.priority,
            **({"stream": True} if state.spec.stream else {}),
        },
        callback_url=ctx.tokens.url(ctx.settings.public_url, state.id, state.attempt),
        timeout_s=call_timeout_s(ctx, state, endpoint),
    )


def call_timeout_s(ctx: Context, state: TaskState, endpoint: Endpoint) -> float:
    """How long the backend may take to answer: what is left of the attempt's timeout,
    or the server's own ``timeoutSeconds`` if that is lower."""
    deadline_ms = (state.started_ms or ctx.now_ms()) + state.spec.timeout_s * 1000
    left_s = max(0.001, (deadline_ms - ctx.now_ms()) / 1000)
    return min(left_s, endpoint.timeout_s) if endpoint.timeout_s else left_s


def fail_quietly(
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


def requeue_busy(ctx: Context, state: TaskState, busy: BackendBusy) -> None:
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


def fail_server_gone(ctx: Context, state: TaskState) -> None:
    """The attempt's server was unregistered meanwhile: fail it (retried elsewhere)."""
    fail_quietly(ctx, state, f"server {state.server_id} is no longer registered", error_type="server_removed")
