"""Periodic jobs named in ``beat_schedule.py``. Each is idempotent: two beats are safe."""

from __future__ import annotations

from app.services import alerts, liveness, maintenance, stats
from workers.celery_app import app, worker_context


@app.task(name="taskfleet.maintenance.expire_deadlines", ignore_result=True)
def expire_deadlines() -> int:
    """Attempts and waits past their deadline -> retried or TIMEOUT."""
    return maintenance.expire_deadlines(worker_context())


@app.task(name="taskfleet.maintenance.dispatch_due", ignore_result=True)
def dispatch_due() -> int:
    """Enqueue retries whose backoff has passed."""
    return maintenance.dispatch_due(worker_context())


@app.task(name="taskfleet.maintenance.wake_waiting", ignore_result=True)
def wake_waiting() -> int:
    """Start waiting tasks for slots that are free (a safety net for missed wake-ups)."""
    return maintenance.wake_for_free_slots(worker_context())


@app.task(name="taskfleet.maintenance.reclaim_slots", ignore_result=True)
def reclaim_slots() -> int:
    """Take back slots that no running attempt holds (a worker died holding them)."""
    return maintenance.reclaim_slots(worker_context())


@app.task(name="taskfleet.maintenance.recover_attempts", ignore_result=True)
def recover_attempts() -> int:
    """Retry elsewhere the sync attempts of workers that stopped beating (killed)."""
    return liveness.recover_lost_attempts(worker_context())


@app.task(name="taskfleet.maintenance.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    """Rebuild lost Redis state from the database; let the database catch up; re-enqueue orphans."""
    return maintenance.reconcile(worker_context())


@app.task(name="taskfleet.maintenance.flush_stats", ignore_result=True)
def flush_stats() -> dict[str, int]:
    """Move the Redis statistics counters into the hourly rollups; recount lost hours."""
    return stats.flush(worker_context())


@app.task(name="taskfleet.maintenance.check_alerts", ignore_result=True)
def check_alerts() -> dict[str, int]:
    """Failure rate, backlog, waiting tasks no healthy server serves: announce changes."""
    return alerts.check(worker_context())
