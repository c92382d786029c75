"""The task API end to end in one process: a live HTTP API (for callbacks), a real backend."""

import dataclasses
import json
import threading
import time

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.core import signatures
from app.services import dispatch
from app.store import tasks_repo
from tests.services.helpers import drain


@pytest.fixture
def live(ctx):
    """The app served over HTTP on a free port; PUBLIC_URL points at it."""
    app = create_app(context=ctx)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    ctx.settings = dataclasses.replace(ctx.settings, public_url=f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app.test_client()
    server.shutdown()


def register(client, auth, port, max_concurrent=4, api_key=None):
    server = {
        **({"apiKey": api_key} if api_key else {}),
        "id": "s1",
        "name": "s1",
        "maxConcurrent": max_concurrent,
        "capabilities": ["echo"],
        "endpoints": {
            "predict": f"http://127.0.0.1:{port}/predict",
            "health": f"http://127.0.0.1:{port}/health",
        },
    }
    assert client.post("/api/servers", json=server, headers=auth("root", ("admin",))).status_code == 201


def wait_status(client, headers, task_id, wanted, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        task = client.get(f"/api/task/{task_id}", headers=headers).get_json()
        if not seen or seen[-1] != task["status"]:
            seen.append(task["status"])
        if task["status"] == wanted:
            return task, seen
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never reached {wanted}: {seen}")


def wait_until(predicate, timeout_s=5):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_task_is_in_the_database_before_the_2xx_and_before_its_dispatch_job(ctx, client, auth, queue):
    seen_at_enqueue = {}

    def check(task_id, _attempt):
        with ctx.db.session() as s:
            seen_at_enqueue[task_id] = tasks_repo.get_row(s, task_id) is not None

    queue.on_enqueue = check
    r = client.post("/api/task", json={"type": "echo"}, headers=auth())
    assert r.status_code == 201
    assert seen_at_enqueue == {r.get_json()["id"]: True}


def test_a_sync_task_goes_pending_processing_completed(live, ctx, auth, backend):
    _, port = backend
    register(live, auth, port)
    created = live.post(
        "/api/task",
        json={"type": "echo", "payload": {"n": 1}, "capabilities": ["echo"]},
        headers=auth(),
    )
    assert created.status_code == 201 and created.get_json()["status"] == "PENDING"
    task_id = created.get_json()["id"]
    drain(ctx)
    task, _ = wait_status(live, auth(), task_id, "COMPLETED")
    assert task["result"] == {"echo": {"n": 1}, "server": "test-backend"}
    assert task["serverId"] == "s1" and task["attempts"] == 1 and task["progress"] == 100


def test_a_callback_task_reports_progress_then_completes(live, ctx, auth, backend):
    demo, port = backend
    demo.delay_s = 0.6
    register(live, auth, port)
    r = live.post(
        "/api/task",
        json={"type": "echo", "payload": {"n": 2}, "async": True, "capabilities": ["echo"]},
        headers=auth(),
    )
    task_id = r.get_json()["id"]
    assert drain(ctx) == ["accepted"]
    task, seen = wait_status(live, auth(), task_id, "COMPLETED")
    assert task["result"]["echo"] == {"n": 2}
    assert "PROCESSING" in seen
    wait_until(lambda: ctx.fleet.in_flight("s1") == 0)  # the slot is freed right after the CAS
    with ctx.db.session() as s:
        statuses = [t.to_status for t in tasks_repo.transitions_of(s, task_id)]
    assert statuses == ["PENDING", "PROCESSING", "PROCESSING", "COMPLETED"]


def test_a_signed_callback_is_checked_against_the_servers_api_key(ctx, client, auth, backend):
    _, port = backend
    task_id, url = _running_callback_task(ctx, client, auth, port, api_key="backend-secret-key")
    body = json.dumps({"status": "COMPLETED", "result": {"ok": True}}).encode()
    now_s = ctx.now_ms() // 1000

    def put(signature):
        headers = {"Content-Type": "application/json", signatures.HEADER: signature}
        return client.put(url, data=body, headers=headers)

    assert put(signatures.sign("wrong-key", now_s, body)).status_code == 401
    assert put(signatures.sign("backend-secret-key", now_s - 301, body)).status_code == 401
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json()["status"] == "PROCESSING"
    done = put(signatures.sign("backend-secret-key", now_s, body))
    assert done.status_code == 200 and done.get_json()["status"] == "COMPLETED"


def _running_callback_task(ctx, client, auth, port, api_key=None):
    register(client, auth, port, api_key=api_key)
    task_id = client.post(
        "/api/task", json={"type": "echo", "async": True, "capabilities": ["echo"]}, headers=auth()
    ).get_json()["id"]
    (job,) = ctx.queue.take()
    ctx.backends.predict = lambda call: {"status": "accepted"}  # a backend that never calls back
    assert dispatch.dispatch(ctx, task_id, 0).value == "accepted"
    url = ctx.tokens.url("", task_id, 1)
    return task_id, url


def test_forged_other_task_and_replayed_callbacks_change_nothing(ctx, client, auth, backend):
    _, port = backend
    task_id, url = _running_callback_task(ctx, client, auth, port)
    other_id = client.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()["id"]
    before = client.get(f"/api/task/{task_id}", headers=auth()).get_json()

    done = {"status": "COMPLETED", "result": {"ok": True}}
    assert client.put(f"/api/task/{task_id}?token=forged.token.value", json=done).status_code == 401
    assert client.put(f"/api/task/{task_id}", json=done).status_code == 401  # no token
    other_url = ctx.tokens.url("", other_id, 0)
    assert client.put(f"/api/task/{task_id}?{other_url.split('?')[1]}", json=done).status_code == 403
    stale_url = ctx.tokens.url("", task_id, 0)
    assert client.put(stale_url, json=done).status_code == 409
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json() == before

    first = client.put(url, json=done)
    assert first.status_code == 200 and first.get_json()["status"] == "COMPLETED"
    again = client.put(url, json=done)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    reopen = client.put(url, json={"status": "PROCESSING", "progress": 10})
    assert reopen.status_code == 409
    failed = client.put(url, json={"status": "FAILED", "error": "late"})
    assert failed.status_code == 409
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json() == first.get_json()
    assert ctx.fleet.in_flight("s1") == 0


def test_an_expired_callback_token_is_401(ctx, client, auth, backend):
    _, port = backend
    task_id, url = _running_callback_task(ctx, client, auth, port)
    real_now = ctx.clock.now_ms
    try:
        ctx.clock.now_ms = lambda: real_now() + (3600 + 3600 + 60) * 1000
        r = client.put(url, json={"status": "COMPLETED", "result": 1})
    finally:
        ctx.clock.now_ms = real_now
    assert r.status_code == 401
    assert client.get(f"/api/task/{task_id}", headers=auth()).get_json()["status"] == "PROCESSING"


def test_list_filters_and_pages_own_tasks(client, auth):
    ids = [
        client.post("/api/task", json={"type": t}, headers=auth()).get_json()["id"]
        for t in ("a", "b", "a", "a")
    ]
    client.post("/api/task", json={"type": "a"}, headers=auth("bob"))
    client.post(f"/api/task/{ids[0]}/cancel", headers=auth())
    page = client.get("/api/tasks?type=a&limit=2", headers=auth()).get_json()
    assert len(page["items"]) == 2 and page["nextCursor"]
    rest = client.get(f"/api/tasks?type=a&limit=2&cursor={page['nextCursor']}", headers=auth()).get_json()
    got = [t["id"] for t in page["items"] + rest["items"]]
    assert sorted(got) == sorted([ids[0], ids[2], ids[3]]) and rest["nextCursor"] is None
    cancelled = client.get("/api/tasks?status=CANCELLED", headers=auth()).get_json()["items"]
    assert [t["id"] for t in cancelled] == [ids[0]]


def test_admins_filter_the_list_by_owner_and_clients_only_by_themselves(client, auth):
    mine = client.post("/api/task", json={"type": "a"}, headers=auth()).get_json()
    theirs = client.post("/api/task", json={"type": "a"}, headers=auth("bob")).get_json()
    assert (mine["owner"], theirs["owner"]) == ("alice", "bob")
    admin = auth("root", ("admin",))
    everyone = client.get("/api/tasks", headers=admin).get_json()["items"]
    assert {t["id"] for t in everyone} == {mine["id"], theirs["id"]}
    bobs = client.get("/api/tasks?owner=bob", headers=admin).get_json()["items"]
    assert [(t["id"], t["owner"]) for t in bobs] == [(theirs["id"], "bob")]
    assert client.get("/api/tasks?owner=nobody", headers=admin).get_json()["items"] == []
    own = client.get("/api/tasks?owner=alice", headers=auth()).get_json()["items"]
    assert [t["id"] for t in own] == [mine["id"]]
    refused = client.get("/api/tasks?owner=bob", headers=auth())
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"


def test_the_same_idempotency_key_returns_the_same_task(client, auth):
    headers = {**auth(), "Idempotency-Key": "order-42"}
    first = client.post("/api/task", json={"type": "echo"}, headers=headers)
    second = client.post("/api/task", json={"type": "echo"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["id"] == second.get_json()["id"]
    other_owner = client.post(
        "/api/task", json={"type": "echo"}, headers={**auth("bob"), "Idempotency-Key": "order-42"}
    )
    assert other_owner.status_code == 201 and other_owner.get_json()["id"] != first.get_json()["id"]


def test_health_and_openapi_are_served(client):
    assert client.get("/api/health").get_json() == {"status": "ok"}
    spec = client.get("/openapi.json").get_json()
    assert {"/api/task", "/api/task/{task_id}", "/api/tasks", "/api/servers"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_a_callback_with_a_form_content_type_is_read_as_json(ctx, client, auth, backend):
    _, port = backend
    task_id, url = _running_callback_task(ctx, client, auth, port)
    body = '{"status": "COMPLETED", "result": {"ok": true}}'
    r = client.put(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.get_json()["status"] == "COMPLETED"
    assert r.get_json()["result"] == {"ok": True}
