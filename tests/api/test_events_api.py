"""GET /api/task/{id}/events through the app: SSE framing, headers, resume, who may see
it, and its OpenAPI description."""

from __future__ import annotations

import dataclasses
import json

import pytest

from app import create_app
from app.core.events import SSEParser
from app.services import outcomes
from tests.services.helpers import register_backend, start_attempt


def parse(body: bytes) -> list[tuple[str | None, str, object]]:
    return [(m.id, m.event, json.loads(m.data)) for m in SSEParser().feed(body)]


@pytest.fixture
def finished(client, ctx, auth, backend):
    """A task of alice's that streamed two chunks and completed."""
    register_backend(ctx, backend[1])
    r = client.post(
        "/api/task", json={"type": "echo", "capabilities": ["echo"], "stream": True}, headers=auth()
    )
    task_id = r.get_json()["id"]
    assert r.get_json()["stream"] is True
    start_attempt(ctx, task_id)
    ctx.events.append_chunks(task_id, 1, ["Hel", "lo"])
    outcomes.complete(ctx, task_id, 1, {"chunks": ["Hel", "lo"]})
    return task_id


def test_a_finished_tasks_stream_replays_every_event_and_ends_with_the_task(client, auth, finished):
    r = client.get(f"/api/task/{finished}/events", headers=auth())
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-cache" and r.headers["X-Accel-Buffering"] == "no"
    got = parse(r.data)
    assert [(i, e) for i, e, _ in got] == [
        ("1-0", "status"),
        ("2-0", "status"),
        ("2-1", "chunk"),
        ("2-2", "chunk"),
        ("3-0", "status"),
        ("3-r", "result"),
    ]
    assert [d for _, e, d in got if e == "chunk"] == [{"data": "Hel"}, {"data": "lo"}]
    assert got[-1][2] == client.get(f"/api/task/{finished}", headers=auth()).get_json()


def test_last_event_id_resumes_after_it_by_header_or_query(client, auth, finished):
    by_header = parse(
        client.get(f"/api/task/{finished}/events", headers={**auth(), "Last-Event-ID": "2-1"}).data
    )
    assert [i for i, _, _ in by_header] == ["2-2", "3-0", "3-r"]
    by_query = parse(client.get(f"/api/task/{finished}/events?lastEventId=3-0", headers=auth()).data)
    assert [i for i, _, _ in by_query] == ["3-r"]
    both = client.get(
        f"/api/task/{finished}/events?lastEventId=1-0", headers={**auth(), "Last-Event-ID": "3-r"}
    )
    assert parse(both.data) == []


@pytest.mark.parametrize("bad", ["x", "1", "1-", "-1-0", "1-0-0", "1-x", "9" * 20 + "-0"])
def test_a_malformed_last_event_id_is_a_422(client, auth, finished, bad):
    r = client.get(f"/api/task/{finished}/events", headers={**auth(), "Last-Event-ID": bad})
    assert r.status_code == 422 and r.get_json()["error"] == "validation_error"


def test_another_owners_task_stream_is_a_404_like_the_task_itself(client, auth, finished):
    r = client.get(f"/api/task/{finished}/events", headers=auth("bob"))
    assert r.status_code == 404
    assert r.get_json() == client.get(f"/api/task/{finished}", headers=auth("bob")).get_json()
    assert client.get(f"/api/task/{finished}/events", headers=auth("root", ("admin",))).status_code == 200
    assert client.get("/api/task/nope/events", headers=auth()).status_code == 404
    assert client.get(f"/api/task/{finished}/events").status_code == 401


def test_openapi_marks_the_stream_as_text_event_stream(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/api/task/{task_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} == {"lastEventId"}


def test_a_running_task_sends_keep_alives_while_quiet(ctx, auth, backend):
    ctx.settings = dataclasses.replace(ctx.settings, events_keepalive_s=0.05)
    client = create_app(context=ctx).test_client()
    register_backend(ctx, backend[1])
    task_id = client.post(
        "/api/task", json={"type": "echo", "capabilities": ["echo"]}, headers=auth()
    ).get_json()["id"]
    start_attempt(ctx, task_id)
    r = client.get(f"/api/task/{task_id}/events", headers=auth(), buffered=False)
    parts = r.response
    text = ""
    while text.count(": keep-alive") < 2:
        text += next(parts).decode()
    r.close()
    assert "event: status" in text
