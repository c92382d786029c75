"""A scripted workload over several hours and servers; every figure of the three stats
endpoints is checked against the truth in the task tables: before a flush, after one,
after Redis lost everything, and once the lost hours were recounted."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import select

from app.core.clock import datetime_to_ms, iso
from app.core.errors import StoreUnavailable
from app.services import control, maintenance, statistics
from app.store import stats_repo
from app.store.models import TaskAttemptRow, TaskRow
from tests.services.helpers import HOUR, START, drain, make_world, run_batch, submit_task


@pytest.fixture
def world(ctx, backend):
    return make_world(ctx, backend)


def records(ctx) -> tuple[list[TaskRow], list[TaskAttemptRow]]:
    with ctx.db.session() as session:
        return list(session.scalars(select(TaskRow))), list(session.scalars(select(TaskAttemptRow)))


def truth(rows, first_ms: int | None = None, end_ms: int | None = None) -> dict[str, Any]:
    """The figures, computed from the task and attempt tables alone."""
    tasks, attempts = rows

    def inside(ms):
        return ms is not None and (first_ms is None or ms >= first_ms) and (end_ms is None or ms < end_ms)

    by_id = {t.id: t for t in tasks}

    def was_retried(a: TaskAttemptRow) -> bool:
        """A failed attempt the task went back to PENDING after: not its last, or its
        last but the task did not end with it (ending sets finished_at to its end)."""
        task = by_id[a.task_id]
        return a.attempt < task.attempts or task.finished_at != a.finished_at

    done = [t for t in tasks if t.finished_at is not None]
    completed = [t for t in done if t.status == "COMPLETED" and inside(datetime_to_ms(t.finished_at))]
    failed = [t for t in done if t.status in ("FAILED", "TIMEOUT") and inside(datetime_to_ms(t.finished_at))]
    durations = [datetime_to_ms(t.finished_at) - datetime_to_ms(t.started_at) for t in completed]
    counted = [a for a in attempts if a.outcome in ("COMPLETED", "FAILED", "TIMEOUT")]
    retried = [
        a
        for a in counted
        if a.outcome != "COMPLETED" and was_retried(a) and inside(datetime_to_ms(a.finished_at))
    ]
    per_server: dict[str, dict[str, Any]] = defaultdict(lambda: {"ok": 0, "failed": 0, "ms": 0, "last": 0})
    for a in counted:
        if not inside(datetime_to_ms(a.finished_at)):
            continue
        entry = per_server[a.server_id]
        entry["ok" if a.outcome == "COMPLETED" else "failed"] += 1
        entry["ms"] += datetime_to_ms(a.finished_at) - datetime_to_ms(a.started_at)
        entry["last"] = max(entry["last"], datetime_to_ms(a.finished_at))
    return {
        "totalTasks": sum(1 for t in tasks if inside(datetime_to_ms(t.created_at))),
        "successfulTasks": len(completed),
        "failedTasks": len(failed),
        "timedOutTasks": sum(1 for t in failed if t.status == "TIMEOUT"),
        "cancelledTasks": sum(
            1 for t in done if t.status == "CANCELLED" and inside(datetime_to_ms(t.finished_at))
        ),
        "retriedTasks": len(retried),
        "averageProcessingTime": round(sum(durations) / len(durations), 1) if durations else None,
        "pendingTasks": sum(1 for t in tasks if t.status == "PENDING"),
        "processingTasks": sum(1 for t in tasks if t.status == "PROCESSING"),
        "servers": {
            sid: {
                "serverId": sid,
                "tasksProcessed": e["ok"] + e["failed"],
                "successCount": e["ok"],
                "failureCount": e["failed"],
                "successRate": round(e["ok"] / (e["ok"] + e["failed"]), 4),
                "averageResponseTime": round(e["ms"] / (e["ok"] + e["failed"]), 1),
                "lastActiveTime": iso(e["last"]),
            }
            for sid, e in per_server.items()
        },
    }


def hourly_truth(rows, hour: int) -> dict[str, Any]:
    t = truth(rows, hour * HOUR, (hour + 1) * HOUR)
    return {
        "hour": iso(hour * HOUR),
        "tasks": t["totalTasks"],
        "successful": t["successfulTasks"],
        "failed": t["failedTasks"],
        "avgDuration": t["averageProcessingTime"],
    }


def check_everything(ctx, client, admin) -> None:
    rows = records(ctx)
    expected = truth(rows)
    got = client.get("/api/stats", headers=admin).get_json()
    for name, value in expected.items():
        if name != "servers":
            assert got[name] == value, name
    assert got["serverCount"] == 3
    top = sorted(expected["servers"].values(), key=lambda s: (-s["tasksProcessed"], s["serverId"]))[:5]
    assert got["topServers"] == top
    for sid, figures in expected["servers"].items():
        assert client.get(f"/api/stats/servers/{sid}", headers=admin).get_json() == figures
    now_hour = ctx.now_ms() // HOUR
    hours = client.get("/api/stats/hourly", headers=admin).get_json()["hours"]
    assert len(hours) == 24 and hours[-1]["hour"] == iso(now_hour * HOUR)
    assert hours == [hourly_truth(rows, h) for h in range(now_hour - 23, now_hour + 1)]
    assert got["hourlyTrend"] == hours
    # A range: only the first hour of the workload.
    first = START // HOUR
    ranged = client.get(
        f"/api/stats?from={iso(first * HOUR)}&to={iso((first + 1) * HOUR)}", headers=admin
    ).get_json()
    in_hour = truth(rows, first * HOUR, (first + 1) * HOUR)
    for name in ("totalTasks", "successfulTasks", "failedTasks", "retriedTasks", "averageProcessingTime"):
        assert ranged[name] == in_hour[name], name


def test_stats_match_the_task_tables_across_flushes_a_redis_loss_and_recounts(world, auth):
    ctx, clock, client = world
    admin = auth("root", ("admin",))

    run_batch(ctx, clock, 24)  # starts 10 minutes before an hour ends
    check_everything(ctx, client, admin)  # nothing flushed yet: all from Redis

    clock.advance(15 * 60)  # into the next hour, which the loss below will make dirty
    assert statistics.flush(ctx)["applied"] == 1
    check_everything(ctx, client, admin)  # all from the rollups
    assert statistics.flush(ctx)["applied"] == 0  # nothing new: a second flush adds nothing

    run_batch(ctx, clock, 12)  # unflushed counters ...
    ctx.redis.flushall()  # ... lost with everything else
    ctx.redis.script_flush()
    maintenance.reconcile(ctx)  # notices the loss: the hours since the last flush are dirty
    with ctx.db.session() as session:
        assert stats_repo.dirty_hours(session) == [START // HOUR + 1]
    run_batch(ctx, clock, 12)  # counted in the new Redis, in a dirty hour
    check_everything(ctx, client, admin)

    clock.advance(3 * 3600)
    result = statistics.flush(ctx)
    assert result["recounted"] >= 1
    with ctx.db.session() as session:
        assert stats_repo.dirty_hours(session) == []
        for scope in ("a", "t", "s"):  # the all-time totals are the sum of the hours
            hours = stats_repo.totals_by_key(session, scope, None, None, [])
            assert stats_repo.all_time(session, scope) == hours
    check_everything(ctx, client, admin)


def test_a_flush_that_crashed_after_its_commit_is_not_counted_twice(world, auth):
    ctx, clock, client = world
    admin = auth("root", ("admin",))
    run_batch(ctx, clock, 12)
    batch = ctx.stats.cut("crashed-batch", ctx.now_ms())
    with ctx.db.session() as session:  # the commit happened, the process died before the drop
        assert stats_repo.apply_batch(session, batch.id, batch.cut_ms, batch.tally, ctx.now_ms())
    check_everything(ctx, client, admin)  # the batch still in Redis is not read twice
    run_batch(ctx, clock, 6)
    assert statistics.flush(ctx)["applied"] == 0  # finishes the old batch: already applied
    assert statistics.flush(ctx)["applied"] == 1  # then the new counters
    check_everything(ctx, client, admin)


def test_a_manual_retry_counts_as_a_retry_and_the_failure_stays_in_its_hour(world, auth):
    ctx, clock, client = world
    admin = auth("root", ("admin",))
    task_id = submit_task(ctx, {"fail": 400})
    drain(ctx)
    control.retry(ctx, task_id, None)
    drain(ctx)  # fails again (same payload), but both failures and the retry count
    figures = client.get("/api/stats", headers=admin).get_json()
    assert (figures["failedTasks"], figures["retriedTasks"], figures["totalTasks"]) == (2, 1, 1)
    statistics.flush(ctx)
    assert client.get("/api/stats", headers=admin).get_json()["retriedTasks"] == 1


def test_stats_endpoints_need_the_admin_role_and_check_their_input(world, auth):
    _, _, client = world
    assert client.get("/api/stats").status_code == 401
    assert client.get("/api/stats", headers=auth()).status_code == 403
    admin = auth("root", ("admin",))
    assert (
        client.get("/api/stats?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", headers=admin).status_code
        == 422
    )
    assert client.get("/api/stats?from=yesterday", headers=admin).status_code == 422
    assert client.get("/api/stats/servers/nope", headers=admin).status_code == 404
    assert client.get("/api/errors?limit=0", headers=admin).status_code == 422


def test_a_submission_whose_counter_could_not_be_written_is_still_counted(world, auth, monkeypatch):
    ctx, clock, client = world
    admin = auth("root", ("admin",))

    def redis_down(*_args, **_kwargs):
        raise StoreUnavailable("redis unavailable")

    with monkeypatch.context() as patch:  # Redis fails after the row is committed
        patch.setattr(ctx.tasks, "put_if_absent", redis_down)
        submit_task(ctx, {"n": 1})
    with ctx.db.session() as session:
        assert stats_repo.dirty_hours(session) == [ctx.now_ms() // HOUR]
    assert client.get("/api/stats", headers=admin).get_json()["totalTasks"] == 1
