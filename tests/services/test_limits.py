"""Concurrency limits in dispatch: tasks held back wait in their limit's line in
priority order, other types pass, a freed place starts the best one, and dynamic limits
scale on an injected clock (fakeredis+SQLite and real Redis+Postgres)."""

import logging

from app.core.clock import ManualClock
from app.core.limits import DynamicLimit, LimitConfig
from app.core.states import TaskMode, TaskStatus
from app.core.task import TaskSpec
from app.services import control, dispatch, limits, maintenance, outcomes, state_sync, submit
from app.store import keys, limits_repo
from tests.services.helpers import drain, register_backend


def submit_typed(ctx, task_type, n=0, priority=5):
    spec = TaskSpec(
        type=task_type, payload={"n": n}, capabilities=("echo",), mode=TaskMode.CALLBACK, priority=priority
    )
    return submit.submit(ctx, "alice", spec)[0].id


def finish(ctx, task_id):
    state = state_sync.load(ctx, task_id)
    outcomes.callback(ctx, task_id, state.attempt, {"status": "COMPLETED", "result": {"ok": 1}})


def running(ctx, ids):
    return [t for t in ids if state_sync.load(ctx, t).status is TaskStatus.PROCESSING]


def test_a_full_limit_holds_its_type_back_in_priority_order_and_lets_others_pass(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=10)
    limits.put_limit(ctx, "llm", LimitConfig(max_concurrent=2))
    first = [submit_typed(ctx, "llm", i) for i in range(2)]
    low = submit_typed(ctx, "llm", 2, priority=1)
    high = submit_typed(ctx, "llm", 3, priority=9)
    other = submit_typed(ctx, "ocr", 4)
    assert drain(ctx) == ["accepted", "accepted", "waiting", "waiting", "accepted"]
    assert running(ctx, [*first, low, high, other]) == [*first, other]
    view = limits.get_limit(ctx, "llm")
    assert (view.current, view.in_flight, view.waiting) == (2, 2, 2)
    assert ctx.waiting.total() == 0  # held by the limit, not waiting for a server

    finish(ctx, first[0])  # its place goes to the best task the limit holds back
    assert drain(ctx) == ["accepted"]
    assert running(ctx, [low, high]) == [high]
    finish(ctx, other)  # another type's end starts nothing of this one
    assert drain(ctx) == []
    finish(ctx, first[1])
    assert drain(ctx) == ["accepted"]
    assert limits.get_limit(ctx, "llm").in_flight == 2


def test_deleting_a_limit_starts_what_it_held_back(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=10)
    limits.put_limit(ctx, "*", LimitConfig(max_concurrent=1))
    ids = [submit_typed(ctx, t) for t in ("llm", "ocr", "asr")]
    assert drain(ctx) == ["accepted", "waiting", "waiting"]
    limits.delete_limit(ctx, "*")
    assert drain(ctx) == ["accepted", "accepted"]
    assert running(ctx, ids) == ids


def test_a_new_limit_counts_what_already_runs(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=10)
    ids = [submit_typed(ctx, "llm", i) for i in range(3)]
    drain(ctx)
    limits.put_limit(ctx, "llm", LimitConfig(max_concurrent=2))
    assert limits.get_limit(ctx, "llm").in_flight == 3
    later = submit_typed(ctx, "llm")
    assert drain(ctx) == ["waiting"]
    finish(ctx, ids[0])
    assert drain(ctx) == ["waiting"]  # woken, but 2 still run: the limit has no room yet
    finish(ctx, ids[1])
    assert drain(ctx) == ["accepted"] and running(ctx, [later]) == [later]


def test_limits_lost_from_redis_are_published_before_anything_is_reserved(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=10)
    maintenance.reconcile(ctx)  # Redis is rebuilt: only the limits go missing below
    limits.put_limit(ctx, "llm", LimitConfig(max_concurrent=1))
    first = submit_typed(ctx, "llm")
    drain(ctx)
    for key in (keys.LIMITS, keys.LIMITS_LOADED, keys.limit("llm"), keys.limit_held("llm")):
        ctx.redis.delete(key)  # the limits alone lost (the row says the first one runs)
    second = submit_typed(ctx, "llm")
    assert drain(ctx) == ["waiting"]  # the dispatch published the limit with its hold
    assert ctx.limits.loaded() and limits.get_limit(ctx, "llm").in_flight == 1
    finish(ctx, first)
    assert drain(ctx) == ["accepted"] and running(ctx, [second]) == [second]


def test_a_dispatch_that_cannot_load_the_limits_tries_again_in_a_second(ctx, backend, monkeypatch):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_typed(ctx, "llm")
    ctx.redis.delete(keys.LIMITS_LOADED)
    monkeypatch.setattr(limits, "publish", lambda ctx: 0)  # as if it failed to land
    job = ctx.queue.take()[0]
    assert dispatch.dispatch(ctx, *job[:2]).value == "waiting"
    assert ctx.tasks.which_scheduled([task_id]) == [True]


def test_a_dynamic_limit_grows_under_backlog_and_shrinks_after(ctx, backend, caplog):
    _, port = backend
    register_backend(ctx, port, max_concurrent=50)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    config = LimitConfig(dynamic=DynamicLimit(initial=1, max=3, step=1, up_every_s=60, down_every_s=180))
    limits.put_limit(ctx, "llm", config)
    ids = [submit_typed(ctx, "llm", i) for i in range(10)]
    assert drain(ctx).count("accepted") == 1
    caplog.set_level(logging.INFO, "taskfleet.limits")

    def tick(seconds):
        clock.advance(seconds)
        report = limits.scale_and_wake(ctx)
        drain(ctx)
        return limits.get_limit(ctx, "llm"), report

    view, report = tick(1)  # 9 waiting > 2 x 1: up to 2, and the new place is filled
    assert (view.current, view.in_flight, view.waiting) == (2, 2, 8)
    assert report["changed"] == 1 and report["woken"] == 1
    assert tick(59)[0].current == 2  # at most once per upEverySeconds
    view, _ = tick(1)
    assert (view.current, view.in_flight, view.waiting) == (3, 3, 7)
    assert tick(120)[0].current == 3  # the max
    assert "concurrency limit 'llm': 2 -> 3" in caplog.text
    with ctx.db.session() as s:
        row = limits_repo.get(s, "llm")
    assert (row.current, row.changed_from) == (3, 2) and "waiting > 2 x 2" in row.change_reason

    while active := running(ctx, ids):  # the backlog drains: each end starts the next
        for task_id in active:
            finish(ctx, task_id)
        drain(ctx)
    assert all(state_sync.load(ctx, t).status is TaskStatus.COMPLETED for t in ids)
    view, _ = tick(1)  # 0 waiting < 3 / 2, never shrunk before: down to 2
    assert view.current == 2 and view.limit.changed_from == 3
    assert tick(179)[0].current == 2  # at most once per downEverySeconds
    assert tick(1)[0].current == 1
    assert tick(600)[0].current == 1  # never below initial


def test_reclaiming_a_slot_without_its_type_drops_its_hold_later(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=10)
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    limits.put_limit(ctx, "llm", LimitConfig(max_concurrent=1))
    ctx.fleet.reserve("ghost", 1, ("echo",), now_ms=clock.now_ms(), task_type="llm")  # never started
    clock.advance(maintenance.RECLAIM_AFTER_S + 1)
    assert maintenance.reclaim_slots(ctx) == 1
    assert limits.get_limit(ctx, "llm").in_flight == 0


def test_a_held_back_task_that_is_cancelled_or_times_out_stops_counting_as_waiting(ctx, backend):
    _, port = backend
    clock = ctx.clock = ManualClock(1_800_000_000_000)
    register_backend(ctx, port, max_concurrent=10)
    limits.put_limit(ctx, "llm", LimitConfig(max_concurrent=1))
    limits.put_limit(ctx, "*", LimitConfig(max_concurrent=5))
    submit_typed(ctx, "llm")
    held = [submit_typed(ctx, "llm", i) for i in range(1, 4)]
    assert drain(ctx) == ["accepted", "waiting", "waiting", "waiting"]
    assert limits.get_limit(ctx, "llm").waiting == 3
    control.cancel(ctx, held[0], None)
    control.cancel_many(ctx, [held[1]])
    assert limits.get_limit(ctx, "llm").waiting == 1
    clock.advance(3_600_001)  # the last one's timeout: it never got a server
    maintenance.expire_deadlines(ctx)
    assert state_sync.load(ctx, held[2]).status is TaskStatus.TIMEOUT
    assert limits.get_limit(ctx, "llm").waiting == 0
