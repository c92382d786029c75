"""Load-aware routing through the services and a real HTTP backend, on fakeredis+SQLite
and on real Redis+Postgres: resource-aware selection from heartbeats, and priorities."""

from __future__ import annotations

import pytest

from app.core.balancing import Algorithm
from app.core.clock import ManualClock
from app.core.servers import ServerConfig
from app.services import servers, state_sync
from app.services.context import Context
from tests.services.helpers import drain, submit_task


def register(ctx: Context, port: int, server_id: str, priority: int = 0) -> None:
    servers.register(
        ctx,
        ServerConfig(
            name=server_id,
            max_concurrent=4,
            capabilities=("echo",),
            priority=priority,
            endpoints={
                "predict": f"http://127.0.0.1:{port}/predict",
                "health": f"http://127.0.0.1:{port}/health",
            },
        ),
        server_id,
    )


def run_one(ctx: Context) -> str | None:
    """Submit a task, run it to the end; the server it completed on."""
    task_id = submit_task(ctx)
    assert drain(ctx) == ["completed"]
    return state_sync.load(ctx, task_id).server_id


def test_the_higher_priority_server_takes_the_tasks_while_the_servers_are_equal(ctx, backend):
    _, port = backend
    register(ctx, port, "s1")
    register(ctx, port, "s2", priority=50)
    register(ctx, port, "s3", priority=20)
    servers.set_algorithm(ctx, Algorithm.LEAST_CONNECTIONS)
    assert [run_one(ctx) for _ in range(3)] == ["s2", "s2", "s2"]
    register(ctx, port, "s3", priority=90)  # re-registering changes it at once
    assert run_one(ctx) == "s3"


@pytest.fixture
def clock(ctx):
    ctx.clock = ManualClock(1_800_000_000_000)
    return ctx.clock


def test_resource_aware_sends_tasks_to_the_least_loaded_server_from_its_heartbeats(ctx, clock, backend):
    _, port = backend
    for server_id in ("s1", "s2", "s3"):
        register(ctx, port, server_id)
    servers.set_algorithm(ctx, Algorithm.RESOURCE_AWARE)
    servers.heartbeat(ctx, "s1", {"cpu": 0.9, "memory": 0.8})
    servers.heartbeat(ctx, "s2", {"cpu": 0.2, "memory": 0.1})
    servers.heartbeat(ctx, "s3", {"cpu": 0.1, "memory": 0.1, "gpu_utilization": 0.95, "gpu_memory": 0.9})
    assert [run_one(ctx) for _ in range(3)] == ["s2", "s2", "s2"]

    servers.heartbeat(ctx, "s2", {"cpu": 0.95, "memory": 0.9})  # s2 got busy
    servers.heartbeat(ctx, "s1", {"cpu": 0.1, "memory": 0.2})
    assert run_one(ctx) == "s1"


def test_resource_aware_forgets_figures_a_minute_old(ctx, clock, backend):
    _, port = backend
    register(ctx, port, "s1")
    register(ctx, port, "s2")
    servers.set_algorithm(ctx, Algorithm.RESOURCE_AWARE)
    servers.heartbeat(ctx, "s1", {"cpu": 0.1, "memory": 0.1})  # and then silence
    clock.advance(30)
    servers.heartbeat(ctx, "s2", {"cpu": 0.4, "memory": 0.4})
    assert run_one(ctx) == "s1"
    clock.advance(31)  # s1's figures are 61 s old: unknown (0.5 each), below s2's
    assert run_one(ctx) == "s2"
    clock.advance(30)  # s2's are stale too: both unknown and idle, a tie
    assert {run_one(ctx) for _ in range(12)} == {"s1", "s2"}
