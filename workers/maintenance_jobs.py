"""Periodic jobs named in ``beat_schedule.py``. Each is idempotent: two beats are safe."""

from __future__ import annotations

from celery import shared_task

from app import jobs
from app.extensions import current_context
from app.services import alerts, batching, control, liveness, maintenance, polling, statistics


@shared_task(name=jobs.EXPIRE_DEADLINES, ignore_result=True)
def expire_deadlines() -> int:
    """Attempts and waits past their deadline -> retried or TIMEOUT."""
    return maintenance.expire_deadlines(current_context())


@shared_task(name=jobs.DISPATCH_DUE, ignore_result=True)
def dispatch_due() -> int:
    """Enqueue retries whose backoff has passed."""
    return maintenance.dispatch_due(current_context())


@shared_task(name=jobs.WAKE_WAITING, ignore_result=True)
def wake_waiting() -> int:
    """Start waiting tasks for slots that are free (a safety net for missed wake-ups)."""
    return maintenance.wake_for_free_slots(current_context())


@shared_task(name=jobs.RECLAIM_SLOTS, ignore_result=True)
def reclaim_slots() -> int:
    """Take back slots that no running attempt holds (a worker died holding them)."""
    return maintenance.reclaim_slots(current_context())


@shared_task(name=jobs.RECOVER_ATTEMPTS, ignore_result=True)
def recover_attempts() -> int:
    """Retry elsewhere the sync attempts of workers that stopped beating (killed)."""
    return liveness.recover_lost_attempts(current_context())


@shared_task(name=jobs.RECONCILE, ignore_result=True)
def reconcile() -> dict[str, int]:
    """Rebuild lost Redis state from the database; let the database catch up; re-enqueue orphans."""
    return maintenance.reconcile(current_context())


@shared_task(name=jobs.FLUSH_STATS, ignore_result=True)
def flush_stats() -> dict[str, int]:
    """Move the Redis statistics counters into the hourly rollups; recount lost hours."""
    return statistics.flush(current_context())


@shared_task(name=jobs.CHECK_ALERTS, ignore_result=True)
def check_alerts() -> dict[str, int]:
    """Failure rate, backlog, waiting tasks no healthy server serves: announce changes."""
    return alerts.check(current_context())


@shared_task(name=jobs.POLLS_DUE, ignore_result=True)
def polls_due() -> int:
    """Start a poll job for every poll-mode attempt whose next poll is due."""
    return polling.claim_due(current_context())


@shared_task(name=jobs.BATCHES_DUE, ignore_result=True)
def batches_due() -> int:
    """Start a send job for every batch whose oldest task has waited long enough."""
    return batching.claim_due(current_context())


@shared_task(name=jobs.CANCEL_ON_BACKEND, ignore_result=True)
def cancel_on_backend(task_id: str, attempt: int, server_id: str) -> bool:
    """Ask the server to stop a cancelled task; its slot is freed when it says it did."""
    return control.cancel_on_backend(current_context(), task_id, attempt, server_id)
