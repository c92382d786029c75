"""Hand-off: a dispatch job that frees a slot runs the task it wakes itself, with no
message; the rest (a cap, an error, anything outside a job) still goes by message."""

import pytest

from app.core.errors import StoreUnavailable
from app.core.states import TaskStatus
from app.services import dispatch, handoff, state_sync, waiting
from app.services.context import build_context
from app.services.handoff import HandOffQueue, handing_off
from tests.services.helpers import register_backend, submit_task


@pytest.fixture
def worker_ctx(ctx):
    """``ctx`` as a worker builds it: its queue wrapped for hand-off (the wrapped
    recording queue is still ``ctx.queue``, where sent messages show)."""
    return build_context(ctx.settings, HandOffQueue(ctx.queue), redis_client=ctx.redis, db=ctx.db)


@pytest.fixture
def line(ctx, backend):
    """One server with one slot; four tasks submitted, the last three PENDING in their
    line (as dispatch parks a task that found no slot). Their ids."""
    register_backend(ctx, backend[1], max_concurrent=1)
    ids = [submit_task(ctx, {"n": n}) for n in range(4)]
    ctx.queue.take()
    for task_id in ids[1:]:
        waiting.park(ctx, state_sync.load(ctx, task_id))
    return ids


def _statuses(ctx, ids):
    return [state_sync.load(ctx, task_id).status for task_id in ids]


def test_the_job_that_frees_a_slot_runs_the_woken_tasks_itself_without_messages(worker_ctx, ctx, line):
    first = dispatch.dispatch
    result = handing_off(worker_ctx, lambda: first(worker_ctx, line[0], 0).value, dispatch.dispatch)
    assert result == "completed"
    assert _statuses(worker_ctx, line) == [TaskStatus.COMPLETED] * 4
    assert ctx.queue.take() == []  # not one dispatch message
    assert worker_ctx.fleet.in_flight("s1") == 0


def test_past_the_cap_the_next_dispatch_goes_by_message(worker_ctx, ctx, line, monkeypatch):
    monkeypatch.setattr(handoff, "MAX_HANDOFFS", 2)
    handing_off(worker_ctx, lambda: dispatch.dispatch(worker_ctx, line[0], 0), dispatch.dispatch)
    assert _statuses(worker_ctx, line) == [TaskStatus.COMPLETED] * 3 + [TaskStatus.PENDING]
    assert ctx.queue.take() == [(line[3], 0, 0)]


def test_a_dispatch_held_when_the_job_fails_is_sent_by_message(worker_ctx, ctx, line):
    def fails_after_waking():
        dispatch.dispatch(worker_ctx, line[0], 0)  # completes, wakes line[1]: held
        raise StoreUnavailable("database unavailable")

    with pytest.raises(StoreUnavailable):
        handing_off(worker_ctx, fails_after_waking, dispatch.dispatch)
    assert ctx.queue.take() == [(line[1], 0, 0)]
    assert _statuses(worker_ctx, line)[1] is TaskStatus.PENDING


def test_only_one_dispatch_is_held_and_countdowns_and_other_jobs_are_sent(worker_ctx, ctx):
    sent = []

    def work():
        worker_ctx.queue.enqueue("a", 0)
        worker_ctx.queue.enqueue("b", 0)
        worker_ctx.queue.enqueue("c", 0, countdown_s=5)
        worker_ctx.queue.call_later("taskfleet.poll", ["d"])
        return "done"

    def run(_ctx, task_id, attempt):
        sent.append((task_id, attempt))

    assert handing_off(worker_ctx, work, run) == "done"
    assert sent == [("a", 0)]
    assert ctx.queue.take() == [("b", 0, 0), ("c", 0, 5)]
    assert ctx.queue.later == [("taskfleet.poll", ["d"], 0)]


def test_outside_a_job_every_dispatch_is_sent(worker_ctx, ctx):
    worker_ctx.queue.enqueue("a", 0)
    assert ctx.queue.take() == [("a", 0, 0)]


def test_a_job_past_its_hand_off_time_sends_what_it_woke(worker_ctx, ctx, line, monkeypatch):
    monkeypatch.setattr(handoff, "MAX_HANDOFF_S", -1.0)
    handing_off(worker_ctx, lambda: dispatch.dispatch(worker_ctx, line[0], 0), dispatch.dispatch)
    assert _statuses(worker_ctx, line) == [TaskStatus.COMPLETED] + [TaskStatus.PENDING] * 3
    assert ctx.queue.take() == [(line[1], 0, 0)]


def test_once_the_worker_shuts_down_nothing_is_handed_off(worker_ctx, ctx, line, monkeypatch):
    import threading

    monkeypatch.setattr(handoff, "_stopping", threading.Event())
    handoff.stop()
    handing_off(worker_ctx, lambda: dispatch.dispatch(worker_ctx, line[0], 0), dispatch.dispatch)
    assert _statuses(worker_ctx, line)[:2] == [TaskStatus.COMPLETED, TaskStatus.PENDING]
    assert ctx.queue.take() == [(line[1], 0, 0)]


def test_the_worker_stops_handing_off_when_celery_starts_its_shutdown(monkeypatch):
    import threading

    from celery.signals import worker_shutting_down

    import workers.dispatch_jobs  # noqa: F401 - connects the signal

    monkeypatch.setattr(handoff, "_stopping", threading.Event())
    worker_shutting_down.send(sender="test", sig="SIGTERM", how="Warm", exitcode=0)
    assert handoff._stopping.is_set()
