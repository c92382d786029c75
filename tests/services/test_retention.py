"""Retention: finished tasks older than RETENTION_DAYS leave the database in bounded
batches, with their attempts, transitions and edges; what something unfinished still
needs stays; statistics rollups stay. Also: reconcile rebuilds Redis in pages."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from app.core.clock import ManualClock
from app.core.states import TaskStatus
from app.core.tally import BY_TYPE
from app.core.task import TaskSpec
from app.services import control, deferred, jobs, maintenance, retention, state_sync, statistics
from app.store import tasks_repo
from app.store.models import JobRow, TaskAttemptRow, TaskDependencyRow, TaskRow, TaskTransitionRow
from tests.services.helpers import drain, register_backend, submit_task

DAY_S = 86_400


def _count(ctx, model, *where) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def _exists(ctx, task_id: str) -> bool:
    return _count(ctx, TaskRow, TaskRow.id == task_id) == 1


def _later(ctx, days: float) -> None:
    ctx.clock = ManualClock(ctx.now_ms() + int(days * DAY_S * 1000))


def test_finished_tasks_past_the_retention_go_with_their_records_and_the_rest_stays(ctx, backend, caplog):
    _, port = backend
    register_backend(ctx, port, "s1")
    done = [submit_task(ctx, {"n": i}) for i in range(3)]
    failed = submit_task(ctx, {"fail": 400})
    drain(ctx)
    cancelled = submit_task(ctx, capabilities=("tpu",))  # nobody serves it: waits
    control.cancel(ctx, cancelled, None)
    pending = submit_task(ctx, capabilities=("tpu",))  # still unfinished in 31 days
    old = [*done, failed, cancelled]
    assert _count(ctx, TaskAttemptRow, TaskAttemptRow.task_id.in_(old)) == 4
    statistics.flush(ctx)
    totals = statistics.totals(ctx, BY_TYPE)["echo"]
    assert totals["completed"] == 3

    _later(ctx, 29)
    recent = submit_task(ctx, {"n": "recent"})  # finishes 29 days after the others
    drain(ctx)
    assert retention.purge(ctx) == {"tasks": 0, "jobs": 0}  # nothing 30 days old yet

    _later(ctx, 2)  # 31 days after the first ones, 2 after the recent one
    with caplog.at_level(logging.INFO, logger="taskfleet.retention"):
        assert retention.purge(ctx) == {"tasks": 5, "jobs": 0}
    assert "deleted 5 task(s) and 0 job(s) finished more than 30 day(s) ago" in caplog.text
    assert not any(_exists(ctx, task_id) for task_id in old)
    assert _exists(ctx, pending) and _exists(ctx, recent)
    assert _count(ctx, TaskAttemptRow, TaskAttemptRow.task_id.in_(old)) == 0
    assert _count(ctx, TaskTransitionRow, TaskTransitionRow.task_id.in_(old)) == 0
    assert _count(ctx, TaskTransitionRow, TaskTransitionRow.task_id == recent) > 0
    statistics.flush(ctx)
    ctx.clock.advance(1)  # reads after the flush
    after = statistics.totals(ctx, BY_TYPE)["echo"]  # the rollups still count the deleted
    assert after["completed"] == totals["completed"] + 1 and after["created"] == totals["created"] + 1
    assert (after["failed"], after["cancelled"]) == (totals["failed"], totals["cancelled"]) == (1, 1)
    assert retention.purge(ctx) == {"tasks": 0, "jobs": 0}


def test_a_dependency_stays_while_an_unfinished_task_waits_for_it(ctx, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    dependency = submit_task(ctx, {"n": 1})
    drain(ctx)
    blocker = submit_task(ctx, run_at_ms=ctx.now_ms() + 90 * DAY_S * 1000)  # SCHEDULED
    waiter = submit_task(ctx, depends_on=(dependency, blocker))
    assert state_sync.load(ctx, waiter).status is TaskStatus.WAITING

    _later(ctx, 31)
    assert retention.purge(ctx)["tasks"] == 0
    assert _exists(ctx, dependency)
    control.cancel(ctx, blocker, None)  # the waiter fails with it: nothing waits now
    deferred.sweep(ctx)
    assert state_sync.load(ctx, waiter).status.value in ("FAILED", "CANCELLED")
    _later(ctx, 31)
    assert retention.purge(ctx)["tasks"] == 3
    assert _count(ctx, TaskDependencyRow, TaskDependencyRow.task_id == waiter) == 0


def test_a_job_goes_whole_once_every_task_of_it_is_past_the_retention(ctx, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    specs = [TaskSpec(type="echo", payload={"n": i}, capabilities=("echo",)) for i in range(3)]
    finished_job, _ = jobs.submit(ctx, "alice", "done", specs)
    mixed_job, _ = jobs.submit(ctx, "alice", "mixed", [*specs[:2], replace(specs[2], capabilities=("tpu",))])
    ctx.queue.take()
    maintenance.wake_for_free_slots(ctx)  # what the wake-up job sent by the submit does
    assert drain(ctx) == ["completed"] * 5
    _later(ctx, 31)
    assert retention.purge(ctx) == {"tasks": 3, "jobs": 1}
    assert _count(ctx, JobRow, JobRow.id == finished_job.id) == 0
    assert _count(ctx, JobRow, JobRow.id == mixed_job.id) == 1
    assert _count(ctx, TaskRow, TaskRow.job_id == mixed_job.id) == 3  # one task still waits


def test_purge_works_in_bounded_batches_and_zero_keeps_everything(ctx, backend, monkeypatch):
    _, port = backend
    register_backend(ctx, port, "s1", max_concurrent=16)
    for i in range(7):
        submit_task(ctx, {"n": i})
    drain(ctx)
    _later(ctx, 31)
    keep = replace(ctx, settings=replace(ctx.settings, retention_days=0))
    assert retention.purge(keep) == {"tasks": 0, "jobs": 0}
    assert _count(ctx, TaskRow) == 7

    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "BATCHES_PER_RUN", 2)
    assert [retention.purge(ctx)["tasks"] for _ in range(3)] == [4, 3, 0]
    assert _count(ctx, TaskRow) == 0


def test_reconcile_rebuilds_redis_a_page_at_a_time(ctx, monkeypatch):
    pages: list[int] = []
    real = tasks_repo.in_status

    def in_status(session, statuses, after_id, limit):
        rows = real(session, statuses, after_id, limit)
        pages.append(len(rows))
        assert len(rows) <= limit
        return rows

    monkeypatch.setattr(tasks_repo, "in_status", in_status)
    monkeypatch.setattr(maintenance, "BATCH", 3)
    monkeypatch.setattr(deferred, "SWEEP_BATCH", 2)
    pending = sorted(submit_task(ctx, capabilities=("tpu",)) for _ in range(8))
    for _ in range(5):
        submit_task(ctx, run_at_ms=ctx.now_ms() + 3_600_000)
    ctx.queue.take()
    ctx.redis.flushall()
    pages.clear()

    report = maintenance.reconcile(ctx)
    assert (report["tasks"], report["scheduled"]) == (8, 5)
    # No running attempt (their slots come back first), 8 PENDING rows by 3, then 5
    # SCHEDULED by 2: each query bounded.
    assert pages == [0, 3, 3, 2, 0, 2, 2, 1, 0]
    assert sorted(task_id for task_id, _, _ in ctx.queue.take()) == pending
    assert all(ctx.tasks.get(task_id) is not None for task_id in pending)


@pytest.mark.parametrize("days", ["-1", "many"])
def test_retention_days_must_be_a_whole_number_of_days(days):
    from app.config import Settings

    with pytest.raises(ValueError, match="RETENTION_DAYS"):
        Settings.from_env({"RETENTION_DAYS": days})
    assert Settings.from_env({}).retention_days == 30
