"""The tick, beat's one periodic job, with the table of maintenance routines it runs;
and the job that asks a server to stop a cancelled task.

The tick sends no task events (``send_events=False``): the worker runs with
``--task-events`` so Flower lists the jobs done for tasks and servers, and a job a
second would bury them.
"""

from __future__ import annotations

from celery import shared_task

import beat_schedule
from app import jobs
from app.extensions import current_context
from app.services import (
    alerts,
    batching,
    control,
    deferred,
    fleet_health,
    limits,
    liveness,
    maintenance,
    polling,
    retention,
    statistics,
    tokens,
)
from app.services.routines import Routine, run_due

#: Every routine the tick can run, by name (``beat_schedule.ROUTINES`` says how often).
ROUTINES: dict[str, Routine] = {
    # Attempts and waits past their deadline -> retried or TIMEOUT.
    jobs.EXPIRE_DEADLINES: maintenance.expire_deadlines,
    # Enqueue retries whose backoff has passed.
    jobs.DISPATCH_DUE: maintenance.dispatch_due,
    # Start a poll job for every poll-mode attempt whose next poll is due.
    jobs.POLLS_DUE: polling.claim_due,
    # Start a send job for every batch whose oldest task has waited long enough.
    jobs.BATCHES_DUE: batching.claim_due,
    # SCHEDULED tasks whose time has come -> PENDING, dispatched.
    jobs.START_DUE: deferred.start_due,
    # SCHEDULED rows missing from the start schedule, WAITING rows nobody settled.
    jobs.SWEEP_DEFERRED: deferred.sweep,
    # Start waiting tasks for slots that are free (a safety net for missed wake-ups).
    jobs.WAKE_WAITING: maintenance.wake_for_free_slots,
    # Take back slots that no running attempt holds (a worker died holding them).
    jobs.RECLAIM_SLOTS: maintenance.reclaim_slots,
    # Retry elsewhere the sync attempts of workers that stopped beating (killed).
    jobs.RECOVER_ATTEMPTS: liveness.recover_lost_attempts,
    # Rebuild lost Redis state from the database; let the database catch up; re-enqueue orphans.
    jobs.RECONCILE: maintenance.reconcile,
    # Move the Redis statistics counters into the hourly rollups; recount lost hours.
    jobs.FLUSH_STATS: statistics.flush,
    # Failure rate, backlog, waiting tasks no healthy server serves: announce changes.
    jobs.CHECK_ALERTS: alerts.check,
    # Start a health-check job for every server whose check is due.
    jobs.HEALTH_CHECKS: fleet_health.start_due_checks,
    # Servers whose open circuit or busy period ended take tasks again.
    jobs.WAKE_SERVERS: fleet_health.wake_servers,
    # Silent servers go offline; long-offline servers are removed.
    jobs.CLEANUP_SERVERS: fleet_health.cleanup_stale,
    # Publish lost limits; scale dynamic ones; start held-back tasks that now fit.
    jobs.SCALE_LIMITS: limits.scale_and_wake,
    # Forget revoked JWTs that have expired (refused as expired anyway).
    jobs.DROP_EXPIRED_REVOCATIONS: tokens.drop_expired,
    # Delete finished tasks older than RETENTION_DAYS, a bounded batch per run.
    jobs.PURGE_FINISHED: retention.purge,
}


@shared_task(name=jobs.TICK, ignore_result=True, send_events=False)
def tick() -> dict[str, object]:
    """Run the maintenance routines that are due; what each one that ran returned."""
    return run_due(current_context(), ROUTINES, beat_schedule.ROUTINES)


@shared_task(name=jobs.CANCEL_ON_BACKEND, ignore_result=True)
def cancel_on_backend(task_id: str, attempt: int, server_id: str) -> bool:
    """Ask the server to stop a cancelled task; its slot is freed when it says it did."""
    return control.cancel_on_backend(current_context(), task_id, attempt, server_id)


@shared_task(name=jobs.WAKE_WAITING_NOW, ignore_result=True)
def wake_waiting() -> int:
    """Start as many waiting tasks as the fleet has free slots (after a job lined its
    tasks up)."""
    return maintenance.wake_for_free_slots(current_context())
