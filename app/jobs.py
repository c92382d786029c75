"""The name of every Celery job and maintenance routine, in one place: the workers
register the jobs, services enqueue them, Flower shows them; beat sends the tick, which
runs the routines.

Jobs that call backends (dispatch, poll, send a batch) go to the dispatch queue;
every other job to the maintenance queue (``app.extensions.celery_init_app`` routes
them), so a backlog of one never delays the other.
"""

#: Run the next attempt of one task (args: task id, the attempt it follows).
DISPATCH = "taskfleet.dispatch"
#: Read a poll-mode attempt's status once (args: task id).
POLL = "taskfleet.poll"
#: Send a batch whose wait is over to its server (args: batch id).
SEND_BATCH = "taskfleet.send_batch"
#: Jobs that call backends: they run on the dispatch queue, beside dispatch jobs.
ON_DISPATCH_QUEUE = frozenset({DISPATCH, POLL, SEND_BATCH})

#: Tell a server to stop a task that was cancelled while it ran there (args: task id,
#: attempt, server id).
CANCEL_ON_BACKEND = "taskfleet.cancel_on_backend"
#: Check one server's health endpoint (args: server id); the health_checks routine
#: starts one per due server.
HEALTH_CHECK = "taskfleet.servers.health_check"
#: Remove an unregistered server once its drain period is over (args: server id).
FINISH_DRAIN = "taskfleet.servers.finish_drain"
#: Start waiting tasks for the slots free now (no args): sent after a job's tasks were
#: lined up, so the request that submitted them does not wait for their dispatch jobs.
WAKE_WAITING_NOW = "taskfleet.wake_waiting"
#: Beat's one periodic job: runs the maintenance routines below that are due.
TICK = "taskfleet.maintenance.tick"

# Maintenance routines: not Celery jobs. The tick runs each in-process when its
# interval in ``beat_schedule.ROUTINES`` has passed (``app.services.routines``); every
# one is idempotent, so two beats are safe. Their names key that table, their claims in
# Redis and their log lines.
EXPIRE_DEADLINES = "expire_deadlines"
DISPATCH_DUE = "dispatch_due"
WAKE_WAITING = "wake_waiting"
RECLAIM_SLOTS = "reclaim_slots"
RECOVER_ATTEMPTS = "recover_attempts"
RECONCILE = "reconcile"
FLUSH_STATS = "flush_stats"
CHECK_ALERTS = "check_alerts"
#: Enqueue a poll job for every poll that is due.
POLLS_DUE = "polls_due"
#: Enqueue a send job for every batch whose oldest task has waited long enough.
BATCHES_DUE = "batches_due"
#: SCHEDULED tasks whose runAt has come become PENDING and are dispatched.
START_DUE = "start_due"
#: The safety net of SCHEDULED and WAITING tasks: back on the start schedule, settled.
SWEEP_DEFERRED = "sweep_deferred"
#: Start a health-check job for every server whose check is due.
HEALTH_CHECKS = "health_checks"
#: Servers whose open circuit or busy period ended take tasks again.
WAKE_SERVERS = "wake_servers"
#: Silent servers go offline; long-offline servers are removed.
CLEANUP_SERVERS = "cleanup_servers"
#: Delete finished tasks older than RETENTION_DAYS (a bounded batch per run).
PURGE_FINISHED = "purge_finished"
#: Scale dynamic concurrency limits; start the tasks limits held back that now fit.
SCALE_LIMITS = "scale_limits"
#: Forget revoked JWTs that have expired (and are refused as expired anyway).
DROP_EXPIRED_REVOCATIONS = "drop_expired_revocations"
