"""Backends as they really are, on the Procfile's real stack (gunicorn, a gevent worker,
beat, Redis, Postgres): long calls on one worker process, poll mode, cancel reaching
the backend, and batches."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from app.demo_backend import DemoBackend
from app.devstack import free_port
from tests.test_stack import stack, wait_final  # noqa: F401 - the fixture is used by name


@pytest.fixture
def fleet(stack, token):  # noqa: F811 - pytest fixture
    """(api, admin headers, client headers, add) where add(name, **fields) starts a demo
    backend and registers it with status and cancel endpoints (``demo_key``: the apiKey
    the backend itself knows, checks and signs its callbacks with)."""
    api = stack[0]
    admin = {"Authorization": f"Bearer {token('root', ('admin',))}"}
    client = {"Authorization": f"Bearer {token('alice')}"}
    servers = []

    def add(name: str, delay_s: float = 0.05, demo_key: str | None = None, **fields) -> DemoBackend:
        demo = DemoBackend(name, delay_s=delay_s, api_key=demo_key)
        port = free_port()
        server = demo.serve("127.0.0.1", port)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        base = f"http://127.0.0.1:{port}"
        body = {
            "id": name,
            "name": name,
            "capabilities": [name],
            "endpoints": {
                "predict": f"{base}/predict",
                "health": f"{base}/health",
                "status": f"{base}/status",
                "cancel": f"{base}/cancel",
            },
            **fields,
        }
        r = requests.post(f"{api}/servers", json=body, headers=admin, timeout=5)
        assert r.status_code == 201, r.text
        return demo

    yield api, admin, client, add
    for server in servers:
        server.shutdown()
        server.server_close()


def submit(api, client, capability, payload, **fields) -> str:
    body = {"type": "echo", "capabilities": [capability], "payload": payload, **fields}
    r = requests.post(f"{api}/task", json=body, headers=client, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.slow  # ~40 s of 32-second calls: runs in `make soak`
@pytest.mark.parametrize("stack", [220], indirect=True)
def test_two_hundred_calls_longer_than_thirty_seconds_run_at_once_on_one_worker_process(fleet):
    """Calls may take the task's whole timeout: 200 calls of 32 s each are held at once
    by the one gevent worker process of the Procfile (no more processes needed)."""
    api, _, client, add = fleet
    demo = add("long", maxConcurrent=200)
    started = time.monotonic()
    ids = [submit(api, client, "long", {"sleep": 32}, timeout=120) for _ in range(200)]
    for task_id in ids:
        assert wait_final(api, client, task_id, timeout_s=90)["status"] == "COMPLETED"
    elapsed = time.monotonic() - started
    assert demo.stats()["max_in_flight"] == 200
    assert elapsed < 70, f"the calls did not overlap: {elapsed:.0f}s"


def test_poll_mode_cancel_and_batches_end_to_end(fleet):
    api, admin, client, add = fleet
    add("poller", delay_s=1.5, maxConcurrent=4)
    by_job = submit(api, client, "poller", {"n": 1}, mode="poll", pollInterval=1)
    by_url = submit(api, client, "poller", {"poll_via": "statusUrl"}, mode="poll", pollInterval=1)
    for task_id, payload in ((by_job, {"n": 1}), (by_url, {"poll_via": "statusUrl"})):
        task = wait_final(api, client, task_id, timeout_s=30)
        assert task["status"] == "COMPLETED" and task["result"]["echo"] == payload, task
        assert task["mode"] == "poll" and task["pollInterval"] == 1

    slow = add("slow", delay_s=60, maxConcurrent=1)
    running = submit(api, client, "slow", {"sleep": 60}, mode="poll", pollInterval=5)
    deadline = time.monotonic() + 15
    while requests.get(f"{api}/task/{running}", headers=client, timeout=5).json()["status"] != "PROCESSING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (
        requests.post(f"{api}/task/{running}/cancel", headers=client, timeout=5).json()["status"]
        == "CANCELLED"
    )
    deadline = time.monotonic() + 15
    while requests.get(f"{api}/servers/slow", headers=admin, timeout=5).json()["inFlight"] != 0:
        assert time.monotonic() < deadline, "the cancelled task's slot was not freed"
        time.sleep(0.2)
    assert slow.stats()["cancelled"] == [running]

    batcher = add("batcher", delay_s=0.2, maxConcurrent=8, batch={"maxSize": 4, "maxWaitMs": 1500})
    server = requests.get(f"{api}/servers/batcher", headers=admin, timeout=5).json()
    assert server["batch"] == {"maxSize": 4, "maxWaitMs": 1500}
    ids = [submit(api, client, "batcher", {"i": i}) for i in range(10)]
    for i, task_id in enumerate(ids):
        task = wait_final(api, client, task_id, timeout_s=30)
        assert task["status"] == "COMPLETED" and task["result"]["echo"] == {"i": i}, task
    sizes = batcher.stats()["batches"]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10


def test_a_server_demanding_signed_callbacks_hears_only_from_a_backend_that_signs(fleet):
    """Both servers demand signatures. The demo backend that has the apiKey signs its
    callbacks and its task completes; one that does not sign (a tutorial backend that
    knows nothing of signatures) is refused, its task untouched until its timeout."""
    api, admin, client, add = fleet
    signer = add(
        "signer", delay_s=0.3, demo_key="signer-key", apiKey="signer-key", callbackSignature="required"
    )
    plain = add("plain", delay_s=0.3, apiKey="plain-key", callbackSignature="required")
    shown = requests.get(f"{api}/servers/plain", headers=admin, timeout=5).json()
    assert shown["callbackSignature"] == "required" and "plain-key" not in str(shown)

    signed_id = submit(api, client, "signer", {"n": 1}, mode="callback")
    task = wait_final(api, client, signed_id, timeout_s=30)
    assert task["status"] == "COMPLETED" and task["result"]["echo"] == {"n": 1}, task
    assert set(signer.stats()["callback_answers"]) == {200}

    unsigned_id = submit(api, client, "plain", {"n": 2}, mode="callback", timeout=4, maxRetries=0)
    deadline = time.monotonic() + 15
    while len(plain.stats()["callback_answers"]) < 2:  # its progress and its result
        assert time.monotonic() < deadline, plain.stats()
        time.sleep(0.1)
    assert plain.stats()["callback_answers"] == [401, 401]
    seen = requests.get(f"{api}/task/{unsigned_id}", headers=client, timeout=5).json()
    assert seen["status"] == "PROCESSING" and seen["progress"] == 0 and seen["result"] is None
    task = wait_final(api, client, unsigned_id, timeout_s=30)
    assert task["status"] == "TIMEOUT", task
