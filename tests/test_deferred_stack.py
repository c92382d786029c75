"""Delayed tasks and dependencies on the Procfile's real stack (gunicorn, a gevent worker,
beat, Redis, Postgres), with single POST /api/task submits: runAt and delay start on
time and never early, cancel works while SCHEDULED, a three-step chain runs in order,
and a failure travels two levels."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import requests

from tests.test_backends_stack import fleet, submit  # noqa: F401 - the fixture is used by name
from tests.test_stack import stack, wait_final  # noqa: F401 - the fixture is used by name


def ms(text: str) -> float:
    return datetime.fromisoformat(text).timestamp() * 1000


def get(api, headers, task_id):
    return requests.get(f"{api}/task/{task_id}", headers=headers, timeout=5).json()


def started_ms(api, headers, task_id) -> float:
    attempts = requests.get(f"{api}/task/{task_id}/attempts", headers=headers, timeout=5).json()["items"]
    return ms(attempts[0]["startedAt"])


def test_delayed_and_dependent_tasks_end_to_end(fleet):  # noqa: F811
    api, _, client, add = fleet
    demo = add("deferred", delay_s=0.05, maxConcurrent=4)

    # runAt and delay: SCHEDULED, then run within about a second of the time, not before.
    run_at = datetime.now(UTC) + timedelta(seconds=4)
    at = submit(api, client, "deferred", {"at": 1}, runAt=run_at.isoformat())
    delayed = submit(api, client, "deferred", {"delay": 1}, delay=3)
    doomed = submit(api, client, "deferred", {"cancelled": 1}, delay=3)
    for task_id in (at, delayed, doomed):
        assert get(api, client, task_id)["status"] == "SCHEDULED"
    r = requests.post(f"{api}/task/{doomed}/cancel", headers=client, timeout=5)
    assert r.json()["status"] == "CANCELLED"
    for task_id in (at, delayed):
        task = wait_final(api, client, task_id, timeout_s=20)
        assert task["status"] == "COMPLETED", task
        late_ms = started_ms(api, client, task_id) - ms(task["runAt"])
        assert 0 <= late_ms < 2500, f"started {late_ms:.0f} ms after its runAt"

    # A <- B <- C, each submitted alone: WAITING until the one before completes.
    a = submit(api, client, "deferred", {"sleep": 1})
    b = submit(api, client, "deferred", {"step": "b"}, dependsOn=[a])
    c = submit(api, client, "deferred", {"step": "c"}, dependsOn=[b])
    assert get(api, client, c)["status"] == "WAITING"
    chain = [wait_final(api, client, task_id, timeout_s=20) for task_id in (a, b, c)]
    assert [task["status"] for task in chain] == ["COMPLETED"] * 3
    for before, after in zip(chain, chain[1:], strict=False):
        assert ms(before["finishedAt"]) <= started_ms(api, client, after["id"])
    assert chain[2]["dependsOn"] == [b]

    # A failure travels two levels, and the dependents never reach the backend.
    bad = submit(api, client, "deferred", {"fail": 400})
    d1 = submit(api, client, "deferred", {"never": 1}, dependsOn=[bad])
    d2 = submit(api, client, "deferred", {"never": 2}, dependsOn=[d1])
    assert wait_final(api, client, bad)["status"] == "FAILED"
    first, second = wait_final(api, client, d1), wait_final(api, client, d2)
    assert first["status"] == second["status"] == "FAILED"
    assert first["error"] == f"upstream_failed: dependency {bad} ended FAILED"
    assert second["error"] == f"upstream_failed: dependency {d1} ended FAILED"
    time.sleep(1)  # anything wrongly dispatched would have reached the backend by now
    sent = demo.stats()["predicted"]
    assert doomed not in sent and d1 not in sent and d2 not in sent
    assert set(sent) == {at, delayed, a, b, c, bad}
