"""The name of every Celery job, in one place: the workers register them, beat
schedules them, services enqueue them, Flower shows them.

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

# Periodic jobs (``beat_schedule.py``), each idempotent: two beats are safe.
EXPIRE_DEADLINES = "taskfleet.maintenance.expire_deadlines"
DISPATCH_DUE = "taskfleet.maintenance.dispatch_due"
WAKE_WAITING = "taskfleet.maintenance.wake_waiting"
RECLAIM_SLOTS = "taskfleet.maintenance.reclaim_slots"
RECOVER_ATTEMPTS = "taskfleet.maintenance.recover_attempts"
RECONCILE = "taskfleet.maintenance.reconcile"
FLUSH_STATS = "taskfleet.maintenance.flush_stats"
CHECK_ALERTS = "taskfleet.maintenance.check_alerts"
#: Enqueue a poll job for every poll that is due.
POLLS_DUE = "taskfleet.maintenance.polls_due"
#: Enqueue a send job for every batch whose oldest task has waited long enough.
BATCHES_DUE = "taskfleet.maintenance.batches_due"
#: Tell a server to stop a task that was cancelled while it ran there (args: task id,
#: attempt, server id).
CANCEL_ON_BACKEND = "taskfleet.cancel_on_backend"

# Server jobs: the periodic ones fan out or sweep; the others act on one server.
HEALTH_CHECKS = "taskfleet.servers.health_checks"
WAKE_SERVERS = "taskfleet.servers.wake"
CLEANUP_SERVERS = "taskfleet.servers.cleanup"
#: Check one server's health endpoint (args: server id).
HEALTH_CHECK = "taskfleet.servers.health_check"
#: Remove an unregistered server once its drain period is over (args: server id).
FINISH_DRAIN = "taskfleet.servers.finish_drain"
