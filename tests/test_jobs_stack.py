"""Jobs on the Procfile's real stack (gunicorn, a gevent worker, beat, Redis, Postgres):
10,000 tasks accepted in one request and run to COMPLETED, counted live on the way.
About 80 s of dispatching: ``make soak`` runs it (CI too), ``make test`` does not."""

from __future__ import annotations

import time

import pytest
import requests

from tests.test_backends_stack import fleet  # noqa: F401 - the fixture is used by name
from tests.test_stack import stack  # noqa: F401 - the fixture is used by name

JOB_TASKS = 10_000


@pytest.mark.timeout(120)
def test_a_job_whose_tasks_all_fit_runs_them_at_once_with_no_job_failing(stack, fleet):  # noqa: F811
    """60 tasks with room for all: woken at once by the request, all COMPLETED well
    before the orphan sweep (30 s) could start one a lost or refused message left."""
    _api, logs, _flower, _database = stack
    api, _, client, add = fleet
    demo = add("wide", delay_s=0.05, maxConcurrent=100)
    body = {"template": {"type": "echo", "capabilities": ["wide"]}, "items": list(range(60))}
    r = requests.post(f"{api}/jobs", json=body, headers=client, timeout=30)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 20
    while (now := requests.get(f"{api}/jobs/{r.json()['id']}", headers=client, timeout=10).json())[
        "status"
    ] == "RUNNING":
        assert time.monotonic() < deadline, f"job stuck at {now['counts']}"
        time.sleep(0.2)
    assert now["counts"] == {"COMPLETED": 60}
    assert set(demo.stats()["predicted"].values()) == {1}
    worker_log = (logs / "worker.log").read_text()
    assert "raised unexpected" not in worker_log


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_ten_thousand_task_job_runs_to_completed_with_live_counts(fleet):  # noqa: F811
    api, _, client, add = fleet
    demo = add("bulk", delay_s=0.0, maxConcurrent=40)
    body = {
        "name": "bulk",
        "template": {"type": "echo", "capabilities": ["bulk"]},
        "items": list(range(JOB_TASKS)),
    }
    started = time.monotonic()
    r = requests.post(f"{api}/jobs", json=body, headers=client, timeout=60)
    accepted_s = time.monotonic() - started
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["total"] == JOB_TASKS and len(job["taskIds"]) == JOB_TASKS and job["status"] == "RUNNING"
    seen_progress = []
    deadline = time.monotonic() + 240
    while True:
        now = requests.get(f"{api}/jobs/{job['id']}", headers=client, timeout=30).json()
        assert sum(now["counts"].values()) == JOB_TASKS
        seen_progress.append(now["progress"])
        if now["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, f"job stuck at {now['counts']}"
        time.sleep(1)
    assert now["status"] == "COMPLETED" and now["counts"] == {"COMPLETED": JOB_TASKS}, now["counts"]
    assert now["progress"] == 100 and now["finishedAt"] is not None
    # Counts were live: progress was seen between the ends, and never went back.
    assert any(0 < p < 100 for p in seen_progress) and seen_progress == sorted(seen_progress)
    # Every item ran once, with its own payload.
    predicted = demo.stats()["predicted"]
    assert len(predicted) == JOB_TASKS and set(predicted.values()) == {1}
    last = requests.get(f"{api}/task/{job['taskIds'][-1]}", headers=client, timeout=10).json()
    assert last["result"]["echo"] == JOB_TASKS - 1 and last["jobId"] == job["id"]
    print(f"accepted {JOB_TASKS} tasks in {accepted_s:.2f}s; ran in {time.monotonic() - started:.0f}s")
