"""How an attempt ends: completed, failed (retry or give up), or reported by callback."""

from __future__ import annotations

import logging
from typing import Any

from app.backends import CallbackClaim
from app.core import signatures
from app.core.backoff import backoff_s
from app.core.balancing import Verdict
from app.core.errors import Conflict, NotFound, Unauthorized
from app.core.states import AttemptOutcome, TaskStatus, attempts_left, is_final
from app.core.task import MAX_TIMEOUT_S, TaskState
from app.services import limits, state_sync, statistics, waiting
from app.services.context import Context
from app.store import tasks_repo
from app.store.tasks_repo import AttemptEnd

log = logging.getLogger("taskfleet.outcomes")

#: Waiting tasks started by one freed slot.
WAKE_PER_RELEASE = 1
#: Seconds a callback token outlives its task's own timeout (clock skew, slow networks).
CALLBACK_GRACE_S = 3600


def release_and_wake(
    ctx: Context,
    state: TaskState | None,
    task_id: str,
    attempt: int,
    verdict: Verdict = Verdict.NONE,
    busy_for_s: float | None = None,
    hold: bool = False,
) -> None:
    """Free the attempt's slot (a no-op if already free), record the server's
    ``verdict``, and start the best waiting task that server can serve (and the best
    ones the attempt's concurrency limits held back). ``hold`` records the verdict but
    keeps the slot (the backend may still be working on a call taskfleet gave up on)."""
    if state is None or not state.server_id:
        return
    now = ctx.now_ms()
    duration = max(0, now - (state.started_ms or now))
    task_type = state.spec.type
    if ctx.fleet.release(
        state.server_id, task_id, attempt, now, verdict, duration, busy_for_s, hold=hold, task_type=task_type
    ):
        waiting.wake(ctx, WAKE_PER_RELEASE, state.server_id)
        limits.wake_after_release(ctx, task_type)


def complete(
    ctx: Context,
    task_id: str,
    attempt: int,
    result: Any,
    current: TaskState | None = None,
    metadata: dict[str, Any] | None = None,
) -> TaskState:
    """PROCESSING at ``attempt`` -> COMPLETED with ``result``; raises ``Conflict`` if the
    task moved on (cancelled, timed out, superseded). ``current``: the task as its
    attempt started, when the caller has it (it says which slot to free); ``metadata``:
    what the backend reported about the attempt, for its record."""
    if current is None or current.attempt != attempt:
        current = ctx.tasks.get(task_id)
    verdict = Verdict.NONE
    now = ctx.now_ms()
    try:
        state = state_sync.apply(
            ctx,
            task_id,
            [TaskStatus.PROCESSING],
            TaskStatus.COMPLETED,
            expect_attempt=attempt,
            attempt_end=AttemptEnd(attempt, AttemptOutcome.COMPLETED, None, now, metadata),
            result=result,
            progress=100,
            finished_ms=now,
            error=None,
        )
        verdict = Verdict.SUCCESS
        return state
    finally:
        release_and_wake(ctx, current, task_id, attempt, verdict)


def fail(
    ctx: Context,
    task_id: str,
    attempt: int,
    message: str,
    retryable: bool = True,
    outcome: TaskStatus = TaskStatus.FAILED,
    verdict: Verdict = Verdict.FAILURE,
    hold_slot: bool = False,
    error_type: str = "failed",
    metadata: dict[str, Any] | None = None,
) -> TaskState:
    """End a PROCESSING attempt as failed: back to PENDING, dispatched again after a
    backoff, while the budget allows and the failure is worth retrying; else to
    ``outcome`` (FAILED or TIMEOUT). ``verdict`` is what the server's metrics and breaker
    record (``Verdict.NONE`` when the server is not to blame, e.g. it went away); ``hold_slot``
    keeps the slot taken after a call that timed out (the backend may still be on it).
    The failure is counted in the error log under (``error_type``, ``message``);
    ``metadata`` (what the backend reported) goes on the attempt's record."""
    current = ctx.tasks.get(task_id) or state_sync.load(ctx, task_id)
    if current is None:
        raise NotFound(f"task {task_id} not found")
    now = ctx.now_ms()
    end = AttemptEnd(attempt, AttemptOutcome(outcome.value), message, now, metadata)
    recorded = Verdict.NONE
    statistics.record_error(ctx, error_type, message)
    try:
        if retryable and attempts_left(attempt, current.retry_base, current.spec.max_retries):
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
            delay_ms = int(backoff_s(attempt - current.retry_base) * 1000)
            ctx.tasks.schedule(task_id, now + delay_ms)
        else:
            used = attempt - current.retry_base
            why = "not retryable" if not retryable else "no retries left"
            state = state_sync.apply(
                ctx,
                task_id,
                [TaskStatus.PROCESSING],
                outcome,
                expect_attempt=attempt,
                attempt_end=end,
                error=f"{message} (attempt {used} of {current.spec.max_retries + 1}, {why})",
                finished_ms=now,
            )
        recorded = verdict
        return state
    finally:
        release_and_wake(ctx, current, task_id, attempt, recorded, hold=hold_slot)


def check_callback_token(ctx: Context, task_id: str, token: str | None) -> CallbackClaim:
    """The claim of a callback URL's token, checked before the body is read: 401 for a
    missing, forged or expired token (against the longest lifetime any task can have),
    403 for another task's."""
    if not token:
        raise Unauthorized("callback token missing (the ?token= of the callback URL)")
    return ctx.tokens.verify(token, task_id, MAX_TIMEOUT_S + CALLBACK_GRACE_S)


def authenticate_callback(
    ctx: Context, task_id: str, claim: CallbackClaim, body: bytes, signature: str | None
) -> TaskState:
    """The rest of a callback's credentials once its token's ``claim`` is known
    (``check_callback_token``), checked before its body is read as an update; returns
    the task as it is now. The token must be younger than the task's own timeout plus
    grace, and the signature (``signature``: the header's value) must satisfy the rule
    of the server running the task (``check_signature``)."""
    state = state_sync.load(ctx, task_id)
    if state is None:
        raise NotFound(f"task {task_id} not found")
    if ctx.now_ms() // 1000 - claim.issued_s > state.spec.timeout_s + CALLBACK_GRACE_S:
        raise Unauthorized("callback token expired")
    check_signature(ctx, state, body, signature)
    return state


def check_signature(ctx: Context, state: TaskState, body: bytes, signature: str | None) -> None:
    """A present signature must match the apiKey of the server running the task; a
    missing one is 401 when that server demands signed callbacks (its own
    ``callbackSignature``, else ``CALLBACK_SIGNATURE`` for servers with an apiKey)."""
    endpoint = ctx.endpoints.get(state.server_id) if state.server_id else None
    if signature is not None:
        secret = endpoint.api_key if endpoint else None
        signatures.verify(signature, secret, body, ctx.now_ms() // 1000)
        return
    if endpoint is not None and signatures.is_required(
        endpoint.callback_signature, ctx.settings.callback_signature, bool(endpoint.api_key)
    ):
        raise Unauthorized(f"server {state.server_id} requires signed callbacks: {signatures.HEADER} missing")


def _attempt_metadata(ctx: Context, task_id: str, attempt: int) -> dict[str, Any] | None:
    with ctx.db.session() as session:
        return tasks_repo.attempt_metadata_of(session, task_id, attempt)


def callback(
    ctx: Context, task_id: str, attempt: int, update: dict[str, Any], current: TaskState | None = None
) -> TaskState:
    """A backend's update for ``attempt`` (``current``: the task, if the caller just
    read it). A repeat of the update that ended the task answers the same (and makes
    sure the database has it); anything else for a task that moved on is 409. A
    PROCESSING update records a transition only when it changes something: progress
    only ever grows within an attempt, and metadata equal to what the attempt has is
    no change; otherwise it answers the task as it is (its chunk, if any, is still
    relayed), so a replayed or retried update costs no row and no version."""
    state = current or state_sync.load(ctx, task_id)
    if state is None:
        raise NotFound(f"task {task_id} not found")
    status = update["status"]
    if is_final(state.status):
        if state.attempt == attempt and state.status.value == status:
            state_sync.persist(ctx, state)
            return state  # a duplicate of the callback that finished it: no second effect
        if state.attempt == attempt and status != TaskStatus.PROCESSING.value:
            release_and_wake(ctx, state, task_id, attempt)  # the backend is done with it now
        raise Conflict(f"task {task_id} is already {state.status}", state.status.value)
    if state.status is not TaskStatus.PROCESSING or state.attempt != attempt:
        raise Conflict(f"attempt {attempt} of task {task_id} is no longer running", state.status.value)
    if update.get("chunk") is not None:  # streamed output: an event, not a transition
        ctx.events.append_chunks(task_id, attempt, [update["chunk"]])
    metadata = update.get("metadata")
    if status == TaskStatus.COMPLETED.value:
        return complete(ctx, task_id, attempt, update.get("result"), metadata=metadata)
    if status == TaskStatus.FAILED.value:
        message = update.get("error") or "backend reported failure"
        return fail(ctx, task_id, attempt, message, error_type="reported", metadata=metadata)
    fields: dict[str, Any] = {}
    progress = update.get("progress")
    if progress is not None and progress > state.progress:
        fields["progress"] = progress  # never backwards: a late or replayed update keeps it
    if not fields and metadata is not None and metadata == _attempt_metadata(ctx, task_id, attempt):
        metadata = None
    if not fields and metadata is None:
        return state  # a repeat, a stale progress or only a chunk: nothing to record
    return state_sync.apply(
        ctx,
        task_id,
        [TaskStatus.PROCESSING],
        TaskStatus.PROCESSING,
        expect_attempt=attempt,
        attempt_metadata=metadata,
        **fields,
    )
