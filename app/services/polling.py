"""Poll mode: the backend took the job and says where its status is; taskfleet reads it
every ``pollInterval`` seconds, up to ``pollMaxAttempts`` times and never past the
attempt's timeout. Between polls the attempt is two Redis entries (its poll record and
its due time): beat claims due polls and a poll job runs each. The slot stays reserved
until the task ends.
"""

from __future__ import annotations

import logging
from typing import Any

from app import jobs
from app.core.balancing import Verdict
from app.core.errors import BackendError, Conflict, NotFound, StoreUnavailable
from app.core.polling import POLL_ERRORS_IN_ROW, next_poll_ms, status_update, status_url
from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskState
from app.services import outcomes
from app.services.attempt_calls import DispatchResult, fail_quietly, fail_server_gone
from app.services.context import Context
from app.store import tasks_repo
from app.store.servers_repo import Endpoint

log = logging.getLogger("taskfleet.polling")

#: Polls claimed per beat tick.
BATCH = 500
#: Seconds a claimed poll is left to its job before it is due again (a lost job).
CLAIM_LEASE_S = 60
#: Milliseconds ahead of its due time a poll may be claimed. Beat ticks once a second:
#: a poll due just after a tick would otherwise wait for the next one, so a 1 s
#: interval behaved as 2 s (bench part 6 measured it). Half a tick early at most.
CLAIM_AHEAD_MS = 500


def _deadline_ms(state: TaskState) -> int:
    return (state.started_ms or state.updated_ms) + state.spec.timeout_s * 1000


def start(ctx: Context, state: TaskState, endpoint: Endpoint, answer: Any) -> DispatchResult:
    """The backend took a poll-mode task: find where to read its status, and schedule
    the first poll (the URL is also written to the attempt's row, so polling goes on
    after Redis lost its copy)."""
    try:
        url = status_url(answer, endpoint.status_url, endpoint.urls, state.id)
    except BackendError as exc:
        fail_quietly(
            ctx, state, f"server {state.server_id}: {exc.message}", exc.retryable, error_type=exc.kind
        )
        return DispatchResult.FAILED
    try:
        tasks_repo.set_poll_url(ctx.db, state.id, state.attempt, url)
    except StoreUnavailable:  # polling goes on; only a Redis loss now would lose the URL
        log.warning("task %s attempt %s: poll URL not written to the database", state.id, state.attempt)
    first = next_poll_ms(ctx.now_ms(), state.spec.poll_interval_s, _deadline_ms(state))
    ctx.polls.start(state.id, state.attempt, url, first)
    return DispatchResult.POLLING


def claim_due(ctx: Context) -> int:
    """Beat: enqueue a poll job for every poll that is due (or due within half a tick)."""
    due = ctx.polls.claim_due(ctx.now_ms() + CLAIM_AHEAD_MS, CLAIM_LEASE_S * 1000, BATCH)
    for task_id in due:
        ctx.queue.call_later(jobs.POLL, [task_id])
    return len(due)


def poll(ctx: Context, task_id: str) -> str:
    """Read one poll-mode attempt's status once and act on it like a callback: PENDING or
    PROCESSING move the progress, COMPLETED and FAILED end the attempt. Three poll
    errors in a row fail the attempt (retried by the usual rules); polls used up end it
    as an attempt past its timeout does."""
    record = ctx.polls.get(task_id)
    state = ctx.tasks.get(task_id)
    if (
        record is None
        or state is None
        or state.status is not TaskStatus.PROCESSING
        or state.attempt != record.attempt
        or state.spec.mode is not TaskMode.POLL
    ):
        ctx.polls.stop(task_id)  # the attempt ended (or moved on) some other way
        return "stale"
    endpoint = ctx.endpoints.get(state.server_id or "")
    if endpoint is None:
        ctx.polls.stop(task_id)
        fail_server_gone(ctx, state)
        return "failed"
    now = ctx.now_ms()
    deadline = _deadline_ms(state)
    try:
        update = status_update(
            ctx.backends.poll(record.url, endpoint.api_key, max(0.5, (deadline - now) / 1000))
        )
    except BackendError as exc:
        errors = record.errors_in_row + 1
        if errors >= POLL_ERRORS_IN_ROW:
            ctx.polls.stop(task_id)
            message = f"server {state.server_id}: {errors} polls in a row failed ({exc.message})"
            fail_quietly(ctx, state, message, error_type="poll_failed")
            return "failed"
        return _again(ctx, state, record.polls, errors)
    if update["status"] in ("COMPLETED", "FAILED"):
        ctx.polls.stop(task_id)
        try:
            outcomes.callback(ctx, task_id, state.attempt, update, current=state)
        except (Conflict, NotFound):
            return "stale"
        return update["status"].lower()
    if update["progress"] is not None and update["progress"] != state.progress:
        try:
            outcomes.callback(ctx, task_id, state.attempt, {**update, "status": "PROCESSING"}, current=state)
        except (Conflict, NotFound):
            return "stale"
    return _again(ctx, state, record.polls, 0)


def _again(ctx: Context, state: TaskState, polls_before: int, errors_in_row: int) -> str:
    """Schedule the next poll, or end the attempt when its polls are used up."""
    if polls_before + 1 >= state.spec.poll_max_attempts:
        ctx.polls.stop(state.id)
        try:
            outcomes.fail(
                ctx,
                state.id,
                state.attempt,
                f"no final status after {state.spec.poll_max_attempts} polls on server {state.server_id}",
                outcome=TaskStatus.TIMEOUT,
                verdict=Verdict.FAILURE,
                error_type="timeout",
            )
        except (Conflict, NotFound):
            return "stale"
        return "timeout"
    ctx.polls.polled(
        state.id, errors_in_row, next_poll_ms(ctx.now_ms(), state.spec.poll_interval_s, _deadline_ms(state))
    )
    return "polled"


def resume_after_loss(ctx: Context, state: TaskState) -> bool:
    """Redis lost a running poll-mode attempt's poll: follow it again from the URL its
    row keeps (due now). False when the row has none (lost before it was written)."""
    with ctx.db.session() as session:
        url = tasks_repo.poll_url_of(session, state.id, state.attempt)
    if not url:
        return False
    ctx.polls.start(state.id, state.attempt, url, ctx.now_ms())
    return True
