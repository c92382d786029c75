"""Applying a transition: compare-and-set in Redis, then the database follows."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from app.core.errors import StoreUnavailable
from app.core.states import AttemptOutcome, TaskStatus, is_final
from app.core.task import TaskState
from app.services import dependencies
from app.services.context import Context
from app.store import tasks_repo
from app.store.hot_state import HotStateMissing
from app.store.tasks_repo import AttemptEnd, row_to_state

log = logging.getLogger("taskfleet.transitions")


def load(ctx: Context, task_id: str) -> TaskState | None:
    """The task's hot state, rebuilt from its database row when Redis has none;
    None when the task does not exist."""
    state = ctx.tasks.get(task_id)
    if state is not None:
        return state
    with ctx.db.session() as session:
        row = tasks_repo.get_row(session, task_id)
        if row is None:
            return None
        ctx.tasks.put_if_absent(row_to_state(row))
    return ctx.tasks.get(task_id)


def read(ctx: Context, task_id: str) -> TaskState | None:
    """The task as it stands, for a reader: its hot state, else its database row, and
    nothing written. (A read must not put a SCHEDULED or WAITING task, which lives in
    the database only, or a long-finished one, back in Redis.)"""
    state = ctx.tasks.get(task_id)
    if state is not None:
        return state
    with ctx.db.session() as session:
        row = tasks_repo.get_row(session, task_id)
        return None if row is None else row_to_state(row)


def payload_of(ctx: Context, state: TaskState) -> Any:
    """The task's payload: from the hot state, or from the database when it is too large
    to be kept in Redis (``TaskSpec.payload_in_db``)."""
    if not state.spec.payload_in_db:
        return state.spec.payload
    with ctx.db.session() as session:
        return tasks_repo.payload_of(session, state.id)


def with_payload(ctx: Context, state: TaskState) -> TaskState:
    """``state`` with its payload, read from the database if Redis does not keep it."""
    if not state.spec.payload_in_db:
        return state
    return dataclasses.replace(state, spec=state.spec.with_payload(payload_of(ctx, state)))


def apply(
    ctx: Context,
    task_id: str,
    sources: Iterable[TaskStatus],
    target: TaskStatus,
    expect_attempt: int | None = None,
    attempt_end: AttemptEnd | None = None,
    now_ms: int | None = None,
    attempt_metadata: dict[str, Any] | None = None,
    settle: bool = True,
    **fields: Any,
) -> TaskState:
    """Move the task to ``target`` (raises ``Conflict`` if it is not in ``sources``) and
    record the new version in the database. Hot state lost from Redis is rebuilt from
    the database first. ``now_ms`` (default: the clock; an attempt end's own time) is
    the transition's time; callers pass the same value as any ``started_ms`` or
    ``finished_ms`` field so the statistics and the records agree to the millisecond.
    ``attempt_metadata``: what the backend reported about the running attempt (a
    progress update's ``metadata``), kept on its record; an ending attempt takes it in
    ``attempt_end.metadata`` instead. A final transition settles the task's dependents
    (``dependencies.on_final``) once its row is written; ``settle=False`` leaves that to
    the caller (``dependencies`` itself, which walks a chain without recursing)."""
    sources = tuple(sources)
    if now_ms is None:
        now_ms = attempt_end.at_ms if attempt_end else ctx.now_ms()
    outcome = attempt_end.outcome if attempt_end else ""
    try:
        state = ctx.tasks.transition(task_id, sources, target, now_ms, expect_attempt, outcome, **fields)
    except HotStateMissing:
        if load(ctx, task_id) is None:
            raise
        state = ctx.tasks.transition(task_id, sources, target, now_ms, expect_attempt, outcome, **fields)
    from_status = state.from_status
    # Until the write below is done the task is in Redis's unsynced set (the script put
    # it there): if it fails, or this process dies first, reconcile writes it.
    followed = tasks_repo.follow(ctx.db, state, from_status, attempt_end, attempt_metadata)
    _mark_synced(ctx, state)
    # At INFO the ends only (of an attempt, of a task): one line for a task that runs
    # once; starts, progress and releases from a wait at DEBUG.
    ended = is_final(state.status) or (
        from_status is TaskStatus.PROCESSING and state.status is not TaskStatus.PROCESSING
    )
    level = logging.INFO if ended else logging.DEBUG
    if log.isEnabledFor(level):
        _log_transition(level, task_id, from_status, state)
    if settle and is_final(state.status) and followed.may_have_dependents:
        dependencies.on_final(ctx, state)
    return state


def _log_transition(level: int, task_id: str, from_status: TaskStatus | None, state: TaskState) -> None:
    log.log(
        level,
        "task %s %s -> %s (attempt %s, server %s)",
        task_id,
        from_status,
        state.status.value,
        state.attempt,
        state.server_id or "-",
        extra={
            "task_id": task_id,
            "attempt": state.attempt,
            "server_id": state.server_id,
            "version": state.version,
        },
    )


def _mark_synced(ctx: Context, state: TaskState) -> None:
    try:
        ctx.tasks.mark_synced(state)
    except StoreUnavailable:  # done in the database; reconcile will see it is, later
        log.warning("task %s written but not marked synced: redis unavailable", state.id)


def persist(ctx: Context, state: TaskState) -> None:
    """Write ``state`` to the database again (a no-op when the row is as new), with how
    its attempt ended when the transition ended one."""
    from_status, outcome = state.from_status, state.attempt_outcome
    attempt_end = None
    if from_status is TaskStatus.PROCESSING and outcome is not None:
        error = None if outcome is AttemptOutcome.COMPLETED else state.error
        attempt_end = AttemptEnd(state.attempt, outcome, error, state.updated_ms)
    tasks_repo.follow(ctx.db, state, from_status, attempt_end)
    ctx.tasks.mark_synced(state)
    if is_final(state.status):
        dependencies.on_final(ctx, state)
