"""A task's event stream: ids from versions, the Lua emission against the database's
rebuild (the same events either way), chunks, and following a task live; on fakeredis
with SQLite and on real Redis with Postgres."""

from __future__ import annotations

import threading
import time

import pytest

from app.core.errors import Conflict
from app.core.events import RESULT, START, EventId
from app.core.states import TaskStatus
from app.services import events, outcomes, state_sync
from app.store import keys
from tests.services.helpers import drain, register_backend, start_attempt, submit_task


def _render(state):
    return {"id": state.id, "status": state.status.value, "result": state.result}


@pytest.fixture
def running(ctx, backend):
    """A task PROCESSING on s1 at attempt 1 (version 2)."""
    register_backend(ctx, backend[1])
    task_id = submit_task(ctx, {"x": 1})
    start_attempt(ctx, task_id)
    return task_id


def _ids(found):
    return [str(e.id) for e in found]


def test_every_transition_has_one_event_whose_id_is_its_version(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 40})
    # progress unchanged (only metadata): a transition, but no progress event
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 40, "metadata": {"step": 2}})
    outcomes.complete(ctx, running, 1, {"answer": 42})
    found, covered = events.replay(ctx, running, START)
    assert _ids(found) == ["1-0", "2-0", "3-0", "5-0"] and covered == 5
    assert [e.name for e in found] == ["status", "status", "progress", "status"]
    assert found[0].data["status"] == "PENDING" and found[0].data["attempt"] == 0
    assert found[1].data == {
        "status": "PROCESSING",
        "attempt": 1,
        "serverId": "s1",
        "at": found[1].data["at"],
    }
    assert found[2].data == {"progress": 40}
    assert found[3].data["status"] == "COMPLETED" and "error" not in found[3].data


def test_the_database_rebuilds_exactly_the_events_redis_has(ctx, running):
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 10})
    outcomes.fail(ctx, running, 1, "backend went away")  # retried: PENDING, with the error
    ctx.queue.take()
    state = state_sync.load(ctx, running)
    assert state.status is TaskStatus.PENDING
    from_redis = [events.entry_event(e) for e in ctx.events.after(running, START)]
    rebuilt, covered = events.rebuilt_events(ctx, running)
    assert covered == state.version
    assert [(e.id, e.name, e.data) for e in rebuilt] == [(e.id, e.name, e.data) for e in from_redis]
    retry = from_redis[-1]
    assert retry.data["status"] == "PENDING" and retry.data["error"] == "backend went away"


def test_a_final_failure_shows_its_error(ctx, running):
    outcomes.fail(ctx, running, 1, "bad input", retryable=False)
    found, _ = events.replay(ctx, running, START)
    assert found[-1].data["status"] == "FAILED" and found[-1].data["error"].startswith("bad input")
    rebuilt, _ = events.rebuilt_events(ctx, running)
    assert rebuilt[-1].data == found[-1].data


def test_chunks_count_within_their_version_and_only_while_the_attempt_runs(ctx, running):
    assert ctx.events.append_chunks(running, 1, ["a"]) == EventId(2, 1)
    assert ctx.events.append_chunks(running, 1, [{"t": "b"}, 3]) == EventId(2, 3)
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "progress": 50})
    assert ctx.events.append_chunks(running, 1, ["c"]) == EventId(3, 1)
    with pytest.raises(Conflict):
        ctx.events.append_chunks(running, 2, ["another attempt's"])
    found, _ = events.replay(ctx, running, START)
    assert _ids(found) == ["1-0", "2-0", "2-1", "2-2", "2-3", "3-0", "3-1"]
    assert [e.data for e in found if e.name == "chunk"] == [
        {"data": "a"},
        {"data": {"t": "b"}},
        {"data": 3},
        {"data": "c"},
    ]
    outcomes.complete(ctx, running, 1, "done")
    with pytest.raises(Conflict):
        ctx.events.append_chunks(running, 1, ["late"])


def test_resuming_after_an_id_gives_exactly_what_follows_it(ctx, running):
    ctx.events.append_chunks(running, 1, ["a", "b", "c"])
    outcomes.complete(ctx, running, 1, "done")
    found, _ = events.replay(ctx, running, EventId.parse("2-1"))
    assert _ids(found) == ["2-2", "2-3", "3-0"]
    assert _ids(events.replay(ctx, running, EventId.parse("3-r"))[0]) == []


def test_a_finished_task_replays_and_ends_with_its_result(ctx, running):
    ctx.events.append_chunks(running, 1, ["a"])
    outcomes.complete(ctx, running, 1, {"answer": 42})
    found = list(events.follow(ctx, running, START, _render))
    assert _ids(found) == ["1-0", "2-0", "2-1", "3-0", "3-r"]
    assert found[-1].name == RESULT and found[-1].data["result"] == {"answer": 42}
    assert list(events.follow(ctx, running, found[-1].id, _render)) == []
    again = list(events.follow(ctx, running, EventId.parse("2-1"), _render))
    assert _ids(again) == ["3-0", "3-r"]


def test_after_redis_lost_everything_the_database_gives_the_statuses_and_the_result(ctx, running):
    ctx.events.append_chunks(running, 1, ["lost with redis"])
    outcomes.complete(ctx, running, 1, {"answer": 42})
    ctx.redis.flushall()
    found = list(events.follow(ctx, running, START, _render))
    assert _ids(found) == ["1-0", "2-0", "3-0", "3-r"]
    assert found[-1].data["status"] == "COMPLETED"


def test_a_finished_tasks_stream_expires_with_its_hash(ctx, running):
    outcomes.complete(ctx, running, 1, "done")
    ttl_hash = ctx.redis.pttl(keys.task(running))
    ttl_events = ctx.redis.pttl(keys.task_events(running))
    assert 0 < ttl_events <= ctx.settings.hot_state_ttl_s * 1000 and abs(ttl_hash - ttl_events) < 1000


def test_an_unfinished_tasks_stream_never_expires(ctx, running):
    assert ctx.redis.pttl(keys.task_events(running)) == -1


def test_following_a_running_task_gets_chunks_as_they_come_then_the_result(ctx, running):
    got = []

    def read():
        for event in events.follow(ctx, running, START, _render, keepalive_s=0.2, check_s=0.1):
            got.append((event, time.monotonic()))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.3)
    sent = []
    for i in range(3):
        ctx.events.append_chunks(running, 1, [f"token {i}"])
        sent.append(time.monotonic())
        time.sleep(0.3)
    outcomes.complete(ctx, running, 1, "done")
    reader.join(timeout=10)
    assert not reader.is_alive()
    names = [e.name if e else None for e, _ in got]
    assert [n for n in names if n] == ["status", "status", "chunk", "chunk", "chunk", "status", "result"]
    assert None in names  # a keep-alive while nothing happened
    chunks = [(e, at) for e, at in got if e and e.name == "chunk"]
    assert [e.data["data"] for e, _ in chunks] == ["token 0", "token 1", "token 2"]
    assert all(at - sent_at < 0.25 for (_, at), sent_at in zip(chunks, sent, strict=True))
    assert events.hub_of(ctx).watched() == 0


def test_a_stream_open_across_a_redis_loss_still_ends_with_the_result(ctx, running):
    got = []
    reader = threading.Thread(
        target=lambda: got.extend(events.follow(ctx, running, START, _render, keepalive_s=5, check_s=0.1))
    )
    reader.start()
    time.sleep(0.3)
    ctx.redis.flushall()
    # The task's hot state comes back from the database, and it completes without an
    # event in Redis for the versions in between.
    state_sync.load(ctx, running)
    outcomes.complete(ctx, running, 1, "done")
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert _ids(got) == ["1-0", "2-0", "3-0", "3-r"]


def test_a_sync_backend_that_streams_has_its_chunks_relayed_and_its_result_event_kept(ctx, backend):
    register_backend(ctx, backend[1])
    task_id = submit_task(ctx, {"tokens": ["a", {"b": 1}, 3]}, stream=True)
    assert drain(ctx) == ["completed"]
    found, _ = events.replay(ctx, task_id, START)
    assert _ids(found) == ["1-0", "2-0", "2-1", "2-2", "2-3", "3-0"]
    assert [e.data["data"] for e in found if e.name == "chunk"] == ["a", {"b": 1}, 3]
    state = state_sync.load(ctx, task_id)
    assert state.result == {
        "echo": {"tokens": ["a", {"b": 1}, 3]},
        "server": "test-backend",
        "text": "a{'b': 1}3",
    }


def test_without_a_result_event_the_result_is_every_chunk(ctx, backend):
    register_backend(ctx, backend[1])
    task_id = submit_task(ctx, {"tokens": ["x", "y"], "no_result_event": True}, stream=True)
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, task_id).result == {"chunks": ["x", "y"]}


def test_a_stream_cut_mid_way_fails_the_attempt_and_says_so(ctx):
    from tests.conftest import serving_backend

    with serving_backend("cutter") as (demo, port):
        demo.fault = "cut"
        register_backend(ctx, port)
        task_id = submit_task(ctx, {"tokens": ["a", "b", "c"]}, stream=True, max_retries=0)
        assert drain(ctx) == ["failed"]
    found, _ = events.replay(ctx, task_id, START)
    assert [e.name for e in found] == ["status", "status", "chunk", "chunk", "status"]
    assert found[-1].data["status"] == "FAILED" and "stream cut after 2 chunks" in found[-1].data["error"]


def test_a_callback_backend_streams_chunks_without_a_transition_each(ctx, running):
    before = state_sync.load(ctx, running).version
    for token in ("a", "b"):
        outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "chunk": token})
    assert state_sync.load(ctx, running).version == before
    outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "chunk": "c", "progress": 70})
    outcomes.callback(ctx, running, 1, {"status": "COMPLETED", "result": "abc", "chunk": "!"})
    found, _ = events.replay(ctx, running, START)
    assert _ids(found) == ["1-0", "2-0", "2-1", "2-2", "2-3", "3-0", "3-1", "4-0"]
    assert [e.data["data"] for e in found if e.name == "chunk"] == ["a", "b", "c", "!"]
    rebuilt, _ = events.rebuilt_events(ctx, running)
    assert [str(e.id) for e in rebuilt] == ["1-0", "2-0", "3-0", "4-0"]
    with pytest.raises(Conflict):
        outcomes.callback(ctx, running, 1, {"status": "PROCESSING", "chunk": "late"})
