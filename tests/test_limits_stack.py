"""Concurrency limits on the Procfile's real stack (gunicorn, a gevent worker, beat,
Redis, Postgres): the backend itself sees a limited type never exceed its limit, while
another type runs beside it unhindered."""

from __future__ import annotations

import time

import requests

from tests.test_backends_stack import fleet, submit  # noqa: F401 - fixtures used by name
from tests.test_stack import stack, wait_final  # noqa: F401


def test_a_static_limit_of_two_is_never_exceeded_as_seen_by_the_backend(fleet):  # noqa: F811
    api, admin, client, add = fleet
    demo = add("shared", delay_s=0.3, maxConcurrent=12)
    r = requests.put(f"{api}/limits/llm", json={"maxConcurrent": 2}, headers=admin, timeout=5)
    assert r.status_code == 200, r.text
    ids = []
    for i in range(20):  # interleaved, so both types are pending at once
        ids.append(submit(api, client, "shared", {"i": i}, type="llm"))
        ids.append(submit(api, client, "shared", {"i": i}, type="ocr"))
    seen_waiting = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = requests.get(f"{api}/limits/llm", headers=admin, timeout=5).json()
        assert view["inFlight"] <= 2, view
        seen_waiting = max(seen_waiting, view["waiting"])
        statuses = [requests.get(f"{api}/task/{t}", headers=client, timeout=5).json()["status"] for t in ids]
        if all(s == "COMPLETED" for s in statuses):
            break
        time.sleep(0.2)
    for task_id in ids:
        assert wait_final(api, client, task_id, timeout_s=5)["status"] == "COMPLETED"
    by_type = demo.stats()["max_in_flight_by_type"]
    assert by_type["llm"] == 2, by_type  # the limit, reached and never exceeded
    assert by_type["ocr"] > 2, by_type  # the other type is not held back
    assert seen_waiting > 0
    final = requests.get(f"{api}/limits", headers=admin, timeout=5).json()["items"]
    assert [(item["type"], item["current"], item["inFlight"], item["waiting"]) for item in final] == [
        ("llm", 2, 0, 0)
    ]
