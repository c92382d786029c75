"""Fair sharing of freed slots between clients, the cap on waiting profiles, profiles
forgotten when they empty, and recovery after Redis loss (fakeredis+SQLite and real
Redis+Postgres)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.core.errors import ProfileCapReached
from app.core.states import TaskStatus
from app.core.task import TaskSpec, TaskState
from app.services import control, jobs, maintenance, submit, waiting
from app.store import keys
from app.store.fleet import FleetStore, ServerProfile
from app.store.waiting_lines import EVERYONE, profile_id
from tests.services.helpers import drain, register_backend


def _block_the_slot(ctx) -> None:
    """The one slot of s1 is taken: everything submitted now waits."""
    assert ctx.fleet.reserve("blocker", 1, ("echo",), now_ms=ctx.now_ms()) == "s1"


def _job(ctx, owner: str, count: int, priority: int) -> list[str]:
    spec = TaskSpec(type="echo", capabilities=("echo",), priority=priority)
    job, _ = jobs.submit(ctx, owner, None, [spec] * count)
    ctx.queue.take()
    return job.task_ids or []


def _releases(ctx, count: int) -> list[str]:
    """The task each of ``count`` slot releases on s1 starts, in order."""
    order = []
    for _ in range(count):
        assert waiting.wake(ctx, 1, "s1") == 1
        (task_id, _, _), *rest = ctx.queue.take()
        assert not rest
        order.append(task_id)
    return order


def test_a_small_client_is_served_between_a_flood_at_higher_priority(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    _block_the_slot(ctx)
    flood = _job(ctx, "alice", 1000, priority=10)
    few = _job(ctx, "bob", 10, priority=1)
    order = _releases(ctx, 1010)
    bob_at = [i for i, task_id in enumerate(order) if task_id in set(few)]
    assert bob_at == list(range(1, 20, 2))  # every other release until bob is done
    assert [t for t in order if t not in set(few)] == flood  # alice's own order kept


def test_without_fair_sharing_priority_is_one_global_order(ctx, backend):
    ctx.settings = replace(ctx.settings, fair_share=False)
    register_backend(ctx, backend[1], max_concurrent=1)
    _block_the_slot(ctx)
    flood = _job(ctx, "alice", 200, priority=10)
    few = _job(ctx, "bob", 10, priority=1)
    assert _releases(ctx, 210) == flood + few
    assert ctx.redis.zrange(keys.waiting_clients(profile_id(("echo",), None)), 0, -1) == []
    assert not ctx.redis.hexists(keys.FAIR_PASSES, "alice")


def test_weights_two_to_one_give_about_two_to_one_service(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    _block_the_slot(ctx)
    ctx.redis.hset(keys.CLIENT_WEIGHTS, "alice", 2)
    alice = set(_job(ctx, "alice", 100, priority=5))
    _job(ctx, "bob", 100, priority=5)
    order = _releases(ctx, 90)
    assert sum(t in alice for t in order) == 60


def test_a_made_up_profile_waits_in_no_pool_and_leaves_when_cancelled(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    state, _ = submit.submit(ctx, "alice", TaskSpec(type="echo", capabilities=("no-such",)))
    drain(ctx)
    pid = profile_id(("no-such",), None)
    assert ctx.waiting.profile_count() == 1 and ctx.waiting.total() == 1
    pool = ctx.fleet.pool_of_server("s1")
    assert not ctx.redis.sismember(keys.pool_waiting(pool), pid)
    control.cancel(ctx, state.id, "alice")
    assert ctx.waiting.profile_count() == 0 and ctx.waiting.total() == 0
    assert not ctx.redis.exists(keys.waiting_line(pid))


def test_a_task_that_timed_out_waiting_leaves_its_line(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    submit.submit(ctx, "alice", TaskSpec(type="echo", capabilities=("no-such",), timeout_s=1))
    drain(ctx)
    assert ctx.waiting.total() == 1
    for task_id in ctx.redis.zrange(keys.DEADLINES, 0, -1):
        ctx.redis.zadd(keys.DEADLINES, {task_id: 0})
    assert maintenance.expire_deadlines(ctx) == 1
    assert ctx.waiting.total() == 0 and ctx.waiting.profile_count() == 0


def test_a_new_server_finds_the_profiles_that_waited_for_it(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    state, _ = submit.submit(ctx, "alice", TaskSpec(type="echo", capabilities=("tpu",)))
    drain(ctx)
    assert ctx.waiting.total() == 1
    register_backend(ctx, backend[1], server_id="s2", max_concurrent=1, capabilities=("tpu", "echo"))
    assert waiting.wake(ctx, 1, "s2") == 1
    assert [t for t, _, _ in ctx.queue.take()] == [state.id]


def test_past_the_cap_a_new_unserved_profile_is_refused_and_nothing_stored(ctx, backend):
    ctx.settings = replace(ctx.settings, max_waiting_profiles=2)
    register_backend(ctx, backend[1], max_concurrent=1)
    for cap in ("x1", "x2"):
        submit.submit(ctx, "mallory", TaskSpec(type="echo", capabilities=(cap,)))
    with pytest.raises(ProfileCapReached) as refused:
        submit.submit(ctx, "mallory", TaskSpec(type="echo", capabilities=("x3",)))
    assert refused.value.status == 429 and refused.value.retry_after_s > 0
    # A profile that waits already, and one a server serves, are still admitted.
    submit.submit(ctx, "mallory", TaskSpec(type="echo", capabilities=("x1",)))
    submit.submit(ctx, "bob", TaskSpec(type="echo", capabilities=("echo",)))
    with pytest.raises(ProfileCapReached):
        jobs.submit(
            ctx,
            "mallory",
            None,
            [TaskSpec(type="echo", capabilities=("echo",)), TaskSpec(type="echo", capabilities=("x4",))],
        )
    pages, _ = control.list_tasks(ctx, None, None, None, 100, None)
    assert len(pages) == 4  # the refused task and the refused job's items were not stored
    assert ctx.waiting.profile_count() == 2


def test_after_redis_loses_everything_pending_tasks_wait_in_their_clients_lines(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    _block_the_slot(ctx)
    for owner in ("alice", "bob"):
        submit.submit(ctx, owner, TaskSpec(type="echo", capabilities=("echo",)))
    drain(ctx)
    pid = profile_id(("echo",), None)
    assert sorted(ctx.redis.zrange(keys.waiting_clients(pid), 0, -1)) == ["alice", "bob"]
    ctx.redis.flushall()
    maintenance.reconcile(ctx)
    _block_the_slot(ctx)
    drain(ctx)
    assert sorted(ctx.redis.zrange(keys.waiting_clients(pid), 0, -1)) == ["alice", "bob"]
    assert ctx.waiting.total() == 2
    pending = [s for s in control.list_tasks(ctx, None, None, None, 10, None)[0]]
    assert all(s.status is TaskStatus.PENDING for s in pending)
    assert all(waiting.which_parked(ctx, pending))


def test_without_fair_sharing_everyone_waits_as_one_client(ctx, backend):
    ctx.settings = replace(ctx.settings, fair_share=False)
    register_backend(ctx, backend[1], max_concurrent=1)
    _block_the_slot(ctx)
    submit.submit(ctx, "alice", TaskSpec(type="echo", capabilities=("echo",)))
    drain(ctx)
    assert ctx.redis.zrange(keys.waiting_clients(profile_id(("echo",), None)), 0, -1) == [EVERYONE]


def test_cancelling_a_job_empties_its_lines_and_forgets_its_profiles(ctx, backend):
    register_backend(ctx, backend[1], max_concurrent=1)
    specs = [TaskSpec(type="echo", capabilities=(f"made-up-{i % 5}",), priority=10) for i in range(20)]
    job, _ = jobs.submit(ctx, "mallory", None, specs)
    assert ctx.waiting.total() == 20 and ctx.waiting.profile_count() == 5
    assert control.cancel_many(ctx, job.task_ids or []) == 20
    assert ctx.waiting.total() == 0 and ctx.waiting.profile_count() == 0


def test_a_profile_new_to_a_process_with_stale_pool_caches_is_still_found_by_a_new_pool(ctx):
    spec = TaskSpec(type="echo", capabilities=("tpu",))
    assert ctx.fleet.candidate_pools(spec.capabilities, None, None) == ([], 0)  # cached: no pool
    FleetStore(ctx.redis).put_server(ServerProfile("s9", "online", 1, ("tpu",)), ctx.now_ms())  # elsewhere
    assert ctx.fleet.candidate_pools(spec.capabilities, None, None) == ([], 0)  # still cached
    state = TaskState(
        id="t-tpu", owner="alice", spec=spec, status=TaskStatus.PENDING, version=1, created_ms=1, updated_ms=1
    )
    ctx.tasks.put_if_absent(state, new=True)
    waiting.park(ctx, state)
    pool = ServerProfile("s9", "online", 1, ("tpu",)).pool_id
    assert ctx.waiting.take(pool, 1) == ["t-tpu"]
