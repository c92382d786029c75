"""Load-aware routing through the services and a real HTTP backend, on fakeredis+SQLite
and on real Redis+Postgres: server priorities."""

from __future__ import annotations

from app.core.balancing import Algorithm
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
