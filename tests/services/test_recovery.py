"""Redis state rebuilt from the database; tasks waiting out an open circuit."""

from app.core.balancing import CIRCUIT_FAILURES, CIRCUIT_OPEN_S, Algorithm
from app.core.clock import ManualClock
from app.core.states import TaskStatus
from app.services import fleet_health, maintenance, servers, state_sync
from app.store import keys, tasks_repo
from tests.services.helpers import drain, register_backend, start_attempt, submit_task


def test_servers_maintenance_and_algorithm_come_back_after_redis_loses_everything(ctx, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    register_backend(ctx, port, "s2")
    servers.set_maintenance(ctx, "s2", True)
    servers.set_algorithm(ctx, Algorithm.P2C_EWMA)
    task_id = submit_task(ctx)
    ctx.queue.take()
    ctx.redis.flushall()

    report = maintenance.reconcile(ctx)
    # Hours marked for a statistics recount: from a minute before the task to now (two
    # when the test runs in an hour's first minute).
    assert report.pop("stats_hours") in (1, 2)
    assert report == {
        "servers": 2,
        "tasks": 1,
        "scheduled": 0,
        "synced": 0,
        "requeued": 0,
        "drift_repaired": 0,
    }
    assert ctx.fleet.algorithm() is Algorithm.P2C_EWMA
    assert ctx.fleet.server_ids() == ["s1", "s2"]
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, task_id).server_id == "s1"  # s2 is still in maintenance
    ctx.clock = ManualClock(ctx.now_ms() + maintenance.ORPHAN_AFTER_S * 1000)
    assert maintenance.reconcile(ctx) == {
        "servers": 0,
        "tasks": 0,
        "scheduled": 0,
        "synced": 0,
        "requeued": 0,
        "stats_hours": 0,
        "drift_repaired": 0,
    }


def test_a_task_waits_out_an_open_circuit_instead_of_failing(ctx, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    for i in range(CIRCUIT_FAILURES):
        ctx.fleet.reserve(f"x{i}", 1, ("echo",))
        ctx.fleet.release("s1", f"x{i}", 1, clock.now_ms(), "failure", 10)
    task_id = submit_task(ctx)
    assert drain(ctx) == ["waiting"]
    assert state_sync.load(ctx, task_id).status is TaskStatus.PENDING
    clock.advance(CIRCUIT_OPEN_S - 1)
    assert fleet_health.wake_servers(ctx) == 0
    clock.advance(1)
    assert fleet_health.wake_servers(ctx) == 1
    assert drain(ctx) == ["completed"]  # the half-open probe
    assert ctx.fleet.state("s1").circuit == "closed"


def test_a_worker_killed_between_the_redis_transition_and_the_database_write_loses_nothing(ctx, backend):
    """The kill -9 fault scenario's failure: Redis said COMPLETED, the row stayed
    PROCESSING, and the finished hash expired. Now reconcile writes the row."""
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    now = ctx.now_ms()
    # What outcomes.complete does in Redis before the process dies:
    ctx.tasks.transition(
        task_id,
        [TaskStatus.PROCESSING],
        TaskStatus.COMPLETED,
        now,
        1,
        "COMPLETED",
        result={"ok": 1},
        finished_ms=now,
        progress=100,
    )
    assert ctx.redis.ttl(keys.task(task_id)) == -1  # kept until the database has it
    with ctx.db.session() as session:
        assert tasks_repo.get_row(session, task_id).status == "PROCESSING"
    assert maintenance.reconcile(ctx)["synced"] == 1
    with ctx.db.session() as session:
        row = tasks_repo.get_row(session, task_id)
        (attempt,) = tasks_repo.attempts_of(session, task_id)
    assert (row.status, row.result, row.finished_at is not None) == ("COMPLETED", {"ok": 1}, True)
    assert (attempt.outcome, attempt.finished_at) == ("COMPLETED", row.finished_at)
    assert 0 < ctx.redis.ttl(keys.task(task_id)) <= ctx.settings.hot_state_ttl_s
    assert maintenance.reconcile(ctx)["synced"] == 0


def test_after_a_redis_loss_no_task_is_enqueued_before_every_running_slot_is_back(ctx, backend):
    """The rebuild puts back the slots of all running attempts, then enqueues the
    PENDING tasks: a worker taking one at once finds the servers as full as they are.
    (Interleaved by id, as before, 6 running and 6 pending tasks would be in this order
    once in 924 runs.)"""
    register_backend(ctx, backend[1], "s1", max_concurrent=6)
    maintenance.reconcile(ctx)  # Redis is "rebuilt": the loss below is noticed
    running = [submit_task(ctx, {"n": n}) for n in range(6)]
    for task_id in running:
        start_attempt(ctx, task_id)
    for n in range(6):
        submit_task(ctx, {"n": 6 + n})
    ctx.queue.take()
    ctx.redis.flushall()
    slots_at_enqueue = []
    ctx.queue.on_enqueue = lambda task_id, attempt: slots_at_enqueue.append(ctx.fleet.in_flight("s1"))
    assert maintenance.reconcile(ctx)["tasks"] == 12
    assert slots_at_enqueue == [6] * 6


def test_after_a_redis_loss_a_dispatch_waits_for_the_rebuild_while_attempts_run(ctx, backend):
    """Between the servers' return and their slots' (the rebuild under way), a dispatch
    must not take a slot a running attempt holds: it waits (retried in a second)."""
    from app.services import dispatch
    from app.services.attempt_calls import DispatchResult

    register_backend(ctx, backend[1], "s1", max_concurrent=1)
    maintenance.reconcile(ctx)
    start_attempt(ctx, submit_task(ctx, {"n": 1}))
    later = submit_task(ctx, {"n": 2})
    ctx.queue.take()
    ctx.redis.flushall()
    servers.republish_all(ctx)  # how far the rebuild got
    assert dispatch.dispatch(ctx, later, 0) is DispatchResult.WAITING
    assert ctx.fleet.in_flight("s1") == 0
    maintenance.reconcile(ctx)
    assert ctx.fleet.in_flight("s1") == 1  # the running attempt's, and only it
    assert state_sync.load(ctx, later).status is TaskStatus.PENDING


def test_with_a_new_redis_and_nothing_running_a_dispatch_loads_the_limits_itself(ctx, backend):
    from app.services import dispatch

    register_backend(ctx, backend[1], "s1")
    task_id = submit_task(ctx)
    ctx.queue.take()
    assert ctx.tasks.needs_rebuild()
    assert dispatch.dispatch(ctx, task_id, 0).value == "completed"
