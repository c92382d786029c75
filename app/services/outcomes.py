"""How an attempt ends: completed, failed (retry or give up), or reported by callback."""

from __future__ import annotations

import logging
from typing import Any

from app.core.backoff import backoff_s
from app.core.errors import Conflict, NotFound
from app.core.states import TaskStatus, attempts_left, is_final
from app.core.task import TaskState
from app.services import state_sync
from app.services.context import Context
from app.store.tasks_repo import AttemptEnd

log = logging.getLogger("taskfleet.outcomes")

#: Slots freed by one finished attempt start at most this many waiting tasks.
WAKE_PER_RELEASE = 1


def release_and_wake(
    ctx: Context,
    state: TaskState | None,
    task_id: str,
    attempt: int,
    verdict: str = "none",
    busy_for_s: float | None = None,
) -> None:
    """Free the attempt's slot (a no-op if already free), record the server's
    ``verdict`` ('success', 'failure', 'busy' or 'none'), and start the next waiting task."""
    if state is None or not state.server_id:
        return
    started = state.started_ms or ctx.now_ms()
    if ctx.fleet.release(
        state.server_id,
        task_id,
        attempt,
        ctx.now_ms(),
        verdict,
        max(0, ctx.now_ms() - started),
        busy_for_s,
    ):
        wake_waiting(ctx, WAKE_PER_RELEASE)


def wake_waiting(ctx: Context, count: int) -> int:
    """Enqueue dispatch for the ``count`` best waiting tasks (priority, then age)."""
    woken = 0
    for task_id in ctx.tasks.pop_waiting(count):
        state = ctx.tasks.get(task_id)
        if state is not None and state.status is TaskStatus.PENDING:
            ctx.queue.enqueue(task_id, state.attempt)
            woken += 1
    return woken


def complete(ctx: Context, task_id: str, attempt: int, result: Any) -> TaskState:
    """PROCESSING at ``attempt`` -> COMPLETED with ``result``; raises ``Conflict`` if the
    task moved on (cancelled, timed out, superseded)."""
    current = ctx.tasks.get(task_id)
    try:
        return state_sync.apply(
            ctx,
            task_id,
            [TaskStatus.PROCESSING],
            TaskStatus.COMPLETED,
            expect_attempt=attempt,
            attempt_end=AttemptEnd(attempt, "COMPLETED", None, ctx.now_ms()),
            result=result,
            progress=100,
            finished_ms=ctx.now_ms(),
            error=None,
        )
    finally:
        release_and_wake(ctx, current, task_id, attempt, "success")


def fail(
    ctx: Context,
    task_id: str,
    attempt: int,
    message: str,
    retryable: bool = True,
    outcome: TaskStatus = TaskStatus.FAILED,
    verdict: str = "failure",
) -> TaskState:
    """End a PROCESSING attempt as failed: back to PENDING with a backoff while the budget
    allows and the failure is worth retrying, else to ``outcome`` (FAILED or TIMEOUT).
    ``verdict`` is what the server's metrics and breaker record ('none' when the server
    is not to blame, e.g. it went away)."""
    current = ctx.tasks.get(task_id) or state_sync.load(ctx, task_id)
    if current is None:
        raise NotFound(f"task {task_id} not found")
    end = AttemptEnd(attempt, outcome.value, message, ctx.now_ms())
    try:
        budget = attempts_left(attempt, current.retry_base, current.spec.max_retries)
        if retryable and budget:
            state = state_sync.apply(
                ctx,
                task_id,
                [TaskStatus.PROCESSING],
                TaskStatus.PENDING,
                expect_attempt=attempt,
                attempt_end=end,
                error=message,
                server_id=None,
                avoid_server_id=current.server_id,
            )
            ctx.queue.enqueue(task_id, attempt, countdown_s=backoff_s(attempt - current.retry_base))
            return state
        used = attempt - current.retry_base
        final_message = f"{message} (attempt {used} of {current.spec.max_retries + 1}" + (
            ", not retryable)" if not retryable else ", no retries left)"
        )
        return state_sync.apply(
            ctx,
            task_id,
            [TaskStatus.PROCESSING],
            outcome,
            expect_attempt=attempt,
            attempt_end=end,
            error=final_message,
            finished_ms=ctx.now_ms(),
        )
    finally:
        release_and_wake(ctx, current, task_id, attempt, verdict)


def callback(ctx: Context, task_id: str, attempt: int, update: dict[str, Any]) -> TaskState:
    """A backend's PUT to its callback URL for ``attempt``. A repeat of the update that
    ended the task answers the same; anything else for a task that moved on is 409."""
    state = state_sync.load(ctx, task_id)
    if state is None:
        raise NotFound(f"task {task_id} not found")
    status = update["status"]
    if is_final(state.status):
        if state.attempt == attempt and state.status.value == status:
            return state  # a duplicate of the callback that finished it: no second effect
        raise Conflict(f"task {task_id} is already {state.status}", state.status.value)
    if state.status is not TaskStatus.PROCESSING or state.attempt != attempt:
        raise Conflict(f"attempt {attempt} of task {task_id} is no longer running", state.status.value)
    if status == TaskStatus.COMPLETED.value:
        return complete(ctx, task_id, attempt, update.get("result"))
    if status == TaskStatus.FAILED.value:
        return fail(ctx, task_id, attempt, update.get("error") or "backend reported failure")
    fields: dict[str, Any] = {}
    if update.get("progress") is not None:
        fields["progress"] = update["progress"]
    return state_sync.apply(
        ctx,
        task_id,
        [TaskStatus.PROCESSING],
        TaskStatus.PROCESSING,
        expect_attempt=attempt,
        **fields,
    )
