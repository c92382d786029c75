"""What Celery beat runs: one job, the tick, every ``TICK_EVERY_S``; the tick runs each
maintenance routine of ``ROUTINES`` in-process once its interval (seconds) has passed
(``app.services.routines``). Tests check every routine is known and the tick is a task.
"""

from app import jobs

#: Seconds between two ticks: no routine runs more often than this.
TICK_EVERY_S = 1.0

ROUTINES: dict[str, float] = {
    jobs.EXPIRE_DEADLINES: 5.0,
    jobs.DISPATCH_DUE: 1.0,
    # Polls and batches wait in Redis; these only start the due ones.
    jobs.POLLS_DUE: 1.0,
    jobs.BATCHES_DUE: 1.0,
    jobs.WAKE_WAITING: 5.0,
    # Due times wait in Redis; this only starts the due ones (a batch per run).
    jobs.START_DUE: 1.0,
    jobs.SWEEP_DEFERRED: 10.0,
    jobs.RECLAIM_SLOTS: 30.0,
    jobs.RECOVER_ATTEMPTS: 5.0,
    # Also rebuilds Redis after it lost its data, so recovery takes at most this long.
    jobs.RECONCILE: 10.0,
    # Per-server intervals (10-60 s, adaptive) live in Redis; this only fans out due ones.
    jobs.HEALTH_CHECKS: 1.0,
    jobs.WAKE_SERVERS: 1.0,
    jobs.CLEANUP_SERVERS: 60.0,
    # Exactly once per batch, so a slow or doubled run never counts twice.
    jobs.FLUSH_STATS: 10.0,
    # Announces a condition once when it starts and once when it resolves.
    jobs.CHECK_ALERTS: 30.0,
    # The scaling rule's own pace is per limit (upEverySeconds, downEverySeconds).
    jobs.SCALE_LIMITS: 1.0,
    # Only keeps the revocations table small: an expired token is refused anyway.
    jobs.DROP_EXPIRED_REVOCATIONS: 3600.0,
    # At most BATCH x BATCHES_PER_RUN tasks per run (app.services.retention).
    jobs.PURGE_FINISHED: 60.0,
}


def beat_schedule() -> dict[str, dict[str, object]]:
    """The tick, in the shape of Celery's ``beat_schedule`` setting."""
    return {jobs.TICK: {"task": jobs.TICK, "schedule": TICK_EVERY_S}}
