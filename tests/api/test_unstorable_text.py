"""Text no store can hold (a lone UTF-16 surrogate, NUL), anywhere in a request: a 422
naming where it is, never a 500, and nothing written, on SQLite and on Postgres."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.store.models import Base
from tests.services.helpers import start_attempt

LONE = "\ud800"
SERVER = {
    "name": "n",
    "maxConcurrent": 2,
    "capabilities": ["echo"],
    "endpoints": {"predict": "http://127.0.0.1:9/p", "health": "http://127.0.0.1:9/h"},
}
BODIES = [
    ("/api/task", {"type": "e" + LONE}, "type"),
    ("/api/task", {"type": "e", "payload": {"a": [1, "x" + LONE]}}, "payload.a[1]"),
    ("/api/task", {"type": "e", "payload": {"k" + LONE: 1}}, 'payload["k\\ud800"]'),
    ("/api/task", {"type": "e", "payload": "\udfff"}, "payload"),
    ("/api/task", {"type": "e", "metadata": {"m": LONE}}, "metadata.m"),
    ("/api/task", {"type": "e", "capabilities": ["echo", LONE]}, "capabilities[1]"),
    ("/api/task", {"type": "e", "group": LONE}, "group"),
    ("/api/task", {"type": "e", "region": LONE}, "region"),
    ("/api/task", {"type": "e", "dependsOn": [LONE]}, "dependsOn[0]"),
    ("/api/task", {"type": "e", LONE: 1}, '"\\ud800"'),
    ("/api/task", {"type": "e", "payload": {"a": "\x00"}}, "payload.a"),
    ("/api/jobs", {"name": LONE, "tasks": [{"type": "e"}]}, "name"),
    ("/api/jobs", {"tasks": [{"type": "e"}, {"type": "e", "key": LONE}]}, "tasks[1].key"),
    ("/api/jobs", {"template": {"type": "e"}, "items": [{"p": LONE}]}, "items[0].p"),
    ("/api/servers", {**SERVER, "id": LONE}, "id"),
    ("/api/servers", {**SERVER, "name": LONE}, "name"),
    ("/api/servers", {**SERVER, "apiKey": LONE}, "apiKey"),
    ("/api/servers", {**SERVER, "capabilities": [LONE]}, "capabilities[0]"),
    ("/api/servers", {**SERVER, "groups": [LONE]}, "groups[0]"),
    ("/api/servers", {**SERVER, "region": LONE}, "region"),
    ("/api/servers", {**SERVER, "endpoints": {**SERVER["endpoints"], "cancel": LONE}}, "endpoints.cancel"),
]


def snapshot(ctx):
    """Rows in every table and keys in Redis: what a refused request must not change."""
    with ctx.db.session() as session:
        rows = {
            t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables
        }
    return rows, sorted(ctx.redis.keys("*"))


def send(client, method, path, body, headers):
    # json.dumps writes a lone surrogate as the escape "\ud800", as any JSON encoder would.
    data = json.dumps(body)
    return getattr(client, method)(path, data=data, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("path, body, where", BODIES, ids=[f"{p}:{w}" for p, _, w in BODIES])
def test_unstorable_text_in_a_body_is_a_422_naming_its_path(ctx, client, auth, path, body, where):
    before = snapshot(ctx)
    r = send(client, "post", path, body, auth("root", ("admin",)))
    assert r.status_code == 422, r.get_data(as_text=True)
    answer = r.get_json()
    assert answer["error"] == "validation_error"
    assert where in answer["details"]["json"], answer
    assert snapshot(ctx) == before


def test_a_limit_or_heartbeat_with_unstorable_text_is_422(ctx, client, auth):
    admin = auth("root", ("admin",))
    assert client.post("/api/servers", json={**SERVER, "id": "s1"}, headers=admin).status_code == 201
    before = snapshot(ctx)
    r = send(client, "put", "/api/limits/echo", {"maxConcurrent": 2, LONE: 1}, admin)
    assert r.status_code == 422, r.get_data(as_text=True)
    r = send(client, "post", "/api/servers/s1/heartbeat", {"inFlight": 1, "x": "\x00"}, admin)
    assert r.status_code == 422, r.get_data(as_text=True)
    assert snapshot(ctx) == before


@pytest.mark.parametrize(
    "update",
    [
        {"status": "COMPLETED", "result": {"text": "ok" + LONE}},
        {"status": "FAILED", "error": LONE},
        {"status": "PROCESSING", "progress": 5, "metadata": {LONE: 1}},
    ],
)
def test_a_callback_with_unstorable_text_is_422_and_changes_nothing(ctx, client, auth, update):
    admin = auth("root", ("admin",))
    assert client.post("/api/servers", json={**SERVER, "id": "s1"}, headers=admin).status_code == 201
    task_id = client.post(
        "/api/task", json={"type": "e", "capabilities": ["echo"]}, headers=admin
    ).get_json()["id"]
    start_attempt(ctx, task_id)
    before = snapshot(ctx)
    r = send(client, "put", f"/api/task/{task_id}?token={ctx.tokens.issue(task_id, 1)}", update, {})
    assert r.status_code == 422, r.get_data(as_text=True)
    assert snapshot(ctx) == before
    assert client.get(f"/api/task/{task_id}", headers=admin).get_json()["status"] == "PROCESSING"


def test_a_surrogate_pair_is_ordinary_text(client, auth):
    r = send(client, "post", "/api/task", {"type": "e", "payload": {"emoji": "\U0001f600"}}, auth())
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["payload"] == {"emoji": "\U0001f600"}


def test_authentication_comes_before_the_text_check(client):
    assert send(client, "post", "/api/task", {"type": LONE}, {}).status_code == 401
