"""Tasks that do not start at once: SCHEDULED until their ``runAt`` time, WAITING until
their ``dependsOn`` tasks are COMPLETED.

Such a task lives in the database only (no hot state: a million of them must not fill
Redis), plus, while SCHEDULED, one entry on the start schedule in Redis. Every change of
status goes through ``state_sync.apply``, which rebuilds the hot state from the row when
it needs it, so cancel works on them like on any task.

Submission (``app.services.submit``, and jobs for many tasks at once) uses three steps:
``validate_dependencies`` before the insert, ``initial_status`` to choose the status the
row is inserted with, and ``after_insert`` once it is committed. Beat runs ``start_due``
(every second: due SCHEDULED tasks become PENDING and are dispatched) and ``sweep`` (the
safety net for a process killed between two steps); reconcile calls ``rebuild`` after a
Redis loss."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from app.core import deferral
from app.core.clock import datetime_to_ms
from app.core.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from app.core.states import TaskStatus
from app.core.task import TaskState
from app.services import dependencies, state_sync, statistics
from app.services.context import Context
from app.store import dependencies_repo, tasks_repo
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.deferred")

#: Due starts claimed per run of ``start_due`` (a million due at once take many runs).
START_BATCH = 500
#: Milliseconds a claimed start is held before it is due again (its starter died).
START_LEASE_MS = 60_000
#: Rows the sweep and the rebuild read at a time.
SWEEP_BATCH = 500


def validate_dependencies(
    ctx: Context, reader: str | None, dependency_ids: list[str]
) -> dict[str, TaskStatus]:
    """The status of each task a new task depends on, in one query. ``reader``: whom
    they must be visible to (their owner; None for an admin, who sees every task).
    Raises ``InvalidInput`` naming each unknown, unreadable or already failed one."""
    if not dependency_ids:
        return {}
    if len(dependency_ids) > deferral.MAX_DEPENDENCIES:
        raise InvalidInput(
            f"a task may depend on at most {deferral.MAX_DEPENDENCIES} tasks",
            {"dependsOn": [f"{len(dependency_ids)} given"]},
        )
    with ctx.db.session() as session:
        found = dependencies_repo.owners_and_statuses(session, dependency_ids)
    problems = deferral.dependency_problems(dependency_ids, found, reader)
    if problems:
        raise InvalidInput("dependsOn names tasks that cannot be waited for", {"dependsOn": problems})
    return {dep_id: found[dep_id][1] for dep_id in dependency_ids}


def initial_status(
    run_at_ms: int | None, dependency_statuses: Mapping[str, TaskStatus], now_ms: int
) -> TaskStatus:
    """The status a new task is stored with (``app.core.deferral.initial_status``)."""
    return deferral.initial_status(run_at_ms, dependency_statuses, now_ms)


def after_insert(ctx: Context, states: list[TaskState]) -> None:
    """New tasks are committed: count the SCHEDULED and WAITING ones as created, put the
    SCHEDULED ones on the start schedule (one pipelined call), and settle the WAITING
    ones whose dependencies ended between the check and the commit (a dependency that
    ended then did not see the edge yet). PENDING ones are left to the caller (dispatch
    or waiting line). A Redis failure here is logged: the sweep finds the rows."""
    deferred = [s for s in states if s.status in (TaskStatus.SCHEDULED, TaskStatus.WAITING)]
    if not deferred:
        return
    try:
        ctx.starts.accept_many(
            [
                (
                    s.id,
                    s.spec.type,
                    s.created_ms,
                    s.spec.run_at_ms if s.status is TaskStatus.SCHEDULED else None,
                )
                for s in deferred
            ]
        )
    except StoreUnavailable:
        log.warning("%d deferred tasks stored but not scheduled; the sweep will", len(deferred))
        for state in deferred:
            statistics.mark_missed(ctx, state.created_ms)
    waiting = [s.id for s in deferred if s.status is TaskStatus.WAITING]
    if waiting:
        try:
            _settle_and_pass_on(ctx, waiting)
        except StoreUnavailable:
            log.warning("%d waiting tasks not re-checked; the sweep will", len(waiting))


def _settle_and_pass_on(ctx: Context, task_ids: list[str]) -> int:
    """``dependencies.settle_waiting``, then the dependents of those it failed."""
    released, failed = dependencies.settle_waiting(ctx, task_ids)
    return released + len(failed) + (dependencies.settle_finished(ctx, failed) if failed else 0)


def start_due(ctx: Context) -> int:
    """SCHEDULED tasks whose time has come -> PENDING, and dispatched. Claimed a batch at
    a time with a lease, so two beats never start one twice and a starter killed midway
    leaves its claims to come due again. Never before the row's ``run_at``."""
    now = ctx.now_ms()
    claimed = ctx.starts.claim_due(now, START_LEASE_MS, START_BATCH)
    if not claimed:
        return 0
    with ctx.db.session() as session:
        states = {row.id: row_to_state(row) for row in dependencies_repo.rows_by_id(session, claimed)}
    scheduled = [s for s in states.values() if s.status is TaskStatus.SCHEDULED]
    early = {s.id: s.spec.run_at_ms or 0 for s in scheduled if (s.spec.run_at_ms or 0) > now}
    if early:  # an entry out of step with its row: back at the row's time
        ctx.starts.add_many(early.items())
    # Their hot state in one round trip, rather than one rebuild per transition.
    ctx.tasks.put_many_if_absent([s for s in scheduled if s.id not in early])
    done = [task_id for task_id in claimed if task_id not in early]
    started = sum(1 for task_id in done if task_id in states and _start(ctx, task_id, now))
    ctx.starts.remove(done)
    return started


def _start(ctx: Context, task_id: str, now: int) -> bool:
    try:
        state = state_sync.apply(ctx, task_id, [TaskStatus.SCHEDULED], TaskStatus.PENDING, now_ms=now)
    except Conflict as exc:
        if exc.current_status != TaskStatus.PENDING.value:
            return False  # cancelled, or otherwise moved on
        # Started by a run killed before it dispatched: dispatch (a duplicate job is
        # harmless, the attempt fences it).
        state = ctx.tasks.get(task_id) or state_sync.load(ctx, task_id)
        if state is None:
            return False
    except NotFound:
        return False
    ctx.queue.enqueue(task_id, state.attempt)
    return True


def unschedule(ctx: Context, task_id: str) -> None:
    """Off the start schedule (it was cancelled while SCHEDULED); a failure only leaves
    an entry that ``start_due`` drops when it comes due."""
    try:
        ctx.starts.remove([task_id])
    except StoreUnavailable:
        log.info("task %s left on the start schedule; dropped when due", task_id)


def sweep(ctx: Context) -> dict[str, int]:
    """The safety net, a batch of rows per run (the cursor lives in Redis, so any
    number is covered in turn): SCHEDULED rows missing from the start schedule are put
    back, and WAITING rows whose dependencies have all ended are settled (a process
    killed between a dependency's end and settling its dependents)."""
    after = ctx.starts.sweep_cursor()
    with ctx.db.session() as session:
        rows = tasks_repo.in_status(session, [TaskStatus.SCHEDULED, TaskStatus.WAITING], after, SWEEP_BATCH)
        states = [row_to_state(row) for row in rows]
    ctx.starts.set_sweep_cursor(states[-1].id if len(states) == SWEEP_BATCH else "")
    scheduled = [s for s in states if s.status is TaskStatus.SCHEDULED]
    listed = ctx.starts.which_contain([s.id for s in scheduled])
    missing = [(s.id, s.spec.run_at_ms or 0) for s, on in zip(scheduled, listed, strict=True) if not on]
    ctx.starts.add_many(missing, keep_existing=True)
    waiting = [s.id for s in states if s.status is TaskStatus.WAITING]
    settled = _settle_and_pass_on(ctx, waiting) if waiting else 0
    report = {"rescheduled": len(missing), "settled": settled}
    if any(report.values()):
        log.info("deferred sweep: %s", report)
    return report


def rebuild(ctx: Context) -> int:
    """After a Redis loss: every SCHEDULED row back on the start schedule (WAITING
    tasks need nothing in Redis: the database has their edges)."""
    restored, after = 0, ""
    while True:
        with ctx.db.session() as session:
            rows = tasks_repo.in_status(session, [TaskStatus.SCHEDULED], after, SWEEP_BATCH)
            entries = [(row.id, datetime_to_ms(row.run_at) or 0) for row in rows]
        if not entries:
            return restored
        ctx.starts.add_many(entries, keep_existing=True)
        restored += len(entries)
        after = entries[-1][0]
