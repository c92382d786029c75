"""One counting rule, two implementations: the live counters the Lua scripts keep
(``task_hydrate.lua`` counts ``created``, ``task_transition.lua`` everything else) and
``stats_repo.recount``, which counts an hour again from the task, attempt and transition
tables after Redis lost its counters. The same scripted workload runs once; nothing is
flushed; then every hour it touched must have, counter by counter, the same figures on
both sides. A rule changed in one place and not in the other fails here, naming the
counter."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.clock import datetime_to_ms
from app.core.states import TaskMode, TaskStatus
from app.core.tally import BY_SERVER, BY_TYPE, METRICS, Tally
from app.core.task import TaskSpec
from app.services import control, deferred, outcomes, submit
from app.store import stats_repo
from app.store.models import TaskAttemptRow, TaskRow, TaskTransitionRow
from tests.services.helpers import HOUR, START, drain, make_world, run_batch, submit_task

OTHER_TYPE = "img|resize"
Counter = tuple[int, str, str, str]  # (hour, scope, key, metric)


@pytest.fixture
def world(ctx, backend):
    return make_world(ctx, backend)


def counters(tally: Tally) -> dict[Counter, int]:
    """A tally as one flat dict. Zeros are left out: a counter that was never written and
    one written with 0 (``HINCRBY ... 0`` for a 0 ms attempt, or ``Tally.add`` of 0 in the
    recount) say the same thing."""
    return {
        (hour, scope, key, metric): value
        for (hour, scope, key), by_metric in tally.buckets.items()
        for metric, value in by_metric.items()
        if value
    }


def differences(live: dict[Counter, int], recounted: dict[Counter, int]) -> list[str]:
    """One line per counter the two sides disagree on, naming it and both values."""
    lines = []
    for counter in sorted(live.keys() | recounted.keys()):
        lua, sql = live.get(counter, 0), recounted.get(counter, 0)
        if lua != sql:
            hour, scope, key, metric = counter
            lines.append(
                f"hour {hour} scope {scope!r} key {key!r} {metric}: live (Lua) = {lua}, recount (SQL) = {sql}"
            )
    return lines


def hours_in_records(ctx) -> set[int]:
    """Every hour the database has an event in: a creation, a transition, an attempt end."""
    with ctx.db.session() as session:
        times = [
            *session.scalars(select(TaskRow.created_at)),
            *session.scalars(select(TaskTransitionRow.at)),
            *session.scalars(
                select(TaskAttemptRow.finished_at).where(TaskAttemptRow.finished_at.is_not(None))
            ),
        ]
    return {datetime_to_ms(at) // HOUR for at in times}


def first_task_in(ctx, status: TaskStatus, task_type: str | None = None) -> str:
    query = select(TaskRow.id).where(TaskRow.status == status.value).order_by(TaskRow.created_at)
    if task_type is not None:
        query = query.where(TaskRow.type == task_type)
    with ctx.db.session() as session:
        task_id = session.scalars(query).first()
    assert task_id is not None, (status, task_type)
    return task_id


def other_type(ctx, payload, **spec) -> str:
    """A task of a second type, whose name holds the field separator '|' (the API allows
    it; ``parse_field`` must read it back as the key)."""
    spec.setdefault("capabilities", ("echo",))
    state, _ = submit.submit(ctx, "alice", TaskSpec(type=OTHER_TYPE, payload=payload, **spec))
    return state.id


def run_workload(ctx, clock) -> None:
    """Hour H from :50, then events created in H that end in H+1, then more of H+1.
    Servers s1..s3 take the attempts; run_batch gives successes, retried and final
    failures, garbage answers, callback timeouts (retried, then final), tasks timing out
    while waiting, and cancels; added here: callbacks, a busy backend, a running attempt
    cancelled, manual retries of a FAILED and a TIMEOUT task, and a second task type."""
    callbacks_busy_and_running_cancels(ctx)  # hour H, 10 minutes before its end
    run_batch(ctx, clock, 24)
    other_type(ctx, {"n": 1})
    other_type(ctx, {"fail": 500}, max_retries=1)  # retried once, then FAILED
    drain(ctx)
    control.retry(ctx, first_task_in(ctx, TaskStatus.FAILED), None)  # manual retry in H
    drain(ctx)
    scheduled_and_dependent(ctx)  # created in H; the scheduled one starts in H+1
    # 90 s before the hour ends: submitted in H; the callback attempts and the waiting
    # tasks time out 61 s and more later, in H+1 (and are retried there).
    clock.advance(((START // HOUR + 1) * HOUR - 90_000 - clock.now_ms()) / 1000)
    run_batch(ctx, clock, 12)
    assert clock.now_ms() // HOUR == START // HOUR + 1
    assert deferred.start_due(ctx) == 1
    control.retry(ctx, first_task_in(ctx, TaskStatus.TIMEOUT), None)  # manual retry in H+1
    control.retry(ctx, first_task_in(ctx, TaskStatus.FAILED), None)  # its failure was in H
    drain(ctx)
    other_type(ctx, {"n": 2})
    other_type(ctx, {"garbage": True}, max_retries=1)
    other_type(ctx, {"n": 3}, capabilities=("nobody-has-this",), timeout_s=60)  # cancelled below
    drain(ctx)
    control.cancel(ctx, first_task_in(ctx, TaskStatus.PENDING, OTHER_TYPE), None)
    run_batch(ctx, clock, 12)  # all of it in H+1


def scheduled_and_dependent(ctx) -> None:
    """Tasks created SCHEDULED or WAITING (no hot state: ``task_defer.lua`` counts them
    created): one started later, one cancelled while SCHEDULED, one released by its
    dependency, one failed by its dependency (upstream_failed)."""
    due = ctx.now_ms() + 60_000
    other_type(ctx, {"n": 10}, run_at_ms=due)
    control.cancel(ctx, other_type(ctx, {"n": 11}, run_at_ms=due), None)
    other_type(ctx, {"n": 12}, depends_on=(other_type(ctx, {"n": 13}),))
    other_type(ctx, {"n": 14}, depends_on=(other_type(ctx, {"fail": 400}),))
    drain(ctx)


def callbacks_busy_and_running_cancels(ctx) -> None:
    """What run_batch has not: callbacks that report progress, success and failure (the
    demo backend's own callbacks go nowhere here, so they are sent by hand), an attempt
    cancelled while it runs, and a backend answering busy (an attempt that is neither a
    success nor a failure: not retried, not counted for the server)."""
    done, failing, running = (
        other_type(ctx, {"n": i}, mode=TaskMode.CALLBACK, timeout_s=60, max_retries=1) for i in range(3)
    )
    drain(ctx)
    assert {ctx.tasks.get(t).status for t in (done, failing, running)} == {TaskStatus.PROCESSING}
    outcomes.callback(ctx, done, 1, {"status": "PROCESSING", "progress": 50})
    outcomes.callback(ctx, done, 1, {"status": "COMPLETED", "result": {"ok": True}})
    outcomes.callback(ctx, failing, 1, {"status": "FAILED", "error": "reported"})  # retried
    control.cancel(ctx, running, None)
    busy = submit_task(ctx, {"fail": 429}, timeout_s=60)
    drain(ctx)  # busy is turned away (failing's second attempt runs in run_batch, and times out)
    with ctx.db.session() as session:
        assert "BUSY" in session.scalars(select(TaskAttemptRow.outcome).where(TaskAttemptRow.task_id == busy))
    control.cancel(ctx, busy, None)  # or it would be turned away again and again


def test_the_lua_counters_and_the_sql_recount_agree_on_every_counter_of_every_hour(world):
    ctx, clock, _ = world
    run_workload(ctx, clock)

    live, batch = ctx.stats.snapshot()
    assert batch is None  # nothing was flushed: every counter is still in the live hash
    hours = {hour for hour, _, _ in live.buckets} | hours_in_records(ctx)
    assert hours == {START // HOUR, START // HOUR + 1}

    from_lua: dict[Counter, int] = {}
    from_sql: dict[Counter, int] = {}
    with ctx.db.session() as session:
        for hour in sorted(hours):
            from_lua |= counters(live.within(hour, hour + 1))
            from_sql |= counters(stats_repo.recount(session, hour))

    # Every metric is compared, ``last_active_ms`` included: it is a maximum, not a sum,
    # but per hour both sides take the same maximum (the latest attempt end that falls
    # in the hour: the Lua keeps the larger of the stored value and now_ms, the recount
    # the largest finished_at), so it must match exactly too.
    diffs = differences(from_lua, from_sql)
    print("\n".join(diffs))  # in the captured output too, one counter a line
    assert not diffs, f"{len(diffs)} counter(s) differ:\n" + "\n".join(diffs)

    # The workload is not vacuous: every metric, both hours and several servers were
    # counted (a rule that counts nothing on both sides would otherwise pass).
    assert {metric for *_, metric in from_lua} == set(METRICS)
    assert {hour for hour, *_ in from_lua} == hours
    assert {key for _, scope, key, _ in from_lua if scope == BY_TYPE} == {"echo", OTHER_TYPE}
    for hour in hours:
        servers = {key for h, scope, key, _ in from_lua if h == hour and scope == BY_SERVER}
        assert len(servers) >= 2, (hour, servers)
