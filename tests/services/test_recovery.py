"""Redis state rebuilt from the database; tasks waiting out an open circuit."""

from app.core.balancing import CIRCUIT_FAILURES, CIRCUIT_OPEN_S, Algorithm
from app.core.clock import ManualClock
from app.core.states import TaskStatus
from app.services import health, maintenance, servers, state_sync
from tests.services.helpers import drain, register_backend, submit_task


def test_servers_maintenance_and_algorithm_come_back_after_redis_loses_everything(ctx, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    register_backend(ctx, port, "s2")
    servers.set_maintenance(ctx, "s2", True)
    servers.set_algorithm(ctx, Algorithm.P2C_EWMA)
    task_id = submit_task(ctx)
    ctx.queue.take()
    ctx.redis.flushall()

    assert maintenance.reconcile(ctx) == {
        "servers": 2,
        "tasks": 1,
        "synced": 0,
        "requeued": 0,
        "stats_hours": 1,
    }
    assert ctx.fleet.algorithm() is Algorithm.P2C_EWMA
    assert ctx.fleet.server_ids() == ["s1", "s2"]
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, task_id).server_id == "s1"  # s2 is still in maintenance
    ctx.clock = ManualClock(ctx.now_ms() + maintenance.ORPHAN_AFTER_S * 1000)
    assert maintenance.reconcile(ctx) == {
        "servers": 0,
        "tasks": 0,
        "synced": 0,
        "requeued": 0,
        "stats_hours": 0,
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
    assert health.wake_servers(ctx) == 0
    clock.advance(1)
    assert health.wake_servers(ctx) == 1
    assert drain(ctx) == ["completed"]  # the half-open probe
    assert ctx.fleet.state("s1")["circuit"] == "closed"
