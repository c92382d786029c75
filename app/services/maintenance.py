"""The periodic jobs' use cases: deadlines, retries due, waking waiting tasks,
reclaiming abandoned slots, and rebuilding Redis from the database."""

from __future__ import annotations

import logging

from app.config import DISPATCH_QUEUE
from app.core.errors import Conflict, NotFound
from app.core.slot_ledger import RECLAIM_AFTER_S
from app.core.states import TaskMode, TaskStatus
from app.services import (
    client_limits,
    deferred,
    limits,
    outcomes,
    polling,
    servers,
    slot_ledger,
    state_sync,
    statistics,
    waiting,
)
from app.services.context import Context
from app.store import tasks_repo
from app.store.tasks_repo import row_to_state

log = logging.getLogger("taskfleet.maintenance")

#: Tasks handled per run of a periodic job, so one run stays short.
BATCH = 500
#: Seconds a PENDING task may sit untouched, in no waiting line and no retry schedule,
#: before the sweep enqueues it again (lost between commit and enqueue, or prefetched by
#: a worker that died). A task whose job is still somewhere gets a second one, which the
#: attempt fence makes harmless.
ORPHAN_AFTER_S = 30
#: The same while Celery's dispatch queue holds messages: a task behind a backlog is
#: most likely not lost, only waiting its turn, so the sweep gives it longer.
ORPHAN_IN_BACKLOG_AFTER_S = 300


def expire_deadlines(ctx: Context) -> int:
    """Attempts running past their deadline fail as TIMEOUT (retried while the budget
    allows); tasks that waited for a server past theirs end as TIMEOUT."""
    expired = 0
    for task_id in ctx.tasks.due_deadlines(ctx.now_ms(), BATCH):
        state = ctx.tasks.get(task_id)
        try:
            if state is not None and state.status is TaskStatus.PROCESSING:
                outcomes.fail(
                    ctx,
                    task_id,
                    state.attempt,
                    f"timed out after {state.spec.timeout_s}s on server {state.server_id}",
                    outcome=TaskStatus.TIMEOUT,
                    error_type="timeout",
                )
            elif state is not None and state.status is TaskStatus.PENDING:
                ended = state_sync.apply(
                    ctx,
                    task_id,
                    [TaskStatus.PENDING],
                    TaskStatus.TIMEOUT,
                    expect_attempt=state.attempt,
                    error=f"no server could take it within {state.spec.timeout_s}s",
                    finished_ms=ctx.now_ms(),
                )
                limits.forget_waiting(ctx, [ended])
                waiting.unpark(ctx, [ended])
            else:
                continue
            expired += 1
        except (Conflict, NotFound):
            continue
    return expired


def dispatch_due(ctx: Context) -> int:
    """Enqueue the retries whose backoff has passed."""
    due = ctx.tasks.claim_due(ctx.now_ms(), BATCH)
    for task_id in due:
        state = ctx.tasks.get(task_id)
        if state is not None and state.status is TaskStatus.PENDING:
            ctx.queue.enqueue(task_id, state.attempt)
    return len(due)


def wake_for_free_slots(ctx: Context) -> int:
    """The safety net for missed wake-ups: waiting tasks for every free slot. Also
    forgets a page of waiting profiles that have no line (admitted for a task that
    never waited), so they stop counting against ``MAX_WAITING_PROFILES``."""
    dropped = ctx.waiting.sweep(BATCH)
    if dropped:
        log.info("forgot %d waiting profiles without a line", dropped)
    return waiting.wake_for_free_slots(ctx)


def reclaim_slots(ctx: Context) -> int:
    """Free slots that no running attempt holds and that are older than
    ``RECLAIM_AFTER_S`` (the release script keeps the slots of running attempts)."""
    now, freed = ctx.now_ms(), 0
    for server_id, task_id, attempt in ctx.fleet.all_leases():
        if ctx.fleet.release(server_id, task_id, attempt, now, min_age_ms=RECLAIM_AFTER_S * 1000):
            log.warning(
                "reclaimed an abandoned slot of task %s attempt %s on %s", task_id, attempt, server_id
            )
            freed += 1
    # Holds on concurrency limits whose slot is gone (freed by a release that did not
    # name the task type, as above): older than a reservation in progress can be.
    live = [(task_id, attempt) for _, task_id, attempt in ctx.fleet.all_leases()]
    dropped = ctx.limits.sweep_holds(live, now - RECLAIM_AFTER_S * 1000)
    if dropped:
        log.warning("dropped %d concurrency-limit holds whose slot was gone", dropped)
    if freed:
        waiting.wake_for_free_slots(ctx)
    return freed


def reconcile(ctx: Context) -> dict[str, int]:
    """Make Redis and the database agree: rebuild Redis when it lost its data, let the
    database catch up with tasks it could not follow, re-enqueue PENDING tasks that
    nothing will dispatch (lost between commit and enqueue), and repair slot drift
    (``slot_ledger.repair``: slots held without a running attempt, attempts running
    without a slot)."""
    report = {
        "servers": 0,
        "tasks": 0,
        "scheduled": 0,
        "synced": 0,
        "requeued": 0,
        "stats_hours": 0,
        "drift_repaired": 0,
    }
    rebuild = ctx.tasks.needs_rebuild()
    if rebuild:
        report["stats_hours"] = statistics.mark_lost(ctx)
        report["servers"] = servers.republish_all(ctx)
        # Every running attempt's slot back before any reservation: until the limits are
        # published below, Redis refuses them (``LimitsNotLoaded``), and a dispatch does
        # not publish them itself while attempts run (``dispatch._reserve_loaded``).
        report["tasks"] = _rebuild_tasks(ctx, TaskStatus.PROCESSING)
        # Then the limits with the holds of the attempts still running, so none starts
        # early, and the weights before the waiting lines fill again.
        limits.publish(ctx)
        client_limits.publish_weights(ctx)
        report["tasks"] += _rebuild_tasks(ctx, TaskStatus.PENDING)
        report["scheduled"] = deferred.rebuild(ctx)
        ctx.tasks.rebuilt(ctx.now_ms())
    for task_id in ctx.tasks.unsynced(BATCH):
        state = ctx.tasks.get(task_id)
        if state is not None:
            state_sync.persist(ctx, state)
            report["synced"] += 1
    if not rebuild:  # a rebuild has just enqueued every PENDING task
        report["requeued"] = _requeue_orphans(ctx)
    report["drift_repaired"] = slot_ledger.repair(ctx)
    if any(report.values()):
        log.info("reconcile: %s", report)
    return report


def _rebuild_tasks(ctx: Context, status: TaskStatus) -> int:
    """Hot state and deadlines of every task in ``status`` (PROCESSING: with its slot,
    PENDING: enqueued again), from the database."""
    rebuilt, after = 0, ""
    while True:
        with ctx.db.session() as session:
            rows = tasks_repo.in_status(session, [status], after, BATCH)
            states = [row_to_state(row) for row in rows]
        if not states:
            return rebuilt
        for state in states:
            if not ctx.tasks.put_if_absent(state):
                continue
            rebuilt += 1
            if state.status is TaskStatus.PROCESSING and state.server_id:
                cost = ctx.settings.slot_cost(state.spec.type)
                ctx.fleet.restore_lease(
                    state.server_id, state.id, state.attempt, cost, ctx.now_ms(), state.spec.type
                )
                if state.spec.mode is TaskMode.POLL:
                    polling.resume_after_loss(ctx, state)
            elif state.status is TaskStatus.PENDING:
                ctx.queue.enqueue(state.id, state.attempt)
        after = states[-1].id


def _requeue_orphans(ctx: Context) -> int:
    """Walk the PENDING rows a batch per run (the cursor lives in Redis, so a backlog of
    any size is covered in turn) and enqueue those nothing will dispatch."""
    backlog = ctx.workers.queue_depths([DISPATCH_QUEUE])[DISPATCH_QUEUE] > 0
    cutoff = ctx.now_ms() - (ORPHAN_IN_BACKLOG_AFTER_S if backlog else ORPHAN_AFTER_S) * 1000
    after = ctx.tasks.sweep_cursor()
    with ctx.db.session() as session:
        states = [row_to_state(r) for r in tasks_repo.in_status(session, [TaskStatus.PENDING], after, BATCH)]
    ctx.tasks.set_sweep_cursor(states[-1].id if len(states) == BATCH else "")
    old = [state for state in states if state.updated_ms <= cutoff]
    lives = ctx.tasks.get_many([state.id for state in old])
    for i, (state, live) in enumerate(zip(old, lives, strict=True)):
        if live is None:  # expired or lost from Redis: rebuild it from the row
            ctx.tasks.put_if_absent(state)
            lives[i] = ctx.tasks.get(state.id)
    candidates = [
        live
        for live in lives
        if live is not None and live.status is TaskStatus.PENDING and live.updated_ms <= cutoff
    ]
    parked = waiting.which_parked(ctx, candidates)
    scheduled = ctx.tasks.which_scheduled([live.id for live in candidates])
    requeued = 0
    for live, is_parked, is_scheduled in zip(candidates, parked, scheduled, strict=True):
        if is_parked or is_scheduled:
            continue
        ctx.queue.enqueue(live.id, live.attempt)
        requeued += 1
    return requeued
