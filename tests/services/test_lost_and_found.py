"""Slots, tasks and rows that a crash, a duplicate job or an outage could lose."""

import time

import pytest

from app.core.clock import ManualClock
from app.core.errors import StoreUnavailable
from app.core.states import TaskMode, TaskStatus
from app.services import dispatch, fleet_health, maintenance, outcomes, servers, state_sync, waiting
from app.store import keys, tasks_repo
from tests.services.helpers import drain, register_backend, start_attempt, submit_task


def test_a_duplicate_dispatch_job_reserves_nothing_twice(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    task_id = submit_task(ctx)
    (job,) = ctx.queue.take()
    # a first delivery reserved and then died before starting the attempt
    assert ctx.fleet.reserve(task_id, 1, ("echo",), now_ms=ctx.now_ms()) == "s1"
    assert dispatch.dispatch(ctx, task_id, 0).value == "completed"  # the redelivery reuses it
    assert ctx.fleet.in_flight("s1") == 0


def test_a_slot_abandoned_by_a_dead_worker_is_reclaimed_after_a_minute(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    ctx.fleet.reserve("ghost", 1, ("echo",), now_ms=clock.now_ms())  # reserved, never started
    running = submit_task(ctx)
    assert drain(ctx) == ["waiting"]
    clock.advance(maintenance.RECLAIM_AFTER_S - 1)
    assert maintenance.reclaim_slots(ctx) == 0
    clock.advance(1)
    assert maintenance.reclaim_slots(ctx) == 1  # and the waiting task is woken
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, running).status is TaskStatus.COMPLETED


def test_reclaiming_never_takes_the_slot_of_a_running_attempt(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    clock.advance(3600)
    assert maintenance.reclaim_slots(ctx) == 0
    assert ctx.fleet.in_flight("s1") == 1


def test_after_redis_loses_everything_running_tasks_keep_their_slots_and_deadlines(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    first = submit_task(ctx)
    start_attempt(ctx, first)
    second = submit_task(ctx)
    ctx.redis.flushall()
    report = maintenance.reconcile(ctx)
    assert report["servers"] == 1 and report["tasks"] == 2
    assert ctx.fleet.in_flight("s1") == 1  # the running attempt still holds the only slot
    assert set(ctx.tasks.due_deadlines(2**62, 10)) == {first, second}
    assert set(drain(ctx)) == {"waiting"}  # the second task cannot start beside it
    outcomes.complete(ctx, first, 1, {"done": True})
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, second).status is TaskStatus.COMPLETED


def test_the_database_catches_up_when_it_missed_a_transition(ctx, backend, monkeypatch):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    real_follow = tasks_repo.follow

    def down(*args, **kwargs):
        raise StoreUnavailable("database unavailable")

    monkeypatch.setattr(tasks_repo, "follow", down)
    with pytest.raises(StoreUnavailable):
        outcomes.callback(ctx, task_id, 1, {"status": "COMPLETED", "result": 42})
    monkeypatch.setattr(tasks_repo, "follow", real_follow)
    assert ctx.redis.pttl(keys.task(task_id)) == -1  # kept in Redis until the database has it
    with ctx.db.session() as s:
        assert tasks_repo.get_row(s, task_id).status == "PROCESSING"
    # the backend repeats its callback: same answer, and now the database has it
    assert outcomes.callback(ctx, task_id, 1, {"status": "COMPLETED", "result": 42}).result == 42
    with ctx.db.session() as s:
        assert tasks_repo.get_row(s, task_id).status == "COMPLETED"
    assert ctx.redis.pttl(keys.task(task_id)) > 0


def test_reconcile_lets_the_database_catch_up(ctx, backend, monkeypatch):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    real_follow = tasks_repo.follow
    monkeypatch.setattr(tasks_repo, "follow", lambda *a, **k: (_ for _ in ()).throw(StoreUnavailable("down")))
    with pytest.raises(StoreUnavailable):
        outcomes.complete(ctx, task_id, 1, "r")
    monkeypatch.setattr(tasks_repo, "follow", real_follow)
    ctx.tasks.rebuilt(ctx.now_ms())
    assert maintenance.reconcile(ctx)["synced"] == 1
    with ctx.db.session() as s:
        assert tasks_repo.get_row(s, task_id).status == "COMPLETED"


def test_a_dispatch_calls_its_backend_though_the_database_missed_the_start(ctx, backend, monkeypatch):
    """Postgres down at the moment a callback task starts: the backend is called all the
    same (else the task would wait its whole timeout), and the row catches up later."""
    demo, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"x": 1}, mode=TaskMode.CALLBACK)
    real_follow = tasks_repo.follow
    monkeypatch.setattr(tasks_repo, "follow", lambda *a, **k: (_ for _ in ()).throw(StoreUnavailable("down")))
    ((queued, attempt, _),) = ctx.queue.take()
    assert dispatch.dispatch(ctx, queued, attempt) is dispatch.DispatchResult.ACCEPTED
    assert demo.stats()["calls"] == 1
    monkeypatch.setattr(tasks_repo, "follow", real_follow)
    ctx.tasks.rebuilt(ctx.now_ms())
    assert maintenance.reconcile(ctx)["synced"] == 1
    with ctx.db.session() as s:
        row = tasks_repo.get_row(s, task_id)
        assert (row.status, row.server_id) == ("PROCESSING", "s1")
        assert [a.server_id for a in tasks_repo.attempts_of(s, task_id)] == ["s1"]


def test_a_freed_slot_starts_a_task_it_can_serve_not_the_head_of_another_line(ctx, backend):
    _, port = backend
    register_backend(ctx, port, "gpu", max_concurrent=1, capabilities=("gpu",))
    register_backend(ctx, port, "cpu", max_concurrent=1, capabilities=("cpu",))
    ctx.fleet.reserve("gpu-blocker", 1, ("gpu",))
    ctx.fleet.reserve("cpu-blocker", 1, ("cpu",))
    gpu_task = submit_task(ctx, priority=9, capabilities=("gpu",))
    cpu_task = submit_task(ctx, priority=1, capabilities=("cpu",))
    assert drain(ctx) == ["waiting", "waiting"]
    ctx.fleet.release("cpu", "cpu-blocker", 1, ctx.now_ms())
    assert waiting.wake(ctx, 1, "cpu") == 1
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, cpu_task).status is TaskStatus.COMPLETED
    assert state_sync.load(ctx, gpu_task).status is TaskStatus.PENDING


def test_a_task_no_server_can_take_times_out_by_its_own_deadline(ctx):
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    task_id = submit_task(ctx, capabilities=("quantum",), timeout_s=30)
    assert drain(ctx) == ["waiting"]
    clock.advance(29)
    assert maintenance.expire_deadlines(ctx) == 0
    clock.advance(1)
    assert maintenance.expire_deadlines(ctx) == 1
    state = state_sync.load(ctx, task_id)
    assert state.status is TaskStatus.TIMEOUT and "within 30s" in state.error


def test_a_health_check_that_crashes_does_not_stop_future_checks(ctx, backend, monkeypatch):
    _, port = backend
    register_backend(ctx, port)
    assert fleet_health.due_checks(ctx) == ["s1"]
    monkeypatch.setattr(ctx.backends, "health", lambda url, server_id=None: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fleet_health.check(ctx, "s1")
    assert ctx.redis.zscore(keys.HEALTH_DUE, "s1") is not None


def test_a_heartbeat_does_not_undo_failed_health_checks(ctx, backend):
    demo, port = backend
    register_backend(ctx, port)
    demo.healthy = False
    for _ in range(3):
        fleet_health.check(ctx, "s1")
    servers.heartbeat(ctx, "s1", {})
    assert servers.get(ctx, "s1").status == "offline"


def test_losing_a_race_records_no_verdict_on_the_server(ctx, backend):
    from app.core.errors import Conflict
    from app.services import control

    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    control.cancel(ctx, task_id, "alice")
    with pytest.raises(Conflict):
        outcomes.complete(ctx, task_id, 1, "late")
    assert ctx.fleet.state("s1").successes == 0


def test_a_sync_attempt_whose_worker_died_is_retried_elsewhere_within_a_minute(ctx, backend):
    from app.services import liveness

    _, port = backend
    register_backend(ctx, port)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)  # the worker started the attempt and was killed: no heartbeat
    clock.advance(liveness.LOST_AFTER_S - 1)
    assert liveness.recover_lost_attempts(ctx) == 0
    clock.advance(1)
    assert liveness.recover_lost_attempts(ctx) == 1
    assert ctx.fleet.in_flight("s1") == 0
    assert drain(ctx) == ["completed"]
    state = state_sync.load(ctx, task_id)
    assert (state.status, state.attempt) == (TaskStatus.COMPLETED, 2)


def test_a_live_worker_keeps_its_attempt(ctx, backend, monkeypatch):
    from app.services import liveness

    monkeypatch.setattr(liveness, "HEARTBEAT_EVERY_S", 0.05)
    _, port = backend
    register_backend(ctx, port)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    with liveness.heartbeat(ctx, task_id, 1):
        _wait_until(lambda: ctx.tasks.is_alive(task_id, 1))  # its first beat
        clock.advance(600)
        assert liveness.recover_lost_attempts(ctx) == 0
    assert not ctx.tasks.is_alive(task_id, 1)


def test_an_attempt_shorter_than_a_heartbeat_writes_none(ctx, backend):
    from app.services import liveness

    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    with liveness.heartbeat(ctx, task_id, 1):
        assert not ctx.tasks.is_alive(task_id, 1)  # not needed before LOST_AFTER_S
    assert not ctx.tasks.is_alive(task_id, 1)
    # the first beat comes well before a missing one counts, even on a busy worker
    assert liveness.HEARTBEAT_EVERY_S * 3 <= liveness.LOST_AFTER_S


def _wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_the_orphan_sweep_walks_a_backlog_larger_than_one_batch(ctx, monkeypatch):
    monkeypatch.setattr(maintenance, "BATCH", 3)
    ids = [submit_task(ctx) for _ in range(7)]
    ctx.queue.take()  # the jobs were lost: nothing will dispatch these tasks
    ctx.tasks.rebuilt(ctx.now_ms())
    ctx.clock = ManualClock(ctx.now_ms() + maintenance.ORPHAN_AFTER_S * 1000)
    requeued = [maintenance.reconcile(ctx)["requeued"] for _ in range(3)]
    assert requeued == [3, 3, 1]
    assert sorted(t for t, _, _ in ctx.queue.take()) == sorted(ids)


def test_the_orphan_sweep_gives_a_task_behind_a_backlog_longer_but_still_finds_it(ctx):
    from app.config import DISPATCH_QUEUE

    task_id = submit_task(ctx)
    ctx.queue.take()  # its job is lost ...
    ctx.tasks.rebuilt(ctx.now_ms())
    start = ctx.now_ms()
    ctx.clock = ManualClock(start + maintenance.ORPHAN_AFTER_S * 1000)
    ctx.redis.lpush(DISPATCH_QUEUE, "a job of another task, not yet taken")  # ... or behind this
    assert maintenance.reconcile(ctx)["requeued"] == 0
    ctx.clock = ManualClock(start + maintenance.ORPHAN_IN_BACKLOG_AFTER_S * 1000)  # still queued
    assert maintenance.reconcile(ctx)["requeued"] == 1
    assert [t for t, _, _ in ctx.queue.take()] == [task_id]


def test_an_attempt_whose_start_was_slow_to_record_beats_at_once(ctx, backend):
    from app.services import liveness

    _, port = backend
    register_backend(ctx, port)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    started = state_sync.load(ctx, task_id).started_ms
    clock.advance(liveness.HEARTBEAT_EVERY_S + 1)  # e.g. its record waited for a connection
    with liveness.heartbeat(ctx, task_id, 1, started):
        assert ctx.tasks.is_alive(task_id, 1)
        clock.advance(liveness.LOST_AFTER_S)
        assert liveness.recover_lost_attempts(ctx) == 0
