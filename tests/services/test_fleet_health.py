"""Health checks, stale servers, drains and evacuation, with an injected clock and
real HTTP backends (no sleeping)."""

import threading

import pytest

from app.core.clock import ManualClock
from app.core.server_health import INTERVAL_START_S, ServerStatus
from app.core.servers import ServerConfig
from app.core.states import TaskStatus
from app.demo_backend import DemoBackend
from app.devstack import free_port
from app.services import fleet_health, servers, state_sync
from app.store import servers_repo
from tests.services.helpers import drain, register_backend, start_attempt, submit_task


@pytest.fixture
def clock(ctx):
    ctx.clock = ManualClock(1_800_000_000_000)
    return ctx.clock


@pytest.fixture
def second_backend():
    demo = DemoBackend("second", delay_s=0.01)
    port = free_port()
    server = demo.serve("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield demo, port
    server.shutdown()
    server.server_close()


def db_status(ctx, server_id):
    with ctx.db.session() as s:
        row = servers_repo.get(s, server_id)
        return row.status if row else None


def test_checks_move_the_state_machine_and_schedule_the_next_check(ctx, clock, backend):
    demo, port = backend
    register_backend(ctx, port)
    assert fleet_health.due_checks(ctx) == ["s1"]
    assert fleet_health.due_checks(ctx) == []  # claimed: a second beat finds nothing
    after = fleet_health.check(ctx, "s1")
    assert after.status is ServerStatus.ONLINE and after.interval_s == INTERVAL_START_S * 1.2
    clock.advance(after.interval_s - 0.001)
    assert fleet_health.due_checks(ctx) == []
    clock.advance(0.001)
    assert fleet_health.due_checks(ctx) == ["s1"]

    demo.healthy = False
    statuses = [fleet_health.check(ctx, "s1").status for _ in range(3)]
    assert statuses == [ServerStatus.DEGRADED, ServerStatus.DEGRADED, ServerStatus.OFFLINE]
    assert db_status(ctx, "s1") == "offline"
    assert ctx.fleet.reserve("t", 1, ("echo",)) is None
    state = ctx.fleet.state("s1")
    assert state.health_score == 70 and state.bad_in_row == 3

    demo.healthy = True
    statuses = [fleet_health.check(ctx, "s1").status for _ in range(3)]
    assert statuses == [ServerStatus.OFFLINE, ServerStatus.OFFLINE, ServerStatus.ONLINE]
    assert db_status(ctx, "s1") == "online"
    assert ctx.fleet.reserve("t", 1, ("echo",)) == "s1"


def test_tasks_on_a_server_that_goes_offline_complete_elsewhere(ctx, clock, backend, second_backend):
    demo, port = backend
    register_backend(ctx, port, "s1")
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    register_backend(ctx, second_backend[1], "s2")
    demo.healthy = False
    for _ in range(3):
        fleet_health.check(ctx, "s1")
    assert ctx.fleet.in_flight("s1") == 0
    assert state_sync.load(ctx, task_id).status is TaskStatus.PENDING
    assert drain(ctx) == ["completed"]
    final = state_sync.load(ctx, task_id)
    assert (final.status, final.server_id, final.attempt) == (TaskStatus.COMPLETED, "s2", 2)
    assert ctx.fleet.state("s1").failures == 0  # not blamed: it went away


def test_a_silent_server_goes_offline_and_is_removed_after_the_grace(ctx, clock, backend):
    _, port = backend
    register_backend(ctx, port)
    clock.advance(299)
    assert fleet_health.cleanup_stale(ctx) == {"offline": 0, "removed": 0}
    servers.heartbeat(ctx, "s1", {"in_flight": 2})
    clock.advance(299)
    assert fleet_health.cleanup_stale(ctx) == {"offline": 0, "removed": 0}
    clock.advance(1)
    assert fleet_health.cleanup_stale(ctx) == {"offline": 1, "removed": 0}
    assert db_status(ctx, "s1") == "offline"
    clock.advance(ctx.settings.server_removal_grace_s - 1)
    assert fleet_health.cleanup_stale(ctx)["removed"] == 0
    clock.advance(1)
    assert fleet_health.cleanup_stale(ctx)["removed"] == 1
    assert db_status(ctx, "s1") is None and ctx.fleet.server_ids() == []


def test_a_heartbeat_brings_an_offline_server_back(ctx, clock, backend):
    _, port = backend
    register_backend(ctx, port)
    clock.advance(300)
    fleet_health.cleanup_stale(ctx)
    assert ctx.fleet.reserve("t", 1, ("echo",)) is None
    servers.heartbeat(ctx, "s1", {})
    assert db_status(ctx, "s1") == "online"
    assert ctx.fleet.reserve("t", 1, ("echo",)) == "s1"


def test_unregistering_drains_then_moves_what_is_left(ctx, clock, backend, second_backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    servers.start_drain(ctx, "s1")
    assert db_status(ctx, "s1") == "draining"
    assert ctx.fleet.reserve("other", 1, ("echo",)) is None  # no new tasks
    assert ctx.queue.later == [("taskfleet.servers.finish_drain", ["s1"], 30)]
    register_backend(ctx, second_backend[1], "s2")
    assert servers.finish_drain(ctx, "s1") is True
    assert db_status(ctx, "s1") is None
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, task_id).server_id == "s2"


def test_maintenance_takes_a_server_out_and_back(ctx, clock, backend):
    _, port = backend
    register_backend(ctx, port)
    servers.set_maintenance(ctx, "s1", True)
    assert ctx.fleet.reserve("t", 1, ("echo",)) is None
    servers.register(
        ctx,
        ServerConfig(
            name="s1",
            capabilities=("echo",),
            endpoints={
                "predict": f"http://127.0.0.1:{port}/predict",
                "health": f"http://127.0.0.1:{port}/health",
            },
        ),
        "s1",
    )
    assert ctx.fleet.reserve("t", 1, ("echo",)) is None  # re-registering keeps maintenance
    servers.set_maintenance(ctx, "s1", False)
    assert ctx.fleet.reserve("t", 1, ("echo",)) == "s1"


def test_weights_derive_from_metrics_unless_configured(ctx, clock, backend):
    _, port = backend
    register_backend(ctx, port)
    for i in range(4):
        ctx.fleet.reserve(f"t{i}", 1, ("echo",))
        ctx.fleet.release("s1", f"t{i}", 1, clock.now_ms(), "success" if i else "failure", 2000)
    fleet_health.check(ctx, "s1")
    assert ctx.fleet.state("s1").weight == 8  # (0.75*10 + (10-2)) / 2 = 7.75


def test_a_health_answer_from_another_server_fails_the_check(ctx, clock):
    demo = DemoBackend("impostor", delay_s=0.01, server_id="s9")  # another server took the address
    port = free_port()
    server = demo.serve("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        register_backend(ctx, port)
        after = fleet_health.check(ctx, "s1")
        assert after.status is ServerStatus.DEGRADED and after.failures_in_row == 1
        state = ctx.fleet.state("s1")
        assert state.last_check_error == "server_id_mismatch" and state.health_score == 90
        assert ctx.fleet.reserve("t", 1, ("echo",)) is not None  # degraded: still chosen, at half weight
        demo.server_id = "s1"  # the right server answers again
        assert fleet_health.check(ctx, "s1").successes_in_row == 1
        assert ctx.fleet.state("s1").last_check_error is None
    finally:
        server.shutdown()
        server.server_close()


def test_the_reason_of_a_failed_check_is_kept_until_a_check_succeeds(ctx, clock, backend):
    demo, port = backend
    register_backend(ctx, port)
    demo.healthy = False
    fleet_health.check(ctx, "s1")
    assert ctx.fleet.state("s1").last_check_error == "http_503"
    demo.healthy = True
    fleet_health.check(ctx, "s1")
    assert ctx.fleet.state("s1").last_check_error is None
