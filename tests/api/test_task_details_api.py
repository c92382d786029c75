"""What a task carries besides its work: the client's metadata, its attempts with what
the backend reported about each, and payloads too large for Redis."""

from __future__ import annotations

import json

import pytest

from app.core.states import TaskStatus
from app.core.task import METADATA_MAX_BYTES, json_size
from app.services import state_sync
from app.store import tasks_repo
from tests.services.helpers import start_attempt


def _sized(n: int) -> dict:
    """A metadata object of exactly ``n`` bytes of compact JSON."""
    base = {"k": ""}
    return {"k": "x" * (n - json_size(base))}


def test_metadata_is_stored_returned_and_listed(ctx, client, auth):
    metadata = {"customer": "acme", "tags": ["a", "b"], "trace": {"id": 7, "ok": True}, "note": "ünï"}
    r = client.post("/api/task", json={"type": "echo", "metadata": metadata}, headers=auth())
    assert r.status_code == 201 and r.get_json()["metadata"] == metadata
    task_id = r.get_json()["id"]
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json()["metadata"] == metadata
    assert client.get("/api/tasks", headers=auth()).get_json()["items"][0]["metadata"] == metadata
    with ctx.db.session() as session:
        assert tasks_repo.get_row(session, task_id).meta == metadata
    assert ctx.tasks.get(task_id).spec.metadata == metadata


def test_metadata_survives_a_rebuild_of_the_hot_state(ctx, client, auth):
    metadata = {"model": "m-2"}
    task_id = client.post(
        "/api/task", json={"type": "echo", "metadata": metadata}, headers=auth()
    ).get_json()["id"]
    ctx.redis.flushall()
    assert state_sync.load(ctx, task_id).spec.metadata == metadata
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json()["metadata"] == metadata


def test_without_metadata_a_task_has_null(client, auth):
    for body in ({"type": "echo"}, {"type": "echo", "metadata": None}):
        task = client.post("/api/task", json=body, headers=auth()).get_json()
        assert task["metadata"] is None
        assert client.get(f"/api/task/{task['id']}", headers=auth()).get_json()["metadata"] is None


def test_metadata_up_to_16_kib_is_accepted_and_larger_is_422(client, auth):
    fits = _sized(METADATA_MAX_BYTES)
    assert json_size(fits) == METADATA_MAX_BYTES == 16 * 1024
    r = client.post("/api/task", json={"type": "echo", "metadata": fits}, headers=auth())
    assert r.status_code == 201 and r.get_json()["metadata"] == fits
    too_big = _sized(METADATA_MAX_BYTES + 1)
    r = client.post("/api/task", json={"type": "echo", "metadata": too_big}, headers=auth())
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"
    (message,) = r.get_json()["details"]["json"]["metadata"]
    assert "at most 16384 bytes" in message and str(METADATA_MAX_BYTES + 1) in message
    assert len(client.get("/api/tasks", headers=auth()).get_json()["items"]) == 1


@pytest.mark.parametrize("metadata", [[1, 2], "label", 5, True])
def test_metadata_that_is_not_an_object_is_422(client, auth, metadata):
    r = client.post("/api/task", json={"type": "echo", "metadata": metadata}, headers=auth())
    assert r.status_code == 422
    assert r.get_json()["details"]["json"]["metadata"] == ["must be a JSON object"]
    assert client.get("/api/tasks", headers=auth()).get_json()["items"] == []


def test_metadata_is_in_the_openapi_document(client):
    spec = client.get("/openapi.json").get_json()
    field = spec["components"]["schemas"]["TaskIn"]["properties"]["metadata"]
    assert "object" in field["type"] and "16384" in field["description"]
    assert "metadata" in spec["components"]["schemas"]["TaskOut"]["properties"]
    assert json.dumps(spec)  # still serialisable


def _running_callback_task(ctx, client, auth, owner="alice"):
    """A callback task running as attempt 1 on s1 (whose backend is never called)."""
    admin = auth("root", ("admin",))
    server = {"id": "s1", "name": "s1", "capabilities": ["echo"], "endpoints": ENDPOINTS}
    assert client.post("/api/servers", json=server, headers=admin).status_code in (200, 201)
    body = {"type": "echo", "async": True, "capabilities": ["echo"], "maxRetries": 1}
    task_id = client.post("/api/task", json=body, headers=auth(owner)).get_json()["id"]
    ctx.queue.take()
    start_attempt(ctx, task_id)
    return task_id, ctx.tokens.url("", task_id, 1)


ENDPOINTS = {"predict": "http://127.0.0.1:9/predict", "health": "http://127.0.0.1:9/health"}
ATTEMPT_KEYS = {"attempt", "serverId", "startedAt", "endedAt", "outcome", "error", "durationMs", "metadata"}


def test_a_new_task_has_no_attempts(client, auth):
    task_id = client.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()["id"]
    r = client.get(f"/api/task/{task_id}/attempts", headers=auth())
    assert r.status_code == 200 and r.get_json() == {"items": []}


def test_attempts_show_each_attempt_with_what_the_backend_reported(ctx, client, auth):
    task_id, url = _running_callback_task(ctx, client, auth)
    progress = {"status": "PROCESSING", "progress": 50, "metadata": {"step": "decode"}}
    assert client.put(url, json=progress).status_code == 200
    (running,) = client.get(f"/api/task/{task_id}/attempts", headers=auth()).get_json()["items"]
    assert set(running) == ATTEMPT_KEYS
    assert running["attempt"] == 1 and running["serverId"] == "s1" and running["startedAt"].endswith("Z")
    assert (running["endedAt"], running["outcome"], running["durationMs"]) == (None, None, None)
    assert running["metadata"] == {"step": "decode"}
    failed = {"status": "FAILED", "error": "CUDA out of memory", "metadata": {"processing_time": 1.25}}
    assert client.put(url, json=failed).status_code == 200
    (first,) = client.get(f"/api/task/{task_id}/attempts", headers=auth()).get_json()["items"]
    assert first["outcome"] == "FAILED" and first["error"] == "CUDA out of memory"
    assert first["metadata"] == {"processing_time": 1.25}
    assert first["endedAt"] >= first["startedAt"] and first["durationMs"] >= 0


def test_attempts_list_every_attempt_oldest_first(ctx, client, auth):
    task_id, url = _running_callback_task(ctx, client, auth)
    client.put(url, json={"status": "FAILED", "error": "boom"})
    ctx.fleet.reserve(task_id, 2, ("echo",), now_ms=ctx.now_ms())
    now = ctx.now_ms()
    state_sync.apply(
        ctx,
        task_id,
        [TaskStatus.PENDING],
        TaskStatus.PROCESSING,
        1,
        attempt=2,
        server_id="s1",
        started_ms=now,
    )
    done = {"status": "COMPLETED", "result": 1, "metadata": {"model_version": "v3"}}
    assert client.put(ctx.tokens.url("", task_id, 2), json=done).status_code == 200
    items = client.get(f"/api/task/{task_id}/attempts", headers=auth()).get_json()["items"]
    assert [(a["attempt"], a["outcome"], a["metadata"]) for a in items] == [
        (1, "FAILED", None),
        (2, "COMPLETED", {"model_version": "v3"}),
    ]


def test_another_owners_attempts_are_404_and_an_admin_sees_them(ctx, client, auth):
    task_id, _ = _running_callback_task(ctx, client, auth)
    r = client.get(f"/api/task/{task_id}/attempts", headers=auth("bob"))
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    assert client.get("/api/task/nope/attempts", headers=auth()).status_code == 404
    admin = client.get(f"/api/task/{task_id}/attempts", headers=auth("root", ("admin",)))
    assert admin.status_code == 200 and len(admin.get_json()["items"]) == 1
    assert client.get(f"/api/task/{task_id}/attempts").status_code == 401


def test_reading_attempts_writes_nothing(ctx, client, auth):
    task_id = client.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()["id"]
    ctx.redis.flushall()  # a read that rebuilt hot state would write it back
    assert client.get(f"/api/task/{task_id}/attempts", headers=auth()).status_code == 200
    assert ctx.tasks.get(task_id) is None
