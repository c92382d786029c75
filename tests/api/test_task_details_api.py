"""What a task carries besides its work: the client's metadata, its attempts with what
the backend reported about each, and payloads too large for Redis."""

from __future__ import annotations

import json

import pytest

from app.core.task import METADATA_MAX_BYTES, json_size
from app.services import state_sync
from app.store import tasks_repo


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
