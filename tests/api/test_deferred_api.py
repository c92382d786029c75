"""runAt, delay and dependsOn as POST /api/task takes them: what is refused with 422, and
what a task looks like while it waits."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from app.core.deferral import MAX_DELAY_S, MAX_DEPENDENCIES


def post(client, headers, **body):
    return client.post("/api/task", json={"type": "echo", "capabilities": ["echo"], **body}, headers=headers)


def test_run_at_with_a_timezone_schedules_the_task_and_it_can_be_cancelled(client, auth):
    r = post(client, auth(), runAt="2040-01-01T10:00:00+02:00")
    assert r.status_code == 201, r.get_json()
    task = r.get_json()
    assert task["status"] == "SCHEDULED" and task["runAt"] == "2040-01-01T08:00:00.000Z"
    assert client.get(f"/api/task/{task['id']}", headers=auth()).get_json()["status"] == "SCHEDULED"
    r = client.post(f"/api/task/{task['id']}/cancel", headers=auth())
    assert r.status_code == 200 and r.get_json()["status"] == "CANCELLED"


def test_delay_counts_from_now_and_zero_starts_at_once(client, auth):
    before_ms = time.time() * 1000
    task = post(client, auth(), delay=90).get_json()
    run_at = datetime.fromisoformat(task["runAt"]).timestamp() * 1000
    assert task["status"] == "SCHEDULED" and before_ms + 89_000 < run_at < time.time() * 1000 + 91_000
    assert post(client, auth(), delay=0).get_json()["status"] == "PENDING"
    assert post(client, auth(), delay=0.5).get_json()["status"] == "SCHEDULED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"runAt": "2040-01-01T10:00:00"}, "runAt"),  # no timezone
        ({"runAt": "next tuesday"}, "runAt"),
        ({"runAt": "2040-01-01T10:00:00Z", "delay": 5}, "runAt"),
        ({"delay": MAX_DELAY_S + 1}, "delay"),
        ({"delay": -1}, "delay"),
        ({"delay": "5"}, "delay"),
        ({"delay": True}, "delay"),
        ({"dependsOn": "abc"}, "dependsOn"),
        ({"dependsOn": [""]}, "dependsOn"),
        ({"dependsOn": [f"t{i}" for i in range(MAX_DEPENDENCIES + 1)]}, "dependsOn"),
    ],
)
def test_a_bad_start_time_or_dependency_list_is_refused(client, auth, body, field):
    r = post(client, auth(), **body)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["details"]["json"]


def test_depends_on_waits_for_readable_tasks_and_names_the_bad_ones(client, auth):
    mine = post(client, auth(), capabilities=["nobody-has-this"]).get_json()["id"]
    bobs = post(client, auth("bob")).get_json()["id"]
    waiting = post(client, auth(), dependsOn=[mine, mine]).get_json()
    assert waiting["status"] == "WAITING" and waiting["dependsOn"] == [mine]

    r = post(client, auth(), dependsOn=[mine, bobs, "ghost"])
    assert r.status_code == 422
    assert r.get_json()["details"] == {"dependsOn": {bobs: "no such task", "ghost": "no such task"}}
    assert post(client, auth("root", ("admin",)), dependsOn=[bobs]).status_code == 201

    client.post(f"/api/task/{mine}/cancel", headers=auth())
    failed = client.get(f"/api/task/{waiting['id']}", headers=auth()).get_json()
    assert failed["status"] == "FAILED" and failed["error"].startswith("upstream_failed: ")
    assert mine in failed["error"]
    r = post(client, auth(), dependsOn=[mine])
    assert r.status_code == 422 and r.get_json()["details"] == {"dependsOn": {mine: "already CANCELLED"}}


def test_the_openapi_document_describes_the_new_fields(client):
    spec = client.get("/openapi.json").get_json()
    fields = spec["components"]["schemas"]["TaskIn"]["properties"]
    assert fields["runAt"]["format"] == "date-time" and "timezone" in fields["runAt"]["description"]
    assert fields["delay"]["maximum"] == MAX_DELAY_S
    assert fields["dependsOn"]["maxItems"] == MAX_DEPENDENCIES
    assert "upstream_failed" in fields["dependsOn"]["description"]
