"""The cap on distinct waiting profiles through the API: 429 with Retry-After for a
task or a job (as a whole, nothing stored) that no server can serve and that would add
a profile past ``MAX_WAITING_PROFILES``."""

from dataclasses import replace

from app.core.states import TaskStatus
from app.store import tasks_repo
from tests.services.helpers import drain


def test_a_new_unserved_profile_past_the_cap_is_429_with_retry_after(client, auth, ctx):
    ctx.settings = replace(ctx.settings, max_waiting_profiles=2)
    for cap in ("x1", "x2"):
        r = client.post("/api/task", json={"type": "echo", "capabilities": [cap]}, headers=auth("mallory"))
        assert r.status_code == 201, r.get_json()
    r = client.post("/api/task", json={"type": "echo", "capabilities": ["x3"]}, headers=auth("mallory"))
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.get_json()["error"] == "too_many_waiting_profiles"
    assert r.get_json()["details"] == {"maxWaitingProfiles": 2}
    job = {"tasks": [{"type": "echo", "capabilities": ["x1"]}, {"type": "echo", "capabilities": ["x4"]}]}
    r = client.post("/api/jobs", json=job, headers=auth("mallory"))
    assert r.status_code == 429 and "Retry-After" in r.headers
    with ctx.db.session() as session:
        assert sum(tasks_repo.count_by_status(session, list(TaskStatus)).values()) == 2


def test_a_cancelled_profile_makes_room_again(client, auth, ctx):
    ctx.settings = replace(ctx.settings, max_waiting_profiles=1)
    first = client.post("/api/task", json={"type": "echo", "capabilities": ["x1"]}, headers=auth()).get_json()
    drain(ctx)
    refused = client.post("/api/task", json={"type": "echo", "capabilities": ["x2"]}, headers=auth())
    assert refused.status_code == 429
    assert client.post(f"/api/task/{first['id']}/cancel", headers=auth()).status_code == 200
    again = client.post("/api/task", json={"type": "echo", "capabilities": ["x2"]}, headers=auth())
    assert again.status_code == 201
