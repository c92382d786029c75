"""What a task's owner (or an admin) can do to it: read it, its attempts and its
history, cancel it, retry it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app import jobs
from app.core.balancing import Verdict
from app.core.clock import datetime_to_ms
from app.core.errors import BackendError, Conflict, NotFound
from app.core.states import FINAL_STATUSES, RETRYABLE_FINAL_STATUSES, AttemptOutcome, TaskStatus
from app.core.task import TaskAttempt, TaskState
from app.services import client_limits, deferred, dependencies, limits, state_sync, waiting
from app.services.context import Context
from app.store import tasks_repo
from app.store.tasks_repo import AttemptEnd, row_to_attempt, row_to_state

log = logging.getLogger("taskfleet.control")

#: Tries of a cancel call to a server, the first wait between them (doubling), and
#: how long each may take.
CANCEL_TRIES = 3
CANCEL_BACKOFF_S = 1.0
CANCEL_TIMEOUT_S = 10.0


def list_tasks(
    ctx: Context, owner: str | None, status: str | None, task_type: str | None, limit: int, cursor: str | None
) -> tuple[list[TaskState], str | None]:
    """A page of tasks ``owner`` may see (None = admin: all), newest first."""
    with ctx.db.session() as session:
        rows, next_cursor = tasks_repo.list_tasks(session, owner, status, task_type, limit, cursor)
        return [row_to_state(row) for row in rows], next_cursor


def visible_task(ctx: Context, task_id: str, owner: str | None) -> TaskState:
    """The task if ``owner`` may see it (None = admin, sees all); else ``NotFound``.
    Read only: a task whose hot state is not in Redis is read from its row."""
    state = state_sync.read(ctx, task_id)
    if state is None or (owner is not None and state.owner != owner):
        raise NotFound(f"task {task_id} not found")
    return state


def attempts(ctx: Context, task_id: str, owner: str | None) -> list[TaskAttempt]:
    """The task's attempts, oldest first, if ``owner`` may see the task (None = admin);
    else ``NotFound``. Read from the database only: nothing is rebuilt or written."""
    with ctx.db.session() as session:
        task_owner = tasks_repo.owner_of(session, task_id)
        if task_owner is None or (owner is not None and task_owner != owner):
            raise NotFound(f"task {task_id} not found")
        return [row_to_attempt(row) for row in tasks_repo.attempts_of(session, task_id)]


@dataclass(frozen=True)
class Transition:
    """One state change of a task, as recorded in the database."""

    version: int
    from_status: str | None
    to_status: str
    attempt: int
    at_ms: int | None


def history(ctx: Context, task_id: str, owner: str | None) -> tuple[list[Transition], list[TaskAttempt]]:
    """The task's transitions and attempts from the durable records, oldest first, if
    ``owner`` may see it (None = admin). The rows follow Redis within moments, so the
    newest transition may show up a read later than the task's status."""
    found = attempts(ctx, task_id, owner)
    with ctx.db.session() as session:
        transitions = [
            Transition(row.version, row.from_status, row.to_status, row.attempt, datetime_to_ms(row.at))
            for row in tasks_repo.transitions_of(session, task_id)
        ]
    return transitions, found


def cancel(ctx: Context, task_id: str, owner: str | None) -> TaskState:
    """Any state that is not final -> CANCELLED. A running attempt keeps its slot until
    the backend is done with it (its answer or callback, which is then ignored), or the
    reclaim job takes it back: the server is never asked for more than it can hold. A
    server with a cancel endpoint is told at once, and its slot freed when it says it
    stopped. A SCHEDULED task leaves the start schedule; a WAITING one is simply final,
    and its own dependents fail with it."""
    before = visible_task(ctx, task_id, owner)
    now = ctx.now_ms()
    state = state_sync.apply(
        ctx,
        task_id,
        [s for s in TaskStatus if s not in FINAL_STATUSES],
        TaskStatus.CANCELLED,
        # Closes the running attempt's record, if there is one still open.
        attempt_end=AttemptEnd(None, AttemptOutcome.CANCELLED, "cancelled", now),
        finished_ms=now,
    )
    if before.status is TaskStatus.PENDING:
        limits.forget_waiting(ctx, [state])
        waiting.unpark(ctx, [state])
    if before.status is TaskStatus.SCHEDULED:
        deferred.unschedule(ctx, task_id)
    if before.status is TaskStatus.PROCESSING and before.server_id:
        endpoint = ctx.endpoints.get(before.server_id)
        if endpoint is not None and endpoint.cancel_url:
            ctx.queue.call_later(jobs.CANCEL_ON_BACKEND, [task_id, before.attempt, before.server_id])
    return state


def cancel_on_backend(ctx: Context, task_id: str, attempt: int, server_id: str) -> bool:
    """POST ``{"task_id"}`` to the server's cancel endpoint (a few tries, with backoff);
    a 2xx means it stopped, so the attempt's slot is freed now rather than by the
    reclaim job. False when it never said so (the slot then waits for reclaim)."""
    endpoint = ctx.endpoints.get(server_id)
    if endpoint is None or not endpoint.cancel_url:
        return False
    for try_number in range(CANCEL_TRIES):
        try:
            ctx.backends.cancel(endpoint.cancel_url, endpoint.api_key, task_id, CANCEL_TIMEOUT_S)
        except BackendError as exc:
            log.info(
                "cancel of task %s on %s failed (%s), try %d", task_id, server_id, exc.message, try_number + 1
            )
            if try_number + 1 < CANCEL_TRIES:
                time.sleep(CANCEL_BACKOFF_S * 2**try_number)
            continue
        state = ctx.tasks.get(task_id)
        task_type = state.spec.type if state is not None else None
        if ctx.fleet.release(server_id, task_id, attempt, ctx.now_ms(), Verdict.NONE, task_type=task_type):
            waiting.wake(ctx, 1, server_id)
            if task_type is not None:
                limits.wake_after_release(ctx, task_type)
        return True
    return False


def retry(ctx: Context, task_id: str, owner: str | None) -> TaskState:
    """FAILED or TIMEOUT -> PENDING with a fresh budget of attempts; history is kept."""
    current = visible_task(ctx, task_id, owner)
    # Unfinished again: it counts against its owner's limits like a new task.
    with client_limits.admitted(ctx, current.owner, 1) as admission:
        state = state_sync.apply(
            ctx,
            task_id,
            RETRYABLE_FINAL_STATUSES,
            TaskStatus.PENDING,
            expect_attempt=current.attempt,
            retry_base=current.attempt,
            error=None,
            result=None,
            finished_ms=None,
            server_id=None,
            progress=0,
        )
        admission.stored = True
    ctx.queue.enqueue(task_id, state.attempt)
    return state


def cancel_many(ctx: Context, task_ids: list[str]) -> int:
    """``cancel`` for many tasks the caller may see: the PENDING ones (most of a big
    job's, waiting in line) moved together, pipelined in Redis and in one UPDATE and
    one INSERT in the database; the rest (running, scheduled, waiting, or gone from
    Redis) one by one. How many were cancelled; tasks already final are skipped."""
    now = ctx.now_ms()
    states = ctx.tasks.get_many(task_ids)
    together = [(s.id, s.attempt) for s in states if s is not None and s.status is TaskStatus.PENDING]
    one_by_one = [
        task_id
        for task_id, s in zip(task_ids, states, strict=True)
        if s is None or s.status is not TaskStatus.PENDING
    ]
    moved: list[TaskState] = []
    if together:
        results = ctx.tasks.transition_many(
            together, [TaskStatus.PENDING], TaskStatus.CANCELLED, now, finished_ms=now
        )
        for (task_id, _), result in zip(together, results, strict=True):
            if isinstance(result, TaskState):
                moved.append(result)
            else:  # it moved meanwhile (started, or its hot state went): the long way
                one_by_one.append(task_id)
        # Until these writes are done the tasks are in Redis's unsynced set: reconcile
        # writes whatever a failure here leaves behind.
        tasks_repo.follow_many(ctx.db, moved)
        ctx.tasks.mark_many_synced(moved)
        limits.forget_waiting(ctx, moved)
        waiting.unpark(ctx, moved)
        dependencies.on_final_many(ctx, [state.id for state in moved])
    cancelled = len(moved)
    for task_id in one_by_one:
        try:
            cancel(ctx, task_id, None)
            cancelled += 1
        except (Conflict, NotFound):
            continue  # already final, or gone
    log.info("cancelled %d tasks (%d together)", cancelled, len(moved))
    return cancelled
