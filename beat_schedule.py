"""What Celery beat runs, and how often (seconds). A test checks every name is a task."""

SCHEDULE: dict[str, float] = {
    "taskfleet.maintenance.expire_deadlines": 5.0,
    "taskfleet.maintenance.dispatch_due": 1.0,
    "taskfleet.maintenance.wake_waiting": 5.0,
    "taskfleet.maintenance.reclaim_slots": 30.0,
    "taskfleet.maintenance.recover_attempts": 5.0,
    # Also rebuilds Redis after it lost its data, so recovery takes at most this long.
    "taskfleet.maintenance.reconcile": 10.0,
    # Per-server intervals (10-60 s, adaptive) live in Redis; this only fans out due ones.
    "taskfleet.maintenance.health_checks": 1.0,
    "taskfleet.maintenance.wake_servers": 1.0,
    "taskfleet.maintenance.cleanup_servers": 60.0,
    # Exactly once per batch, so a slow or doubled run never counts twice.
    "taskfleet.maintenance.flush_stats": 10.0,
    # Announces a condition once when it starts and once when it resolves.
    "taskfleet.maintenance.check_alerts": 30.0,
}


def beat_schedule() -> dict[str, dict[str, object]]:
    """``SCHEDULE`` in the shape of Celery's ``beat_schedule`` setting."""
    return {name: {"task": name, "schedule": every_s} for name, every_s in SCHEDULE.items()}
