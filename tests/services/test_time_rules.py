"""Deadlines, backoff and priority order with an injected clock: no sleeping."""

import pytest

from app.core.clock import ManualClock
from app.core.errors import Conflict
from app.core.states import TaskMode, TaskStatus
from app.services import dispatch, maintenance, outcomes, state_sync, waiting
from app.store import tasks_repo
from tests.services.helpers import register_backend, submit_task


@pytest.fixture
def clock(ctx):
    ctx.clock = ManualClock(1_800_000_000_000)
    return ctx.clock


def start_callback_attempt(ctx, task_id):
    (job,) = [j for j in ctx.queue.take() if j[0] == task_id]
    ctx.backends.predict = lambda call: {"status": "accepted"}  # acknowledges, never calls back
    assert dispatch.dispatch(ctx, task_id, job[1]).value == "accepted"
    return state_sync.load(ctx, task_id)


def test_an_attempt_past_its_deadline_times_out_and_is_retried_after_a_backoff(ctx, clock, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, mode=TaskMode.CALLBACK, timeout_s=60, max_retries=1)
    state = start_callback_attempt(ctx, task_id)
    clock.advance(59.999)
    assert maintenance.expire_deadlines(ctx) == 0
    clock.advance(0.001)
    assert maintenance.expire_deadlines(ctx) == 1
    retried = state_sync.load(ctx, task_id)
    assert (retried.status, retried.attempt) == (TaskStatus.PENDING, 1)
    assert ctx.fleet.in_flight("s1") == 0
    with pytest.raises(Conflict):  # the backend's late answer for the timed-out attempt
        outcomes.callback(ctx, task_id, state.attempt, {"status": "COMPLETED", "result": 1})
    assert maintenance.dispatch_due(ctx) == 0  # the backoff (2^1 s with jitter) has not passed
    clock.advance(2)
    assert maintenance.dispatch_due(ctx) == 1
    second = start_callback_attempt(ctx, task_id)
    clock.advance(60)
    maintenance.expire_deadlines(ctx)
    final = state_sync.load(ctx, task_id)
    assert (final.status, final.attempt) == (TaskStatus.TIMEOUT, second.attempt)
    assert "timed out after 60s" in final.error and "no retries left" in final.error
    with ctx.db.session() as s:
        assert [a.outcome for a in tasks_repo.attempts_of(s, task_id)] == ["TIMEOUT", "TIMEOUT"]


def test_waiting_tasks_start_by_priority_then_age(ctx, clock, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    ctx.fleet.reserve("blocker", 1, ("echo",), now_ms=clock.now_ms())
    order = []
    for priority in (1, 5, 9, 5, 9):
        order.append((priority, submit_task(ctx, priority=priority)))
        clock.advance(1)
    for task_id, attempt, _ in ctx.queue.take():
        assert dispatch.dispatch(ctx, task_id, attempt).value == "waiting"
    ctx.fleet.release("s1", "blocker", 1, clock.now_ms())
    started = []
    for _ in range(5):
        assert waiting.wake(ctx, 1, "s1") == 1
        ((task_id, attempt, _),) = ctx.queue.take()
        started.append(task_id)
        state = state_sync.load(ctx, task_id)
        ctx.fleet.reserve(task_id, attempt + 1, ("echo",), now_ms=clock.now_ms())  # it runs ...
        ctx.fleet.release("s1", task_id, attempt + 1, clock.now_ms())  # ... and finishes
        assert state.status is TaskStatus.PENDING
    expected = [t for _, t in sorted(order, key=lambda pt: -pt[0])]  # stable: older first
    assert started == expected
