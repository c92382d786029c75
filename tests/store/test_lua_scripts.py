"""Every Lua script, against fakeredis and a real Redis (the ``redis`` fixture runs both)."""

import pytest

from app.core.errors import Conflict
from app.core.states import TaskStatus, is_final
from app.core.task import TaskSpec, TaskState
from app.store import keys
from app.store.hot_state import HotStateMissing, TaskStateStore
from app.store.limit_state import LimitState

P, PR = TaskStatus.PENDING, TaskStatus.PROCESSING


def pending(task_id: str = "t1", timeout_s: int = 60) -> TaskState:
    return TaskState(
        id=task_id,
        owner="alice",
        spec=TaskSpec(type="echo", timeout_s=timeout_s),
        status=P,
        version=1,
        created_ms=1000,
        updated_ms=1000,
    )


@pytest.fixture
def store(redis):
    return TaskStateStore(redis, finished_ttl_s=300)


def test_a_transition_from_the_expected_state_bumps_the_version_and_sets_fields(store):
    store.put_if_absent(pending())
    state = store.transition("t1", [P], PR, now_ms=5000, expect_attempt=0, attempt=1, server_id="s1")
    assert (state.status, state.version, state.attempt, state.server_id) == (PR, 2, 1, "s1")
    assert state.updated_ms == 5000
    assert state.from_status == "PENDING"


def test_a_transition_from_another_state_or_attempt_changes_nothing(store, redis):
    store.put_if_absent(pending())
    before = redis.hgetall(keys.task("t1"))
    with pytest.raises(Conflict):
        store.transition("t1", [PR], TaskStatus.COMPLETED, now_ms=5000)
    with pytest.raises(Conflict):
        store.transition("t1", [P], PR, now_ms=5000, expect_attempt=3)
    assert redis.hgetall(keys.task("t1")) == before


def test_a_transition_of_a_task_without_hot_state_says_so(store):
    with pytest.raises(HotStateMissing):
        store.transition("nope", [P], PR, now_ms=1)


def test_entering_processing_sets_a_deadline_and_leaving_it_clears_it(store, redis):
    store.put_if_absent(pending(timeout_s=60))
    store.transition("t1", [P], PR, now_ms=10_000, attempt=1)
    assert redis.zscore(keys.DEADLINES, "t1") == 70_000
    assert store.due_deadlines(69_999, 10) == []
    assert store.due_deadlines(70_000, 10) == ["t1"]
    store.transition("t1", [PR], TaskStatus.COMPLETED, now_ms=20_000)
    assert redis.zscore(keys.DEADLINES, "t1") is None


def test_a_final_task_expires_once_the_database_has_it_and_a_retried_one_persists(store, redis):
    store.put_if_absent(pending())
    running = store.transition("t1", [P], PR, now_ms=1, attempt=1)
    assert redis.sismember(keys.UNSYNCED, "t1")  # until the database follows
    assert store.mark_synced(running)
    assert not redis.sismember(keys.UNSYNCED, "t1") and redis.pttl(keys.task("t1")) == -1
    failed = store.transition("t1", [PR], TaskStatus.FAILED, now_ms=2, attempt_outcome="FAILED")
    assert redis.pttl(keys.task("t1")) == -1  # kept: the database has not followed yet
    assert failed.attempt_outcome == "FAILED"
    assert not store.mark_synced(running)  # an older version: the task moved on
    assert store.mark_synced(failed)
    assert 0 < redis.pttl(keys.task("t1")) <= 300_000
    store.transition("t1", [TaskStatus.FAILED], P, now_ms=3)
    assert redis.pttl(keys.task("t1")) == -1


@pytest.mark.parametrize("status", list(TaskStatus))
def test_once_synced_a_task_expires_exactly_when_its_status_is_final(store, redis, status):
    """The final statuses come from app.core.states, not from a list in the script."""
    store.put_if_absent(pending())
    redis.hset(keys.task("t1"), "status", status.value)
    assert store.mark_synced(pending())
    assert (redis.pttl(keys.task("t1")) > 0) is is_final(status)


def test_pending_and_processing_have_deadlines_and_final_states_none(store, redis):
    store.put_if_absent(pending(timeout_s=60))
    assert redis.zscore(keys.DEADLINES, "t1") == 1000 + 60_000  # waits at most its timeout
    store.transition("t1", [P], PR, now_ms=5_000, attempt=1)
    assert redis.zscore(keys.DEADLINES, "t1") == 65_000
    store.transition("t1", [PR], PR, now_ms=9_000, progress=50)
    assert redis.zscore(keys.DEADLINES, "t1") == 65_000  # progress keeps the deadline
    store.transition("t1", [PR], P, now_ms=10_000)
    assert redis.zscore(keys.DEADLINES, "t1") == 70_000
    store.transition("t1", [P], TaskStatus.CANCELLED, now_ms=11_000)
    assert redis.zscore(keys.DEADLINES, "t1") is None


def test_hydrate_never_overwrites_a_live_copy(store):
    assert store.put_if_absent(pending())
    store.transition("t1", [P], PR, now_ms=5, attempt=1)
    assert not store.put_if_absent(pending())
    assert store.get("t1").status is PR


def test_an_empty_value_deletes_a_field(store):
    store.put_if_absent(pending())
    store.transition("t1", [P], PR, now_ms=5, attempt=1, server_id="s1")
    state = store.transition("t1", [PR], P, now_ms=6, server_id=None)
    assert state.server_id is None


def test_results_round_trip_as_json(store):
    store.put_if_absent(pending())
    store.transition("t1", [P], PR, now_ms=5, attempt=1)
    state = store.transition("t1", [PR], TaskStatus.COMPLETED, now_ms=6, result={"a": [1, "x", None]})
    assert store.get("t1").result == state.result == {"a": [1, "x", None]}


def test_scripts_reload_after_script_flush(store, redis):
    from app.store.fleet import FleetStore, ServerProfile

    fleet = FleetStore(redis)
    LimitState(redis).publish([], [], 0)
    fleet.put_server(ServerProfile("s1", "online", 2), now_ms=1)
    store.put_if_absent(pending())
    redis.script_flush()
    assert store.transition("t1", [P], PR, now_ms=1, attempt=1).status is PR
    redis.script_flush()
    assert fleet.reserve("t1", 1) == "s1"


def test_a_script_runs_even_when_a_flush_lands_before_every_evalsha(store, redis, monkeypatch):
    """SCRIPT FLUSH storms: redis-py's own retry (load, then EVALSHA once more) fails
    when a second flush lands in between; the text itself (EVAL) cannot be flushed."""
    from redis.exceptions import NoScriptError

    def flushed_meanwhile(*_args, **_kwargs):
        redis.script_flush()
        raise NoScriptError("NOSCRIPT No matching script.")

    store.put_if_absent(pending())
    monkeypatch.setattr(redis, "evalsha", flushed_meanwhile)
    assert store.transition("t1", [P], PR, now_ms=1, attempt=1).status is PR
