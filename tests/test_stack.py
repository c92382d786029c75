"""The Procfile's commands start the real stack (gunicorn, a gevent Celery worker, beat)
on real Redis and Postgres, and tasks complete through a real HTTP backend in both modes."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import pytest
import redis as redis_lib
import requests
from sqlalchemy import create_engine, text

from app import jobs
from app.devstack import Supervisor, free_port, read_procfile, wait_for_port
from tests.conftest import JWT_SECRET, ROOT
from tests.servers import create_database


@contextmanager
def running_stack(
    home, postgres_url, redis_url, concurrency=50, flower=True, database_name="taskfleet_stack"
):
    """The Procfile's processes on a fresh database; yields (api URL, logs folder, Flower
    URL or None, database URL). Other test packages start their own stack with it."""
    with redis_lib.Redis.from_url(redis_url) as client:
        client.flushall()
    database = create_database(postgres_url.rsplit("/", 1)[0], database_name)
    port, flower_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "JWT_SECRET_KEY": JWT_SECRET,
        "PORT": str(port),
        "TASKFLEET_HOME": str(home),
        "WORKER_CONCURRENCY": str(concurrency),
        "WEB_CONCURRENCY": "1",
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": "ops:flower-test-pass",
        "LOG_JSON": "1",
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    entries = read_procfile(ROOT / "Procfile")
    assert set(entries) == {"release", "web", "worker", "beat", "flower"}
    supervisor = Supervisor(env=env, cwd=ROOT, log_dir=home / "logs")
    try:
        supervisor.run("release", entries["release"])
        for name in ("web", "worker", "beat") + (("flower",) if flower else ()):
            supervisor.start(name, entries[name])
        wait_for_port(port, 30)
        if flower:
            wait_for_port(flower_port, 30)
        flower_url = f"http://127.0.0.1:{flower_port}" if flower else None
        yield f"http://127.0.0.1:{port}/api", home / "logs", flower_url, database
    finally:
        supervisor.stop_all()


@pytest.fixture
def stack(request, tmp_path, postgres_url, real_redis, real_redis_client, token):
    """The Procfile's stack; ``indirect`` parametrisation sets the worker's concurrency."""
    with running_stack(tmp_path, postgres_url, real_redis.url, getattr(request, "param", 50)) as started:
        yield started


def eval_args(text: str) -> list:
    """Flower shows arguments as their repr, e.g. "['<task id>', 0]"."""
    import ast

    return ast.literal_eval(text)


def wait_final(api, headers, task_id, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = requests.get(f"{api}/task/{task_id}", headers=headers, timeout=5).json()
        if task["status"] in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"):
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not final after {timeout_s}s: {task}")


def test_the_procfile_stack_completes_sync_and_callback_tasks(stack, backend, token, real_redis_client):
    api, logs, flower, database = stack
    demo, backend_port = backend
    admin = {"Authorization": f"Bearer {token('root', ('admin',))}"}
    client = {"Authorization": f"Bearer {token('alice')}"}
    server = {
        "id": "b1",
        "name": "b1",
        "apiKey": "never-log-this-key",
        "maxConcurrent": 2,
        "capabilities": ["echo"],
        "endpoints": {
            "predict": f"http://127.0.0.1:{backend_port}/predict",
            "health": f"http://127.0.0.1:{backend_port}/health",
        },
    }
    demo.api_key = "never-log-this-key"
    assert requests.post(f"{api}/servers", json=server, headers=admin, timeout=5).status_code == 201
    ids = []
    for i in range(6):
        body = {"type": "echo", "payload": {"i": i}, "capabilities": ["echo"], "async": i % 2 == 1}
        r = requests.post(f"{api}/task", json=body, headers=client, timeout=5)
        assert r.status_code == 201
        ids.append(r.json()["id"])
    for i, task_id in enumerate(ids):
        task = wait_final(api, client, task_id)
        assert task["status"] == "COMPLETED", task
        assert task["result"] == {"echo": {"i": i}, "server": "test-backend"}
    assert demo.stats()["max_in_flight"] <= 2
    check_flower(flower, ids, real_redis_client)
    check_monitoring(api, admin, ids, database)
    text = "".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    assert "never-log-this-key" not in text and "token=" not in text and JWT_SECRET not in text
    check_transition_log_lines(text, ids)


#: Maintenance jobs Flower may list after the stack idled for a while: none. The tick
#: (beat's one periodic job) and the health checks it starts send no task events; with a
#: Celery job per routine, 5 s of idling listed about 30.
MAX_MAINTENANCE_ENTRIES = 0


def check_flower(flower, ids, redis_client):
    """Flower (basic auth) lists the dispatch jobs by name, with the task id as argument,
    and no maintenance jobs, although the tick runs every second."""
    assert requests.get(f"{flower}/api/tasks", timeout=5).status_code == 401

    def listed():
        return requests.get(f"{flower}/api/tasks", auth=("ops", "flower-test-pass"), timeout=5).json()

    seen = listed()
    dispatches = [t for t in seen.values() if t["name"] == jobs.DISPATCH]
    assert {ids[0], ids[-1]} <= {eval_args(t["args"])[0] for t in dispatches}
    idle_from_ms = time.time_ns() // 1_000_000
    time.sleep(5)  # idle: beat sends five ticks, each runs the 1 s routines
    after = listed()
    maintenance = [t["name"] for t in after.values() if t["name"] not in jobs.ON_DISPATCH_QUEUE]
    assert len(maintenance) <= MAX_MAINTENANCE_ENTRIES, maintenance
    assert after.keys() == seen.keys()  # idling adds no entry at all
    claims = [int(redis_client.get(key) or 0) for key in redis_client.keys("tf:tick:*")]
    assert max(claims) >= idle_from_ms  # the tick ran meanwhile (a claim holds its time)


FLUSHED_TASKS = "SELECT coalesce(sum(created), 0) FROM stats_hourly WHERE scope = 'a'"


def check_monitoring(api, admin, ids, database):
    """The worker is seen, beat flushes the statistics, /metrics counts the tasks."""
    assert requests.get(f"{api}/ready", timeout=5).json() == {
        "ready": True,
        "checks": {"redis": "ok", "database": "ok", "workers": "1 alive"},
    }
    stats = requests.get(f"{api}/stats", headers=admin, timeout=5).json()
    assert (stats["totalTasks"], stats["successfulTasks"], stats["failedTasks"]) == (len(ids), len(ids), 0)
    engine = create_engine(database)
    deadline = time.monotonic() + 30  # beat flushes every 10 s
    flushed = 0
    while time.monotonic() < deadline and flushed < len(ids):
        with engine.connect() as conn:
            flushed = conn.scalar(text(FLUSHED_TASKS))
        time.sleep(0.5)
    engine.dispose()
    assert flushed == len(ids)
    assert requests.get(f"{api}/stats", headers=admin, timeout=5).json() == stats  # same, from the rollups
    metrics = requests.get(f"{api.removesuffix('/api')}/metrics", timeout=5).text
    assert f'taskfleet_task_events_total{{event="created",type="echo"}} {float(len(ids))}' in metrics


def check_transition_log_lines(text, ids):
    """LOG_JSON=1: one JSON line per transition, with task id, attempt and server."""
    import json

    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    moves = [line for line in lines if line["logger"] == "taskfleet.transitions"]
    completed = [m for m in moves if m["message"].split(" (")[0].endswith("-> COMPLETED")]
    assert {m["task_id"] for m in completed} == set(ids)
    assert all(m["attempt"] == 1 and m["server_id"] == "b1" for m in completed)


def test_the_real_stack_routes_by_reported_load_and_fails_an_impostors_health_check(stack, backend, token):
    """Heartbeats over HTTP steer resource-aware selection in the gevent worker; beat's
    health check fails a server whose address answers with another serverId."""
    import threading

    from app.demo_backend import DemoBackend

    api, _logs, _flower, _database = stack
    busy, busy_port = backend
    busy.server_id = "busy"
    idle = DemoBackend("idle", delay_s=0.05, server_id="idle")
    idle_port = free_port()
    idle_server = idle.serve("127.0.0.1", idle_port)
    threading.Thread(target=idle_server.serve_forever, args=(0.05,), daemon=True).start()
    admin = {"Authorization": f"Bearer {token('root', ('admin',))}"}
    client = {"Authorization": f"Bearer {token('alice')}"}
    try:
        for sid, port in (("busy", busy_port), ("idle", idle_port), ("impostor", busy_port)):
            server = {
                "id": sid,
                "name": sid,
                "maxConcurrent": 10,
                "capabilities": ["echo"],
                "endpoints": {
                    "predict": f"http://127.0.0.1:{port}/predict",
                    "health": f"http://127.0.0.1:{port}/health",
                },
            }
            assert requests.post(f"{api}/servers", json=server, headers=admin, timeout=5).status_code == 201
        body = {"algorithm": "resource-aware"}
        assert requests.put(f"{api}/loadbalancer/algorithm", json=body, headers=admin, timeout=5).ok
        beats = {"busy": {"cpu": 0.95, "memory": 0.9}, "idle": {"cpu": 0.1, "memory": 0.2}}
        beats["impostor"] = beats["busy"]
        for sid, beat in beats.items():
            srv = {"Authorization": f"Bearer {token(sid, ('server',))}"}
            r = requests.post(f"{api}/servers/{sid}/heartbeat", json=beat, headers=srv, timeout=5)
            assert r.status_code == 200 and r.json()["metrics"]["reported"]["cpu"] == beat["cpu"]
        ids = []
        for i in range(4):
            task = {"type": "echo", "payload": {"i": i}, "capabilities": ["echo"]}
            ids.append(requests.post(f"{api}/task", json=task, headers=client, timeout=5).json()["id"])
        finished = [wait_final(api, client, task_id) for task_id in ids]
        assert {(t["status"], t["serverId"]) for t in finished} == {("COMPLETED", "idle")}

        deadline = time.monotonic() + 20  # beat checks a new server at once
        metrics = {}
        while time.monotonic() < deadline and metrics.get("lastCheckError") != "server_id_mismatch":
            metrics = requests.get(f"{api}/servers/impostor", headers=admin, timeout=5).json()["metrics"]
            time.sleep(0.2)
        assert metrics["lastCheckError"] == "server_id_mismatch"
        assert requests.get(f"{api}/servers/busy", headers=admin, timeout=5).json()["status"] == "online"
    finally:
        idle_server.shutdown()
        idle_server.server_close()
