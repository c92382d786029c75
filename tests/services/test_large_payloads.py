"""Payloads over 64 KiB live in the database only: not in the task's Redis hash, yet
dispatched intact and shown intact; on fakeredis+SQLite and real Redis+Postgres."""

import json

import pytest

from app import create_app
from app.core.states import TaskMode, TaskStatus
from app.core.task import HOT_PAYLOAD_MAX_BYTES
from app.services import control, maintenance, outcomes, state_sync
from app.store import keys
from tests.services.helpers import drain, register_backend, start_attempt, submit_task

BIG = {"image": "x" * (100 * 1024), "format": "png"}


def hash_bytes(ctx, task_id):
    return sum(len(k) + len(v) for k, v in ctx.redis.hgetall(keys.task(task_id)).items())


def assert_not_in_redis(ctx, task_id):
    raw = ctx.redis.hgetall(keys.task(task_id))
    assert raw, "the task has hot state"
    spec = json.loads(raw["spec"])
    assert spec["payload"] is None and spec["payload_in_db"] is True
    assert len(raw["spec"]) < 1000
    if not raw.get("result"):  # a result is kept (the demo backend echoes the payload)
        assert hash_bytes(ctx, task_id) < 2000
    hot = ctx.tasks.get(task_id)
    assert hot.spec.payload is None and hot.spec.payload_in_db


@pytest.fixture
def api(ctx):
    app = create_app(context=ctx)
    app.config["TESTING"] = True
    return app.test_client()


def test_a_100_kib_payload_is_not_in_redis_but_reaches_the_backend_intact(ctx, backend, api, auth):
    demo, port = backend
    register_backend(ctx, port)
    r = api.post("/api/task", json={"type": "echo", "payload": BIG, "capabilities": ["echo"]}, headers=auth())
    assert r.status_code == 201 and r.get_json()["payload"] == BIG
    task_id = r.get_json()["id"]
    assert_not_in_redis(ctx, task_id)
    assert api.get(f"/api/task/{task_id}", headers=auth()).get_json()["payload"] == BIG
    assert drain(ctx) == ["completed"]
    assert demo.stats()["calls"] == 1
    done = api.get(f"/api/task/{task_id}", headers=auth()).get_json()
    assert done["status"] == "COMPLETED" and done["result"]["echo"] == BIG  # what the backend got
    assert done["payload"] == BIG
    assert json.loads(ctx.redis.hget(keys.task(task_id), "spec"))["payload"] is None
    assert api.get("/api/tasks", headers=auth()).get_json()["items"][0]["payload"] == BIG


def test_a_small_payload_stays_in_redis(ctx):
    task_id = submit_task(ctx, {"n": 1})
    hot = ctx.tasks.get(task_id)
    assert hot.spec.payload == {"n": 1} and not hot.spec.payload_in_db
    at_limit = {"b": "x" * (HOT_PAYLOAD_MAX_BYTES - len('{"b":""}'))}
    assert ctx.tasks.get(submit_task(ctx, at_limit)).spec.payload == at_limit


def test_a_retry_after_a_failure_sends_the_payload_again(ctx, backend):
    demo, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {**BIG, "fail": 500}, max_retries=1)
    assert drain(ctx) == ["failed", "failed"]
    assert demo.stats()["calls"] == 2
    assert state_sync.load(ctx, task_id).status is TaskStatus.FAILED
    assert state_sync.with_payload(ctx, state_sync.load(ctx, task_id)).spec.payload == {**BIG, "fail": 500}


def test_hot_state_rebuilt_from_the_database_keeps_the_payload_out(ctx, backend):
    demo, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, BIG)
    ctx.queue.take()
    ctx.redis.flushall()
    maintenance.reconcile(ctx)  # Redis lost everything: rebuilt from the rows
    assert_not_in_redis(ctx, task_id)
    assert drain(ctx) == ["completed"]
    assert state_sync.load(ctx, task_id).result["echo"] == BIG
    ctx.redis.delete(keys.task(task_id))  # expired after it finished: read back from its row
    state = state_sync.load(ctx, task_id)
    assert_not_in_redis(ctx, task_id)
    assert state_sync.with_payload(ctx, state).spec.payload == BIG


def test_answers_from_hot_state_carry_the_whole_payload(ctx, api, auth):
    register_backend(ctx, 9)
    body = {"type": "echo", "payload": BIG, "capabilities": ["echo"], "async": True, "maxRetries": 0}
    task_id = api.post("/api/task", json=body, headers=auth()).get_json()["id"]
    start_attempt(ctx, task_id)
    url = ctx.tokens.url("", task_id, 1)
    progress = api.put(url, json={"status": "PROCESSING", "progress": 5})
    assert progress.status_code == 200 and progress.get_json()["payload"] == BIG
    failed = api.put(url, json={"status": "FAILED", "error": "no"})
    assert failed.get_json()["status"] == "FAILED" and failed.get_json()["payload"] == BIG
    retried = api.post(f"/api/task/{task_id}/retry", headers=auth())
    assert retried.status_code == 200 and retried.get_json()["payload"] == BIG
    cancelled = api.post(f"/api/task/{task_id}/cancel", headers=auth())
    assert cancelled.status_code == 200 and cancelled.get_json()["payload"] == BIG
    assert_not_in_redis(ctx, task_id)


def test_a_callback_task_gets_its_payload_on_dispatch(ctx, backend):
    demo, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, BIG, mode=TaskMode.CALLBACK)
    calls = []
    ctx.backends.predict = lambda call: calls.append(call.request["payload"]) or {"status": "accepted"}
    assert drain(ctx) == ["accepted"]
    assert calls == [BIG]
    outcomes.callback(ctx, task_id, 1, {"status": "COMPLETED", "result": "ok"})
    assert control.visible_task(ctx, task_id, "alice").spec.payload_in_db
