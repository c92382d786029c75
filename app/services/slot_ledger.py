"""The slot ledger proving itself: drift between the slots Redis holds and the attempts
the database has running (``app.core.slot_ledger``), for ``/metrics``, and its repair
by ``reconcile``.

What it costs: one read of every pool's leases and one grouped query; only when a
server's units disagree, a second read of the leases and one query listing the
attempts running on the servers that disagree, compared task by task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from app.core.slot_ledger import (
    RECLAIM_AFTER_S,
    Drifted,
    Lease,
    RunningAttempt,
    compare,
    old_units,
    suspects,
)
from app.core.states import TaskStatus
from app.core.task import TaskState
from app.services import limits, state_sync, waiting
from app.services.context import Context
from app.services.outcomes import WAKE_PER_RELEASE
from app.store import ledger_repo

log = logging.getLogger("taskfleet.slot_ledger")


def measure(ctx: Context) -> dict[str, Drifted]:
    """What disagrees, by server, past ``SLOT_DRIFT_GRACE_S`` (servers without drift
    are left out)."""
    cutoff = ctx.now_ms() - ctx.settings.slot_drift_grace_s * 1000
    cost_of = ctx.settings.slot_cost
    before = ctx.fleet.held_leases()
    with ctx.db.session() as session:
        disagree = suspects(old_units(before, cutoff), ledger_repo.running_units(session, cutoff, cost_of))
        if not disagree:
            return {}
        attempts = ledger_repo.running_attempts(session, disagree, cost_of)
    # Read again: a lease counts only if it was there before and after the database
    # said its attempt was not running (an attempt that ended in between is not drift).
    after = {_key(lease) for lease in ctx.fleet.held_leases()}
    both = [lease for lease in before if lease.server_id in disagree and _key(lease) in after]
    return compare(both, attempts, cutoff, also_held=before)


def drift(ctx: Context, server_ids: Iterable[str] | None = None) -> dict[str, int]:
    """``taskfleet_slot_drift``: slot units held in Redis minus units the database has
    running, by server: 0 for each of ``server_ids`` (default: every server in a pool),
    and the figure of any server that drifts."""
    figures = dict.fromkeys(ctx.fleet.slots() if server_ids is None else server_ids, 0)
    figures.update({server_id: d.units for server_id, d in measure(ctx).items()})
    return figures


def repair(ctx: Context) -> int:
    """Make the two books agree again, each repair logged at WARNING; how many were made.

    - A lease whose attempt the database does not have running: when Redis has the task
      running that attempt there, the database is behind and is written; otherwise the
      slot is freed through the release script (which keeps it if the attempt started
      meanwhile, so no running attempt loses its slot) and a waiting task is woken.
    - An attempt the database has running without a lease: when Redis agrees the task
      runs it, the slot is put back (``lb_restore``); from then on the lost-worker
      recovery (``recover_lost_attempts``, which walks the leases) sees the attempt and
      retries it elsewhere if no worker holds it. When Redis has moved on, the database
      is behind and is written.

    Nothing while Redis awaits its rebuild (``reconcile`` rebuilds first): loading a
    task's hot state here would make the rebuild skip it, and with it the resumption
    of its polling."""
    if ctx.tasks.needs_rebuild():
        return 0
    repaired = 0
    for drifted in measure(ctx).values():
        repaired += sum(_free_stray(ctx, lease) for lease in drifted.leases)
        repaired += sum(_restore_bare(ctx, attempt) for attempt in drifted.attempts)
    return repaired


def _free_stray(ctx: Context, lease: Lease) -> bool:
    state = ctx.tasks.get(lease.task_id)
    if state is not None and _runs(state, lease.server_id, lease.attempt):
        state_sync.persist(ctx, state)
        log.warning(
            "slot drift on %s: task %s attempt %s runs in redis but not in the database; "
            "wrote it to the database",
            lease.server_id,
            lease.task_id,
            lease.attempt,
        )
        return True
    task_type = state.spec.type if state is not None else None
    # Never sooner than the reclaim job: a slot kept after a predict timeout or a cancel
    # is kept that long on purpose (the backend may still be working on the call).
    min_age_ms = max(ctx.settings.slot_drift_grace_s, RECLAIM_AFTER_S) * 1000
    if not ctx.fleet.release(
        lease.server_id,
        lease.task_id,
        lease.attempt,
        ctx.now_ms(),
        min_age_ms=min_age_ms,
        task_type=task_type,
    ):
        return False
    log.warning(
        "slot drift on %s: freed the slot of task %s attempt %s (redis held it, the database "
        "has no such attempt running)",
        lease.server_id,
        lease.task_id,
        lease.attempt,
    )
    waiting.wake(ctx, WAKE_PER_RELEASE, lease.server_id)
    if task_type is not None:
        limits.wake_after_release(ctx, task_type)
    return True


def _restore_bare(ctx: Context, attempt: RunningAttempt) -> bool:
    state = state_sync.load(ctx, attempt.task_id)
    if state is None:
        return False
    if not _runs(state, attempt.server_id, attempt.attempt):
        state_sync.persist(ctx, state)
        log.warning(
            "slot drift on %s: task %s attempt %s runs in the database but not in redis "
            "(now %s); wrote redis's state to the database",
            attempt.server_id,
            attempt.task_id,
            attempt.attempt,
            state.status.value,
        )
        return True
    now = ctx.now_ms()
    if not ctx.fleet.restore_lease(
        attempt.server_id, attempt.task_id, attempt.attempt, attempt.cost, now, attempt.task_type
    ):
        return False
    log.warning(
        "slot drift on %s: restored the slot of task %s attempt %s (running in the database, "
        "no slot in redis)",
        attempt.server_id,
        attempt.task_id,
        attempt.attempt,
    )
    return True


def _runs(state: TaskState, server_id: str, attempt: int) -> bool:
    return state.status is TaskStatus.PROCESSING and state.attempt == attempt and state.server_id == server_id


def _key(lease: Lease) -> tuple[str, str, int]:
    return lease.server_id, lease.task_id, lease.attempt
