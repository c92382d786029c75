"""GET /api/task/{id}/transitions: a task's audit trail and attempts, from the records."""

from __future__ import annotations

from tests.services.helpers import drain, register_backend


def test_a_completed_task_shows_its_transitions_and_its_attempt(ctx, client, auth, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    task_id = client.post(
        "/api/task", json={"type": "echo", "capabilities": ["echo"]}, headers=auth()
    ).get_json()["id"]
    drain(ctx)
    answer = client.get(f"/api/task/{task_id}/transitions", headers=auth())
    assert answer.status_code == 200
    history = answer.get_json()
    moves = [(t["version"], t["fromStatus"], t["toStatus"], t["attempt"]) for t in history["transitions"]]
    assert moves == [
        (1, None, "PENDING", 0),
        (2, "PENDING", "PROCESSING", 1),
        (3, "PROCESSING", "COMPLETED", 1),
    ]
    assert all(t["at"].endswith("Z") for t in history["transitions"])
    [attempt] = history["attempts"]
    assert (attempt["attempt"], attempt["serverId"], attempt["outcome"], attempt["error"]) == (
        1,
        "s1",
        "COMPLETED",
        None,
    )
    assert attempt["startedAt"] <= attempt["endedAt"]


def test_each_failed_attempt_keeps_its_server_outcome_and_error(ctx, client, auth, backend):
    _, port = backend
    register_backend(ctx, port, "s1")
    body = {"type": "echo", "capabilities": ["echo"], "payload": {"fail": 500}, "maxRetries": 1}
    task_id = client.post("/api/task", json=body, headers=auth()).get_json()["id"]
    drain(ctx)
    history = client.get(f"/api/task/{task_id}/transitions", headers=auth()).get_json()
    assert [a["attempt"] for a in history["attempts"]] == [1, 2]
    assert {a["outcome"] for a in history["attempts"]} == {"FAILED"}
    assert all(a["error"] and a["endedAt"] for a in history["attempts"])
    assert [t["toStatus"] for t in history["transitions"]] == [
        "PENDING",
        "PROCESSING",
        "PENDING",
        "PROCESSING",
        "FAILED",
    ]


def test_only_the_owner_or_an_admin_reads_a_tasks_history(client, auth):
    task_id = client.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()["id"]
    assert client.get(f"/api/task/{task_id}/transitions").status_code == 401
    assert client.get(f"/api/task/{task_id}/transitions", headers=auth("bob")).status_code == 404
    assert client.get(f"/api/task/{task_id}/transitions", headers=auth("root", ("admin",))).status_code == 200
    assert client.get(f"/api/task/{task_id}/transitions", headers=auth("b1", ("server",))).status_code == 403
    assert client.get("/api/task/no-such-task/transitions", headers=auth()).status_code == 404
