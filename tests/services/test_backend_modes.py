"""Backends as they really are: long calls, poll mode, cancel on the backend, batches;
through the real demo backend on fakeredis+SQLite and real Redis+Postgres, with a clock
the tests move."""

from __future__ import annotations

import dataclasses
import time

import pytest

from app import jobs
from app.core.clock import ManualClock
from app.core.errors import BackendError
from app.core.polling import next_poll_ms, status_url
from app.core.servers import BatchConfig
from app.core.states import TaskMode, TaskStatus
from app.services import attempt_calls, batching, control, liveness, maintenance, polling, state_sync
from app.services.context import build_context
from app.store import tasks_repo
from tests.services.helpers import drain, register_backend, start_attempt, submit_task


@pytest.fixture
def world(ctx, backend):
    """A context on a clock the test moves, and the demo backend registered as s1 with
    status and cancel endpoints."""
    demo, port = backend
    demo.delay_s = 0.01
    clock = ManualClock(ctx.now_ms())
    context = build_context(ctx.settings, ctx.queue, clock=clock, redis_client=ctx.redis, db=ctx.db)
    return context, clock, demo, port


def base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def endpoints(port: int, status: bool = True, cancel: bool = True) -> dict[str, str]:
    out = {}
    if status:
        out["status"] = f"{base(port)}/status"
    if cancel:
        out["cancel"] = f"{base(port)}/cancel"
    return out


def task(ctx, task_id):
    return state_sync.load(ctx, task_id)


def run_polls(ctx, rounds: int = 1) -> list[str]:
    """Claim the due polls and run their jobs, as beat and a worker would."""
    results = []
    for _ in range(rounds):
        polling.claim_due(ctx)
        for name, args, _ in ctx.queue.later[:]:
            if name == jobs.POLL:
                ctx.queue.later.remove((name, args, _))
                results.append(polling.poll(ctx, *args))
    return results


# -- long calls -----------------------------------------------------------------------


def test_a_call_may_take_the_attempts_whole_timeout_or_the_servers_cap(world):
    ctx, clock, _, port = world
    register_backend(ctx, port, "free")
    register_backend(ctx, port, "capped", timeout_s=7)
    state = task(ctx, submit_task(ctx, timeout_s=600))
    endpoint = ctx.endpoints.get("free")
    started = dataclasses.replace(state, started_ms=clock.now_ms())
    assert attempt_calls.call_timeout_s(ctx, started, endpoint) == pytest.approx(600)
    clock.advance(100)
    assert attempt_calls.call_timeout_s(ctx, started, endpoint) == pytest.approx(500)
    assert attempt_calls.call_timeout_s(ctx, started, ctx.endpoints.get("capped")) == 7


def test_a_slow_answer_is_awaited_as_long_as_the_task_allows(ctx, backend):
    """No global predict timeout: a backend answering after 1.5 s is awaited by a task
    with a 60 s timeout, and one that would take longer than its task allows times out
    with the task's own time."""
    _, port = backend
    register_backend(ctx, port)
    slow = submit_task(ctx, {"sleep": 1.5}, timeout_s=60)
    too_slow = submit_task(ctx, {"sleep": 3}, timeout_s=1, max_retries=0)
    assert sorted(drain(ctx)) == ["completed", "failed"]
    assert task(ctx, slow).status is TaskStatus.COMPLETED
    assert "timed out after 1s" in task(ctx, too_slow).error


# -- poll mode ------------------------------------------------------------------------


def test_a_poll_task_is_polled_by_job_id_until_it_completes(world):
    ctx, clock, demo, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    task_id = submit_task(ctx, {"sleep": 0.05}, mode=TaskMode.POLL, poll_interval_s=2)
    assert drain(ctx) == ["polling"]
    assert ctx.queue.later == []  # nothing is held between polls but two Redis entries
    assert run_polls(ctx) == []  # not due yet
    clock.advance(2)
    time.sleep(0.1)  # the demo job's own work
    assert run_polls(ctx) == ["completed"]
    done = task(ctx, task_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.result == {"echo": {"sleep": 0.05}, "server": "test-backend"}
    assert ctx.fleet.in_flight("s1") == 0 and ctx.polls.get(task_id) is None
    with ctx.db.session() as session:
        assert tasks_repo.poll_url_of(session, task_id, 1) == f"{base(port)}/status/job-{task_id}"
    assert demo.stats()["predicted"] == {task_id: 1}


def test_progress_moves_while_polling_and_the_answers_status_url_is_followed(world):
    ctx, clock, demo, port = world
    register_backend(ctx, port, endpoints=endpoints(port, status=False))
    demo.delay_s = 30  # the job takes 30 s of real time: every poll says PROCESSING
    task_id = submit_task(ctx, {"poll_via": "statusUrl", "sleep": 30}, mode=TaskMode.POLL, poll_interval_s=1)
    assert drain(ctx) == ["polling"]
    for _ in range(3):
        clock.advance(1)
        assert run_polls(ctx) == ["polled"]
    state = task(ctx, task_id)
    assert state.status is TaskStatus.PROCESSING and state.progress >= 0
    assert ctx.polls.get(task_id).polls == 3
    assert ctx.fleet.in_flight("s1") == 1  # the slot stays reserved while polling


def test_a_status_url_elsewhere_fails_the_attempt_as_bad_status_url(world):
    ctx, _, _, port = world
    registered = (f"{base(port)}/predict", f"{base(port)}/health")
    assert status_url({"statusUrl": f"{base(port)}/s/1"}, None, registered, "t") == f"{base(port)}/s/1"
    for bad in ("http://10.9.9.9/s/1", f"https://127.0.0.1:{port}/s", "/relative", 12):
        with pytest.raises(BackendError) as caught:
            status_url({"statusUrl": bad}, None, registered, "t")
        assert caught.value.kind == "bad_status_url"
    assert status_url({"jobId": "j 1"}, "http://h/status/", registered, "t") == "http://h/status/j%201"
    assert status_url({}, "http://h/status", registered, "t-9") == "http://h/status/t-9"


def test_no_status_endpoint_and_no_status_url_fails_without_retry(world):
    ctx, _, _, port = world
    register_backend(ctx, port)  # no status endpoint; the demo answers with a jobId
    task_id = submit_task(ctx, mode=TaskMode.POLL, max_retries=3)
    assert drain(ctx) == ["failed"]
    state = task(ctx, task_id)
    assert state.status is TaskStatus.FAILED and "poll mode needs" in state.error
    assert state.attempt == 1 and ctx.fleet.in_flight("s1") == 0


def test_three_poll_errors_in_a_row_fail_the_attempt_and_it_is_retried(world):
    ctx, clock, _, port = world
    register_backend(ctx, port, endpoints={"status": f"{base(port)}/nowhere"})  # 404s
    task_id = submit_task(ctx, mode=TaskMode.POLL, poll_interval_s=1, max_retries=1)
    assert drain(ctx) == ["polling"]
    results = []
    for _ in range(3):
        clock.advance(1)
        results += run_polls(ctx)
    assert results == ["polled", "polled", "failed"]
    state = task(ctx, task_id)
    assert state.status is TaskStatus.PENDING and "3 polls in a row failed" in state.error


def test_polls_used_up_end_the_attempt_like_a_timeout(world):
    ctx, clock, demo, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    demo.delay_s = 60
    task_id = submit_task(
        ctx, {"sleep": 60}, mode=TaskMode.POLL, poll_interval_s=1, poll_max_attempts=3, max_retries=0
    )
    assert drain(ctx) == ["polling"]
    results = []
    for _ in range(3):  # the third poll is the last one allowed
        clock.advance(1)
        results += run_polls(ctx)
    assert results == ["polled", "polled", "timeout"]
    state = task(ctx, task_id)
    assert state.status is TaskStatus.TIMEOUT and "no final status after 3 polls" in state.error
    assert ctx.fleet.in_flight("s1") == 0


def test_polls_are_never_due_past_the_attempts_deadline():
    assert next_poll_ms(1_000, 5, 100_000) == 6_000
    assert next_poll_ms(98_000, 5, 100_000) == 100_000


def test_a_lost_poll_job_comes_due_again_and_a_redis_loss_resumes_from_the_row(world):
    ctx, clock, _, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    task_id = submit_task(ctx, mode=TaskMode.POLL, poll_interval_s=1)
    drain(ctx)
    clock.advance(1)
    assert polling.claim_due(ctx) == 1  # claimed; its job is lost (the worker died)
    ctx.queue.later.clear()
    assert polling.claim_due(ctx) == 0  # claimed for a while
    clock.advance(polling.CLAIM_LEASE_S)
    assert polling.claim_due(ctx) == 1  # due again
    ctx.queue.later.clear()
    ctx.redis.flushall()  # Redis loses everything, the poll included
    maintenance.reconcile(ctx)
    assert ctx.polls.get(task_id).url.endswith(f"/status/job-{task_id}")
    time.sleep(0.05)
    assert run_polls(ctx) == ["completed"]
    assert task(ctx, task_id).status is TaskStatus.COMPLETED


def test_an_attempt_held_by_its_poll_is_not_taken_for_lost(world):
    ctx, clock, demo, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    demo.delay_s = 120
    submit_task(ctx, {"sleep": 120}, mode=TaskMode.POLL, poll_interval_s=60)
    drain(ctx)
    clock.advance(liveness.LOST_AFTER_S + 1)
    assert liveness.recover_lost_attempts(ctx) == 0


def test_a_poll_attempt_whose_worker_died_before_its_poll_began_is_recovered(world):
    """Killed between the reservation (or the predict call) and the poll record: no
    heartbeat, no poll, so it is retried like a lost sync attempt, not left to its
    deadline."""
    ctx, clock, _, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    task_id = submit_task(ctx, mode=TaskMode.POLL)
    start_attempt(ctx, task_id)
    assert ctx.polls.get(task_id) is None
    clock.advance(liveness.LOST_AFTER_S + 1)
    assert liveness.recover_lost_attempts(ctx) == 1
    state = task(ctx, task_id)
    assert state.status is TaskStatus.PENDING and "worker running it was lost" in state.error


# -- cancel ---------------------------------------------------------------------------


def test_cancelling_a_running_task_tells_its_server_and_frees_the_slot(world):
    ctx, _, demo, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    demo.delay_s = 30
    task_id = submit_task(ctx, {"sleep": 30}, mode=TaskMode.POLL)
    drain(ctx)
    control.cancel(ctx, task_id, None)
    assert ctx.queue.later == [(jobs.CANCEL_ON_BACKEND, [task_id, 1, "s1"], 0)]
    assert ctx.fleet.in_flight("s1") == 1  # until the server says it stopped
    assert control.cancel_on_backend(ctx, task_id, 1, "s1") is True
    assert demo.stats()["cancelled"] == [task_id]
    assert ctx.fleet.in_flight("s1") == 0


def test_without_a_cancel_endpoint_the_slot_waits_for_the_backend_as_before(world):
    ctx, _, demo, port = world
    register_backend(ctx, port, endpoints=endpoints(port, cancel=False))
    demo.delay_s = 30
    task_id = submit_task(ctx, {"sleep": 30}, mode=TaskMode.POLL)
    drain(ctx)
    control.cancel(ctx, task_id, None)
    assert ctx.queue.later == []
    assert ctx.fleet.in_flight("s1") == 1


def test_a_server_that_never_confirms_the_cancel_keeps_the_slot_for_reclaim(world, monkeypatch):
    ctx, _, demo, port = world
    register_backend(
        ctx, port, endpoints={"cancel": f"{base(port)}/nowhere", **endpoints(port, cancel=False)}
    )
    monkeypatch.setattr(control, "CANCEL_BACKOFF_S", 0.01)
    demo.delay_s = 30
    task_id = submit_task(ctx, {"sleep": 30}, mode=TaskMode.POLL)
    drain(ctx)
    control.cancel(ctx, task_id, None)
    assert control.cancel_on_backend(ctx, task_id, 1, "s1") is False
    assert ctx.fleet.in_flight("s1") == 1


# -- batches --------------------------------------------------------------------------


def batch_server(ctx, port, max_size=3, max_wait_ms=30_000, max_concurrent=10, **config):
    register_backend(
        ctx, port, max_concurrent=max_concurrent, batch=BatchConfig(max_size, max_wait_ms), **config
    )


def test_a_full_batch_goes_out_in_one_call_and_each_task_gets_its_own_result(world):
    ctx, _, demo, port = world
    batch_server(ctx, port)
    ids = [submit_task(ctx, {"n": i}) for i in range(3)]
    assert drain(ctx) == ["gathering", "gathering", "batched"]
    assert demo.stats()["batches"] == [3]
    for i, task_id in enumerate(ids):
        state = task(ctx, task_id)
        assert state.status is TaskStatus.COMPLETED
        assert state.result == {"echo": {"n": i}, "server": "test-backend"}
    assert ctx.fleet.in_flight("s1") == 0


def test_a_batch_that_waited_long_enough_goes_out_smaller(world):
    ctx, clock, demo, port = world
    batch_server(ctx, port)
    ids = [submit_task(ctx, {"n": i}) for i in range(2)]
    assert drain(ctx) == ["gathering", "gathering"]
    assert batching.claim_due(ctx) == 0
    clock.advance(liveness.LOST_AFTER_S + 1)
    assert liveness.recover_lost_attempts(ctx) == 0  # gathering is not lost
    clock.advance(30 - liveness.LOST_AFTER_S)
    assert batching.claim_due(ctx) == 1
    ((name, args, _),) = ctx.queue.later
    assert name == jobs.SEND_BATCH
    assert batching.send_due(ctx, *args) == 2
    assert demo.stats()["batches"] == [2]
    assert all(task(ctx, t).status is TaskStatus.COMPLETED for t in ids)


def test_a_batch_is_never_larger_than_the_servers_free_slots(world):
    ctx, clock, demo, port = world
    batch_server(ctx, port, max_size=5, max_concurrent=2)
    ids = [submit_task(ctx, {"n": i}) for i in range(3)]
    assert drain(ctx) == ["gathering", "gathering", "waiting"]
    clock.advance(30)
    batching.claim_due(ctx)
    ((_, args, _),) = ctx.queue.later
    batching.send_due(ctx, *args)
    assert demo.stats()["batches"][0] == 2
    drain(ctx)  # the freed slots start the third task, which gathers again
    assert task(ctx, ids[2]).status is TaskStatus.PROCESSING


def test_a_bad_item_fails_only_its_task_and_a_failed_call_fails_them_all(world):
    ctx, _, demo, port = world
    batch_server(ctx, port)
    good, bad, failing = (
        submit_task(ctx, {"n": 1}),
        submit_task(ctx, {"garbage": True}, max_retries=0),
        submit_task(ctx, {"fail": 400}, max_retries=0),
    )
    drain(ctx)
    assert task(ctx, good).status is TaskStatus.COMPLETED
    assert "is missing or malformed" in task(ctx, bad).error
    assert task(ctx, failing).status is TaskStatus.FAILED
    demo.fault = "500"
    ids = [submit_task(ctx, {"n": i}, max_retries=0) for i in range(3)]
    drain(ctx)
    assert all(task(ctx, t).status is TaskStatus.FAILED for t in ids)
    assert all("batch of 3" in task(ctx, t).error for t in ids)


def test_a_task_cancelled_while_it_gathers_is_not_sent_and_frees_its_slot(world):
    ctx, clock, demo, port = world
    batch_server(ctx, port)
    keep, drop = submit_task(ctx, {"n": 1}), submit_task(ctx, {"n": 2})
    drain(ctx)
    control.cancel(ctx, drop, None)
    clock.advance(30)
    batching.claim_due(ctx)
    ((_, args, _),) = ctx.queue.later
    batching.send_due(ctx, *args)
    assert demo.stats()["batches"] == [1]
    assert demo.stats()["predicted"] == {keep: 1}
    assert ctx.fleet.in_flight("s1") == 0


def test_callback_tasks_in_a_batch_are_sent_together_and_wait_for_their_callbacks(world):
    ctx, _, demo, port = world
    batch_server(ctx, port, max_size=2)
    ids = [submit_task(ctx, {"n": i}, mode=TaskMode.CALLBACK) for i in range(2)]
    assert drain(ctx) == ["gathering", "batched"]
    assert demo.stats()["batches"] == [2]
    assert all(task(ctx, t).status is TaskStatus.PROCESSING for t in ids)


def test_a_poll_due_within_half_a_beat_tick_is_claimed_at_this_tick(world):
    ctx, clock, _, port = world
    register_backend(ctx, port, endpoints=endpoints(port))
    submit_task(ctx, mode=TaskMode.POLL, poll_interval_s=1)
    drain(ctx)
    clock.advance(0.4)
    assert polling.claim_due(ctx) == 0  # due in 0.6 s: the next tick takes it
    clock.advance(0.2)
    assert polling.claim_due(ctx) == 1  # due in 0.4 s: this tick takes it
