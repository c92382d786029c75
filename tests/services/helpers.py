"""Small helpers for service tests: register a backend, submit, run queued jobs."""

from __future__ import annotations

from typing import Any

from app.core.servers import ServerConfig
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.services import dispatch, servers, state_sync, submit
from app.services.context import Context


def register_backend(
    ctx: Context,
    port: int,
    server_id: str = "s1",
    max_concurrent: int = 4,
    capabilities: tuple[str, ...] = ("echo",),
) -> None:
    servers.register(
        ctx,
        ServerConfig(
            name=server_id,
            max_concurrent=max_concurrent,
            capabilities=capabilities,
            endpoints={
                "predict": f"http://127.0.0.1:{port}/predict",
                "health": f"http://127.0.0.1:{port}/health",
            },
        ),
        server_id,
    )


def submit_task(ctx: Context, payload: Any = None, **spec: Any) -> str:
    spec.setdefault("capabilities", ("echo",))
    state, _ = submit.submit(ctx, "alice", TaskSpec(type="echo", payload=payload, **spec))
    return state.id


def drain(ctx: Context, rounds: int = 20) -> list[str]:
    """Run every queued dispatch job until the queue is empty; scheduled retries run at
    once (their backoff is skipped)."""
    results = []
    for _ in range(rounds):
        jobs = ctx.queue.take()  # type: ignore[attr-defined]
        if not jobs:
            for task_id in ctx.tasks.claim_due(2**62, 1000):
                ctx.queue.enqueue(task_id, ctx.tasks.get(task_id).attempt)
            jobs = ctx.queue.take()  # type: ignore[attr-defined]
        if not jobs:
            break
        for task_id, attempt, _countdown in jobs:
            results.append(dispatch.dispatch(ctx, task_id, attempt).value)
    return results


def start_attempt(ctx: Context, task_id: str, server: str = "s1") -> TaskState:
    """Put a just-submitted task in PROCESSING on ``server`` as a dispatcher would, without
    calling the backend (its queued job is dropped)."""
    ctx.queue.take()  # type: ignore[attr-defined]
    assert ctx.fleet.reserve(task_id, 1, ("echo",), now_ms=ctx.now_ms()) == server
    return state_sync.apply(
        ctx,
        task_id,
        [TaskStatus.PENDING],
        TaskStatus.PROCESSING,
        expect_attempt=0,
        attempt=1,
        server_id=server,
        started_ms=ctx.now_ms(),
    )
