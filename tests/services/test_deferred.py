"""Delayed tasks (runAt) and dependencies (dependsOn) on an injected clock, on
fakeredis+SQLite and on Redis+Postgres: when they start, what releases or fails them,
and what survives a process killed midway or a Redis loss."""

from __future__ import annotations

import pytest

from app.core import deferral
from app.core.clock import ManualClock
from app.core.errors import InvalidInput
from app.core.states import TaskStatus
from app.core.task import TaskSpec
from app.services import (
    control,
    deferred,
    dependencies,
    maintenance,
    state_sync,
    statistics,
    submit,
)
from app.store import keys, tasks_repo
from tests.services.helpers import drain, register_backend

NOW = 1_800_000_000_000


@pytest.fixture
def world(ctx, backend):
    """``ctx`` on a manual clock with one server on the demo backend."""
    _, port = backend
    register_backend(ctx, port, "s1")
    ctx.clock = ManualClock(NOW)
    maintenance.reconcile(ctx)  # Redis is now "rebuilt": a later loss is noticed
    ctx.queue.take()
    return ctx


def new(ctx, payload=None, owner="alice", as_admin=False, **spec):
    spec.setdefault("capabilities", ("echo",))
    state, _ = submit.submit(ctx, owner, TaskSpec(type="echo", payload=payload, **spec), as_admin=as_admin)
    return state


def status(ctx, task_id):
    return state_sync.load(ctx, task_id).status


def row(ctx, task_id):
    with ctx.db.session() as session:
        return tasks_repo.get_row(session, task_id)


def live_counts(ctx):
    return ctx.stats.snapshot()[0].sum("a")


def test_a_scheduled_task_waits_in_the_database_and_one_zset_entry_then_runs_on_time(world):
    task = new(world, run_at_ms=NOW + 60_000)
    assert task.status is TaskStatus.SCHEDULED
    assert world.tasks.get(task.id) is None, "a scheduled task has no hot state"
    assert world.redis.zscore(keys.STARTS_DUE, task.id) == NOW + 60_000
    assert world.queue.take() == []
    assert live_counts(world)["created"] == 1

    world.clock.advance(59.999)
    assert deferred.start_due(world) == 0
    assert row(world, task.id).status == "SCHEDULED"
    world.clock.advance(0.001)
    assert deferred.start_due(world) == 1
    assert status(world, task.id) is TaskStatus.PENDING
    assert world.redis.zcard(keys.STARTS_DUE) == 0
    assert drain(world) == ["completed"]
    done = row(world, task.id)
    assert done.status == "COMPLETED" and done.started_at >= done.run_at
    # Counted once as created, though its hot state was first written when it started.
    assert live_counts(world)["created"] == 1 and live_counts(world)["completed"] == 1


def test_reading_a_scheduled_or_waiting_task_writes_nothing_to_redis(world):
    later = new(world, run_at_ms=NOW + 60_000)
    after = new(world, depends_on=(later.id,))
    for task in (later, after):
        shown = control.visible_task(world, task.id, "alice")
        assert shown.status is task.status and shown.spec.run_at_ms == task.spec.run_at_ms
        assert world.tasks.get(task.id) is None, "a read must not hydrate a database-only task"
    world.clock.advance(60)
    assert deferred.start_due(world) == 1
    assert drain(world) == ["completed", "completed"]
    assert row(world, after.id).status == "COMPLETED"


def test_cancel_works_while_scheduled_and_takes_it_off_the_schedule(world):
    task = new(world, run_at_ms=NOW + 60_000)
    assert control.cancel(world, task.id, "alice").status is TaskStatus.CANCELLED
    assert world.redis.zcard(keys.STARTS_DUE) == 0
    world.clock.advance(120)
    assert deferred.start_due(world) == 0
    assert row(world, task.id).status == "CANCELLED" and world.queue.take() == []
    counts = live_counts(world)
    assert counts["created"] == 1 and counts["cancelled"] == 1


def test_a_start_time_already_past_starts_at_once(world):
    task = new(world, run_at_ms=NOW - 1)
    assert task.status is TaskStatus.PENDING
    assert [job[0] for job in world.queue.take()] == [task.id]


def test_a_start_claimed_by_a_run_that_died_comes_due_again_after_its_lease(world):
    task = new(world, run_at_ms=NOW + 1000)
    world.clock.advance(1)
    assert world.starts.claim_due(world.now_ms(), deferred.START_LEASE_MS, 10) == [task.id]  # then died
    assert deferred.start_due(world) == 0  # a second beat does not start it twice
    world.clock.advance(deferred.START_LEASE_MS / 1000)
    assert deferred.start_due(world) == 1
    assert status(world, task.id) is TaskStatus.PENDING


def test_a_three_step_chain_runs_in_order(world):
    a = new(world, {"step": "a"})
    b = new(world, {"step": "b"}, depends_on=(a.id,))
    c = new(world, {"step": "c"}, depends_on=(b.id,))
    assert (b.status, c.status) == (TaskStatus.WAITING, TaskStatus.WAITING)
    assert world.tasks.get(b.id) is None and world.tasks.get(c.id) is None
    assert [job[0] for job in world.queue.jobs] == [a.id]
    assert drain(world) == ["completed", "completed", "completed"]
    rows = [row(world, t.id) for t in (a, b, c)]
    assert [r.status for r in rows] == ["COMPLETED"] * 3
    assert rows[0].finished_at <= rows[1].started_at and rows[1].finished_at <= rows[2].started_at
    assert list(rows[2].depends_on) == [b.id]


def test_a_failure_travels_two_levels_as_upstream_failed(world):
    a = new(world, {"fail": 400})  # not retryable: FAILED at once
    b = new(world, depends_on=(a.id,))
    c = new(world, depends_on=(b.id,))
    assert drain(world) == ["failed"]
    rb, rc = row(world, b.id), row(world, c.id)
    assert rb.status == rc.status == "FAILED"
    assert rb.error == f"upstream_failed: dependency {a.id} ended FAILED"
    assert rc.error == f"upstream_failed: dependency {b.id} ended FAILED"
    assert rb.attempts == rc.attempts == 0 and rc.finished_at is not None
    [logged] = statistics.error_log(world, 10, deferral.UPSTREAM_FAILED)
    assert logged["count"] == 2 and logged["message"] == "a dependency ended FAILED"
    assert live_counts(world)["failed"] == 3


def test_cancelling_a_dependency_fails_its_dependents(world):
    a = new(world, capabilities=("nobody-has-this",))
    b = new(world, depends_on=(a.id,))
    control.cancel(world, a.id, "alice")
    assert row(world, b.id).error == f"upstream_failed: dependency {a.id} ended CANCELLED"


def test_run_at_and_depends_on_together_wait_for_both(world):
    a = new(world)
    b = new(world, depends_on=(a.id,), run_at_ms=NOW + 60_000)
    assert b.status is TaskStatus.WAITING
    assert drain(world) == ["completed"]
    assert row(world, b.id).status == "SCHEDULED"
    assert world.redis.zscore(keys.STARTS_DUE, b.id) == NOW + 60_000
    world.clock.advance(60)
    assert deferred.start_due(world) == 1
    assert drain(world) == ["completed"]


def test_a_completed_dependency_is_already_satisfied(world):
    a = new(world)
    drain(world)
    b = new(world, depends_on=(a.id, a.id))
    assert b.status is TaskStatus.PENDING and b.spec.depends_on == (a.id,)


def test_bad_dependencies_are_refused_each_by_name(world):
    failed = new(world, {"fail": 400})
    drain(world)
    bobs = new(world, owner="bob")
    with pytest.raises(InvalidInput) as refused:
        new(world, depends_on=("ghost", bobs.id, failed.id))
    assert refused.value.details == {
        "dependsOn": {"ghost": "no such task", bobs.id: "no such task", failed.id: "already FAILED"}
    }
    assert new(world, owner="root", as_admin=True, depends_on=(bobs.id,)).status is TaskStatus.WAITING
    with pytest.raises(InvalidInput):
        new(world, depends_on=tuple(f"t{i}" for i in range(deferral.MAX_DEPENDENCIES + 1)))


def test_a_dependency_that_ends_between_the_check_and_the_commit_still_settles(world, monkeypatch):
    a, doomed = new(world), new(world, {"fail": 400})
    drain(world)  # both final before the new tasks commit, though the check saw them running
    monkeypatch.setattr(
        deferred,
        "validate_dependencies",
        lambda ctx, reader, ids: dict.fromkeys(ids, TaskStatus.PROCESSING),
    )
    released = new(world, depends_on=(a.id,))
    failed = new(world, depends_on=(doomed.id,))
    assert released.status is failed.status is TaskStatus.WAITING  # as answered
    assert status(world, released.id) is TaskStatus.PENDING
    assert status(world, failed.id) is TaskStatus.FAILED
    assert [job[0] for job in world.queue.take()] == [released.id]


def test_the_sweep_settles_what_a_killed_worker_left(world, monkeypatch):
    a = new(world)
    b = new(world, depends_on=(a.id,))
    c = new(world, depends_on=(b.id,))
    scheduled = new(world, run_at_ms=NOW + 5000)
    with monkeypatch.context() as killed:
        # Killed between writing A's end and settling its dependents; the schedule
        # entry lost too (Redis was down at submission, say).
        killed.setattr(dependencies, "on_final", lambda ctx, state: None)
        assert drain(world) == ["completed"]
    world.redis.zrem(keys.STARTS_DUE, scheduled.id)
    assert row(world, b.id).status == "WAITING"
    assert deferred.sweep(world) == {"rescheduled": 1, "settled": 1}
    assert world.redis.zscore(keys.STARTS_DUE, scheduled.id) == NOW + 5000
    assert drain(world) == ["completed", "completed"]  # b, then c released by b's end
    assert row(world, c.id).status == "COMPLETED"
    assert deferred.sweep(world) == {"rescheduled": 0, "settled": 0}


def test_after_a_redis_loss_scheduled_and_waiting_tasks_come_back_and_nothing_starts_early(world):
    a = new(world)
    b = new(world, depends_on=(a.id,))
    later = new(world, run_at_ms=NOW + 120_000)
    world.queue.take()
    world.redis.flushall()
    report = maintenance.reconcile(world)
    assert report["scheduled"] == 1 and report["tasks"] == 1
    assert world.redis.zscore(keys.STARTS_DUE, later.id) == NOW + 120_000
    # The rebuild and the orphan sweep enqueue PENDING tasks only.
    assert [job[0] for job in world.queue.jobs] == [a.id]
    world.clock.advance(maintenance.ORPHAN_AFTER_S + 1)  # not yet due
    maintenance.reconcile(world)
    assert {job[0] for job in world.queue.jobs} == {a.id}
    assert deferred.start_due(world) == 0
    # a (its second job, from the orphan sweep, is stale), then b
    assert [r for r in drain(world) if r != "stale"] == ["completed", "completed"]
    assert row(world, later.id).status == "SCHEDULED"
    world.clock.advance(120 - maintenance.ORPHAN_AFTER_S - 1)
    assert deferred.start_due(world) == 1
    assert drain(world) == ["completed"]
    assert row(world, b.id).status == "COMPLETED"


def test_cancelling_many_together_fails_the_dependents_of_each(world):
    heads = [new(world, capabilities=("nobody-has-this",)) for _ in range(3)]
    drain(world)  # PENDING in their waiting line: cancelled together
    waiting = [new(world, depends_on=(head.id,)) for head in heads]
    assert control.cancel_many(world, [head.id for head in heads]) == 3
    assert [row(world, w.id).status for w in waiting] == ["FAILED"] * 3


def test_an_end_looks_for_dependents_only_where_some_were_submitted(world, monkeypatch):
    from app.store import dependencies_repo

    looked = []
    real = dependencies_repo.waiting_dependents
    monkeypatch.setattr(
        dependencies_repo, "waiting_dependents", lambda db, ids: looked.extend(ids) or real(db, ids)
    )
    alone, needed = new(world), new(world)
    later = new(world, depends_on=(needed.id,))
    assert drain(world) == ["completed", "completed", "completed"]  # alone, needed, then later
    assert row(world, later.id).status == "COMPLETED"
    on_postgres = world.db.engine.dialect.name == "postgresql"
    # Without Postgres the write cannot read the flag: every end looks.
    assert looked == ([needed.id] if on_postgres else [alone.id, needed.id, later.id])
