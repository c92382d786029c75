"""Batches to backends that take several tasks per call (``batch`` on a server).

A task attempt that holds a slot on such a server joins the batch gathering for (that
server, its type, its mode). The batch goes out when it holds ``maxSize`` attempts (the
dispatch that filled it sends it) or when its oldest attempt has waited ``maxWaitMs``
(beat starts a send job). It is never larger than the slots its attempts hold: each
holds one. One call carries ``{"batch": [<predict body>, ...]}``; a sync answer is
``{"results": [...]}`` in the same order, each item shaped like a callback body.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from app import jobs
from app.core.balancing import Verdict
from app.core.errors import BackendBusy, BackendError, Conflict, NotFound
from app.core.servers import BatchConfig
from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskState
from app.services import limits, liveness, outcomes, polling, waiting
from app.services.attempt_calls import (
    DispatchResult,
    fail_quietly,
    fail_server_gone,
    predict_call,
    requeue_busy,
)
from app.services.context import Context
from app.store.batch_lines import BatchLine, line_of
from app.store.servers_repo import Endpoint

log = logging.getLogger("taskfleet.batching")

#: Batches claimed per beat tick.
BATCH_CLAIMS = 200
#: Seconds a claimed batch is left to its send job before it is due again (a lost job).
CLAIM_LEASE_S = 30
#: A batch taken from a server that no longer takes batches: sent one task per call.
ALL_AT_ONCE = BatchConfig(max_size=1000, max_wait_ms=0)


def join(ctx: Context, state: TaskState, endpoint: Endpoint) -> DispatchResult:
    """Put the running attempt in its batch; send the batch if that filled it."""
    assert endpoint.batch is not None
    line = line_of(state)
    taken = ctx.batches.join(line, state.id, state.attempt, endpoint.batch, ctx.now_ms())
    if not taken:
        return DispatchResult.GATHERING
    send(ctx, line, endpoint, taken)
    return DispatchResult.BATCHED


def claim_due(ctx: Context) -> int:
    """Beat: start a send job for every batch whose oldest attempt waited long enough."""
    lines = ctx.batches.claim_due(ctx.now_ms(), CLAIM_LEASE_S * 1000, BATCH_CLAIMS)
    for line in lines:
        ctx.queue.call_later(jobs.SEND_BATCH, [line.id])
    return len(lines)


def send_due(ctx: Context, batch_id: str) -> int:
    """The send job: take the batch's oldest attempts (up to a batch) and send them."""
    line = BatchLine.from_id(batch_id)
    endpoint = ctx.endpoints.get(line.server_id)
    taken = ctx.batches.take(line, endpoint.batch if endpoint and endpoint.batch else ALL_AT_ONCE)
    if endpoint is None:
        for state in _still_running(ctx, line, taken):
            fail_server_gone(ctx, state)
        return len(taken)
    send(ctx, line, endpoint, taken)
    return len(taken)


def _still_running(ctx: Context, line: BatchLine, members: list[tuple[str, int]]) -> list[TaskState]:
    """The attempts that still run on the line's server; the slots of the others (say,
    cancelled while they gathered: the server never saw them) are freed now."""
    running = []
    states = ctx.tasks.get_many([task_id for task_id, _ in members])
    for (task_id, attempt), state in zip(members, states, strict=True):
        if (
            state is not None
            and state.status is TaskStatus.PROCESSING
            and state.attempt == attempt
            and state.server_id == line.server_id
        ):
            running.append(state)
        elif ctx.fleet.release(
            line.server_id, task_id, attempt, ctx.now_ms(), Verdict.NONE, task_type=state and state.spec.type
        ):
            waiting.wake(ctx, 1, line.server_id)
            if state is not None:
                limits.wake_after_release(ctx, state.spec.type)
    return running


def send(ctx: Context, line: BatchLine, endpoint: Endpoint, members: list[tuple[str, int]]) -> None:
    """One call with every attempt of ``members`` that still runs; each ends by its own
    item (sync), its own callback (callback) or its own poll (poll). A failed call fails
    every attempt in it (each retried by the usual rules)."""
    states = _still_running(ctx, line, members)
    if not states:
        return
    if endpoint.batch is None:  # the server stopped taking batches while these gathered
        for state in states:
            _send_alone(ctx, state, endpoint)
        return
    calls = [predict_call(ctx, state, endpoint) for state in states]
    try:
        with ExitStack() as beats:
            for state in states:
                beats.enter_context(liveness.heartbeat(ctx, state.id, state.attempt, state.started_ms))
            answer = ctx.backends.predict_batch(
                endpoint.predict_url, endpoint.api_key, calls, min(c.timeout_s for c in calls)
            )
    except BackendBusy as busy:
        for state in states:
            requeue_busy(ctx, state, busy)
        return
    except BackendError as exc:
        hold = exc.kind == "timeout"
        for state in states:
            message = f"server {line.server_id}: batch of {len(states)}: {exc.message}"
            fail_quietly(ctx, state, message, exc.retryable, hold, exc.kind)
        return
    if line.mode == TaskMode.CALLBACK:
        return
    results = answer.get("results") if isinstance(answer, dict) else None
    items: list[Any] = results if isinstance(results, list) else []
    for i, state in enumerate(states):
        _end_by_item(ctx, state, endpoint, items[i] if i < len(items) else None, i)


def _end_by_item(ctx: Context, state: TaskState, endpoint: Endpoint, item: Any, index: int) -> None:
    """One task's part of a batch answer: its result, its failure, or (poll mode) its job."""
    if state.spec.mode is TaskMode.POLL:
        if isinstance(item, dict):
            polling.start(ctx, state, endpoint, item)
        else:
            fail_quietly(ctx, state, f"batch answer has no item {index}", error_type="malformed")
        return
    status = item.get("status") if isinstance(item, dict) else None
    try:
        if status == TaskStatus.COMPLETED:
            outcomes.complete(
                ctx, state.id, state.attempt, item.get("result"), current=state, metadata=_metadata(item)
            )
        elif status == TaskStatus.FAILED:
            error = item.get("error")
            outcomes.fail(
                ctx,
                state.id,
                state.attempt,
                str(error or "backend reported failure"),
                error_type="reported",
                metadata=_metadata(item),
            )
        else:
            fail_quietly(
                ctx,
                state,
                f"server {state.server_id}: batch item {index} is missing or malformed",
                error_type="malformed",
            )
    except (Conflict, NotFound):
        log.info("task %s attempt %s answered after it moved on", state.id, state.attempt)


def _metadata(item: dict[str, Any]) -> dict[str, Any] | None:
    metadata = item.get("metadata")
    return metadata if isinstance(metadata, dict) else None


def _send_alone(ctx: Context, state: TaskState, endpoint: Endpoint) -> None:
    from app.services.dispatch import call_backend  # one task per call, as any other server

    call_backend(ctx, state, endpoint)
