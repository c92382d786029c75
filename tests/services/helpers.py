"""Small helpers for service tests: register a backend, submit, run queued jobs, and the
scripted statistics workload (a ticking clock, three servers, every kind of outcome)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from app import create_app
from app.core.clock import ManualClock
from app.core.servers import ServerConfig
from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskSpec, TaskState
from app.demo_backend import DemoBackend
from app.services import control, dispatch, fleet_health, maintenance, servers, state_sync, submit, waiting
from app.services.context import Context, build_context

HOUR = 3_600_000
START = 1_800_000_000_000 // HOUR * HOUR + 50 * 60_000  # 10 minutes before an hour ends


def register_backend(
    ctx: Context,
    port: int,
    server_id: str = "s1",
    max_concurrent: int = 4,
    capabilities: tuple[str, ...] = ("echo",),
    **config: Any,
) -> None:
    """Register the demo backend on ``port``; ``config``: more ServerConfig fields."""
    servers.register(
        ctx,
        ServerConfig(
            name=server_id,
            max_concurrent=max_concurrent,
            capabilities=capabilities,
            endpoints={
                "predict": f"http://127.0.0.1:{port}/predict",
                "health": f"http://127.0.0.1:{port}/health",
                **config.pop("endpoints", {}),
            },
            **config,
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


class TickingClock(ManualClock):
    """Moves a few milliseconds on every read, so durations are real and varied."""

    def __init__(self, start_ms: int) -> None:
        super().__init__(start_ms)
        self.reads = 0

    def now_ms(self) -> int:
        self.reads += 1
        self._now_ms += 1 + self.reads % 7
        return self._now_ms


def make_world(ctx: Context, backend: tuple[DemoBackend, int]) -> tuple[Context, TickingClock, FlaskClient]:
    """``ctx`` on a ``TickingClock`` at ``START`` with three servers s1..s3 on the demo
    backend, and a test client of the app on it: (context, clock, client)."""
    demo, port = backend
    demo.delay_s = 0.002  # many calls, and their time is the clock's anyway
    clock = TickingClock(START)
    context = build_context(ctx.settings, ctx.queue, clock=clock, redis_client=ctx.redis, db=ctx.db)
    for server_id in ("s1", "s2", "s3"):
        register_backend(context, port, server_id, max_concurrent=50)
    maintenance.reconcile(context)  # Redis is now "rebuilt": a later loss is noticed
    app = create_app(context=context)
    app.config["TESTING"] = True
    return context, clock, app.test_client()


def run_batch(ctx: Context, clock: ManualClock, n: int) -> None:
    """Successes, retried failures, final failures, garbage, timeouts and cancels."""
    for i in range(n):
        kind = i % 6
        if kind == 0:
            submit_task(ctx, {"n": i})
        elif kind == 1:
            submit_task(ctx, {"fail": 500}, max_retries=2)  # retried twice, then FAILED
        elif kind == 2:
            submit_task(ctx, {"fail": 400})  # not retryable: FAILED at once
        elif kind == 3:
            submit_task(ctx, {"garbage": True}, max_retries=1)
        elif kind == 4:
            submit_task(ctx, {"n": i}, mode=TaskMode.CALLBACK, timeout_s=60, max_retries=1)
        else:
            task_id = submit_task(ctx, {"n": i}, capabilities=("nobody-has-this",), timeout_s=60)
            if i % 12 == 5:
                control.cancel(ctx, task_id, None)
    drain(ctx)
    for _ in range(3):  # callback tasks never hear back: time out, retry, time out
        clock.advance(61)
        maintenance.expire_deadlines(ctx)
        fleet_health.wake_servers(ctx)  # open circuits (the failures trip them) close again
        waiting.wake_for_free_slots(ctx)
        drain(ctx)
