"""Jobs through the API: accepted all or nothing, read with live counts, listed, cancelled."""

import pytest

from app import jobs
from app.core.ids import ordered_ids
from app.core.states import TaskStatus
from app.services import maintenance, state_sync
from app.store import jobs_repo, tasks_repo
from app.store.models import JobRow, TaskRow, TaskTransitionRow
from tests.api.test_tasks_api import live, register  # noqa: F401 (a fixture)
from tests.services.helpers import drain, register_backend


def post_job(client, auth, body, **headers):
    return client.post("/api/jobs", json=body, headers={**auth(), **headers})


def test_a_job_stores_every_task_in_item_order_and_lines_them_up(client, auth, ctx):
    body = {
        "name": "nightly",
        "tasks": [{"type": "echo", "payload": {"i": i}, "key": f"k{i}"} for i in range(5)],
    }
    r = post_job(client, auth, body)
    assert r.status_code == 201, r.get_json()
    job = r.get_json()
    assert job["name"] == "nightly" and job["status"] == "RUNNING" and job["total"] == 5
    assert job["counts"] == {"PENDING": 5} and job["progress"] == 0 and job["finishedAt"] is None
    ids = job["taskIds"]
    assert len(ids) == 5 and ids == sorted(ids)
    for i, task_id in enumerate(ids):
        task = client.get(f"/api/task/{task_id}", headers=auth()).get_json()
        assert task["payload"] == {"i": i} and task["jobId"] == job["id"] and task["key"] == f"k{i}"
        assert task["status"] == "PENDING"
    # No server yet: the tasks wait in their line, none got a dispatch message.
    assert ctx.queue.take() == []
    assert ctx.waiting.total() == 5
    assert client.get(f"/api/jobs/{job['id']}", headers=auth()).get_json()["taskIds"] == ids


def test_a_fan_out_job_makes_one_task_per_item(client, auth):
    body = {
        "template": {"type": "embed", "priority": 7, "metadata": {"run": 1}},
        "items": ["a", {"b": 2}, None],
    }
    job = post_job(client, auth, body).get_json()
    tasks = [client.get(f"/api/task/{t}", headers=auth()).get_json() for t in job["taskIds"]]
    assert [t["payload"] for t in tasks] == ["a", {"b": 2}, None]
    assert {t["type"] for t in tasks} == {"embed"} and {t["priority"] for t in tasks} == {7}
    assert all(t["metadata"] == {"run": 1} for t in tasks)


@pytest.mark.parametrize(
    "body",
    [
        {"tasks": []},
        {"tasks": [{"type": "echo"}], "items": [1]},
        {"template": {"type": "echo"}},
        {"items": [1]},
        {"template": {"type": "echo", "payload": 1}, "items": [1]},
        {"tasks": [{"type": "echo"}] * 10_001},
        {"tasks": [{"type": "echo"}], "surprise": 1},
    ],
)
def test_a_malformed_job_is_422_and_stores_nothing(client, auth, ctx, body):
    r = post_job(client, auth, body)
    assert r.status_code == 422, r.get_json()
    with ctx.db.session() as s:
        assert s.query(JobRow).count() == 0 and s.query(TaskRow).count() == 0


def test_one_bad_item_refuses_the_whole_job_naming_each_bad_index(client, auth, ctx):
    tasks = [{"type": "echo"}, {"type": ""}, {"type": "echo", "priority": 11}, {"type": "echo"}]
    r = post_job(client, auth, {"tasks": tasks})
    assert r.status_code == 422
    details = r.get_json()["details"]["json"]["tasks"]
    assert set(details) == {"1", "2"} and "type" in details["1"] and "priority" in details["2"]
    with ctx.db.session() as s:
        assert s.query(JobRow).count() == 0 and s.query(TaskRow).count() == 0


def test_duplicate_item_keys_are_422(client, auth, ctx):
    r = post_job(client, auth, {"tasks": [{"type": "echo", "key": "a"}, {"type": "echo", "key": "a"}]})
    assert r.status_code == 422
    assert set(r.get_json()["details"]["json"]["tasks"]) == {"1"}
    with ctx.db.session() as s:
        assert s.query(TaskRow).count() == 0


def test_idempotency_key_returns_the_first_job(client, auth, ctx):
    body = {"tasks": [{"type": "echo"}, {"type": "echo"}]}
    first = post_job(client, auth, body, **{"Idempotency-Key": "job-1"})
    again = post_job(client, auth, body, **{"Idempotency-Key": "job-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["taskIds"] == first.get_json()["taskIds"]
    with ctx.db.session() as s:
        assert s.query(TaskRow).count() == 2


def test_another_owners_job_is_404_and_admins_see_it(client, auth):
    job = post_job(client, auth, {"tasks": [{"type": "echo"}]}).get_json()
    for path in (f"/api/jobs/{job['id']}", f"/api/jobs/{job['id']}/tasks"):
        assert client.get(path, headers=auth("mallory")).status_code == 404
        assert client.get(path, headers=auth("root", ("admin",))).status_code == 200
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=auth("mallory")).status_code == 404
    assert client.get("/api/jobs/nope", headers=auth()).status_code == 404


def test_jobs_are_listed_newest_first_in_pages_of_ones_own(client, auth, clock):
    made = []
    for _ in range(3):
        made.append(post_job(client, auth, {"tasks": [{"type": "echo"}]}).get_json()["id"])
        clock.advance(1000)
    post_job(client, lambda: auth("bob"), {"tasks": [{"type": "echo"}]})
    page = client.get("/api/jobs?limit=2", headers=auth()).get_json()
    assert [j["id"] for j in page["items"]] == made[::-1][:2] and "taskIds" not in page["items"][0]
    rest = client.get(f"/api/jobs?limit=2&cursor={page['nextCursor']}", headers=auth()).get_json()
    assert [j["id"] for j in rest["items"]] == [made[0]] and rest["nextCursor"] is None


def test_job_tasks_are_paged_in_item_order_and_filtered_by_status(client, auth, ctx):
    job = post_job(client, auth, {"tasks": [{"type": "echo", "payload": i} for i in range(7)]}).get_json()
    first = client.get(f"/api/jobs/{job['id']}/tasks?limit=4", headers=auth()).get_json()
    second = client.get(f"/api/jobs/{job['id']}/tasks?limit=4&cursor={first['nextCursor']}", headers=auth())
    payloads = [t["payload"] for t in first["items"] + second.get_json()["items"]]
    assert payloads == list(range(7)) and second.get_json()["nextCursor"] is None
    client.post(f"/api/task/{job['taskIds'][2]}/cancel", headers=auth())
    cancelled = client.get(f"/api/jobs/{job['id']}/tasks?status=CANCELLED", headers=auth()).get_json()
    assert [t["id"] for t in cancelled["items"]] == [job["taskIds"][2]]


def test_a_job_runs_to_completed_with_live_counts(live, ctx, auth, backend):  # noqa: F811
    _, port = backend
    register(live, auth, port, max_concurrent=2)
    job = live.post(
        "/api/jobs", json={"tasks": [{"type": "echo", "capabilities": ["echo"]}] * 6}, headers=auth()
    )
    job = job.get_json()
    # The request lines the tasks up and asks a worker to wake what the slots take.
    assert ctx.queue.take() == [] and ctx.queue.later == [(jobs.WAKE_WAITING_NOW, [], 0)]
    assert maintenance.wake_for_free_slots(ctx) == 2 and ctx.waiting.total() == 4
    drain(ctx, rounds=50)
    done = live.get(f"/api/jobs/{job['id']}", headers=auth()).get_json()
    assert done["counts"] == {"COMPLETED": 6} and done["status"] == "COMPLETED" and done["progress"] == 100
    assert done["finishedAt"] is not None


def test_a_job_with_a_failed_task_ends_failed(client, auth, ctx):
    job = post_job(client, auth, {"tasks": [{"type": "echo"}, {"type": "echo"}]}).get_json()
    client.post(f"/api/task/{job['taskIds'][0]}/cancel", headers=auth())
    assert client.get(f"/api/jobs/{job['id']}", headers=auth()).get_json()["status"] == "RUNNING"
    client.post(f"/api/task/{job['taskIds'][1]}/cancel", headers=auth())
    ended = client.get(f"/api/jobs/{job['id']}", headers=auth()).get_json()
    assert ended["status"] == "FAILED" and ended["progress"] == 100 and ended["counts"] == {"CANCELLED": 2}


def test_cancelling_a_job_cancels_every_unfinished_task(client, auth, ctx):
    job = post_job(client, auth, {"tasks": [{"type": "echo"}] * 4}).get_json()
    r = client.post(f"/api/jobs/{job['id']}/cancel", headers=auth())
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "CANCELLED" and body["counts"] == {"CANCELLED": 4} and body["finishedAt"]
    assert drain(ctx) == []
    # Again: still cancelled, nothing more to do.
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=auth()).get_json()["status"] == "CANCELLED"


def test_ordered_ids_sort_in_item_order_and_are_uuid7():
    ids = ordered_ids(1_700_000_000_000, 10_000)
    assert ids == sorted(ids) and len(set(ids)) == 10_000
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)


def test_job_tallies_read_counts_in_one_query(ctx, client, auth):
    a = post_job(client, auth, {"tasks": [{"type": "echo"}] * 2}).get_json()["id"]
    b = post_job(client, auth, {"tasks": [{"type": "echo"}] * 3}).get_json()["id"]
    with ctx.db.session() as s:
        tallies = jobs_repo.tallies(s, [a, b, "none"])
    assert tallies[a].counts == {"PENDING": 2} and tallies[b].counts == {"PENDING": 3}
    assert tallies["none"].counts == {} and tallies[a].unfinished == 2


def test_cancelling_a_job_moves_waiting_tasks_together_and_the_rest_one_by_one(client, auth, ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    job = post_job(client, auth, {"tasks": [{"type": "echo", "capabilities": ["echo"]}] * 5}).get_json()
    ids = job["taskIds"]
    assert maintenance.wake_for_free_slots(ctx) == 1
    woken = ctx.queue.take()
    assert [task_id for task_id, _, _ in woken] == [ids[0]]
    # The first holds the one slot (PROCESSING, not called); another finished already.
    ctx.waiting.take(ctx.fleet.pool_of_server("s1") or "", 5)
    assert ctx.fleet.reserve(ids[0], 1, ("echo",), now_ms=ctx.now_ms()) == "s1"
    state_sync.apply(
        ctx,
        ids[0],
        [TaskStatus.PENDING],
        TaskStatus.PROCESSING,
        expect_attempt=0,
        attempt=1,
        server_id="s1",
        started_ms=ctx.now_ms(),
    )
    client.post(f"/api/task/{ids[4]}/cancel", headers=auth())
    body = client.post(f"/api/jobs/{job['id']}/cancel", headers=auth()).get_json()
    assert body["counts"] == {"CANCELLED": 5} and body["status"] == "CANCELLED"
    for task_id in ids:
        hot = ctx.tasks.get(task_id)
        assert hot.status is TaskStatus.CANCELLED and hot.finished_ms is not None
        with ctx.db.session() as s:
            row = tasks_repo.get_row(s, task_id)
            assert row.status == "CANCELLED" and row.version == hot.version
            steps = [t.to_status for t in tasks_repo.transitions_of(s, task_id)]
        assert steps[-1] == "CANCELLED" and steps.count("CANCELLED") == 1
    assert ctx.tasks.unsynced(100) == []
    with ctx.db.session() as s:
        attempt = tasks_repo.attempts_of(s, ids[0])[0]
        assert attempt.outcome == "CANCELLED"
        assert s.query(TaskTransitionRow).filter_by(to_status="CANCELLED").count() == 5


def test_job_items_wait_for_siblings_by_key_and_for_existing_tasks_by_id(client, auth, ctx):
    done = client.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()["id"]
    client.post(f"/api/task/{done}/cancel", headers=auth())  # final, but not completed
    running = client.post("/api/task", json={"type": "echo"}, headers=auth()).get_json()["id"]
    body = {
        "tasks": [
            {"type": "echo", "key": "a"},
            {"type": "echo", "key": "b", "dependsOn": ["a", running]},
            {"type": "echo", "key": "c", "dependsOn": ["b"], "delay": 60},
            {"type": "echo", "delay": 60},
        ]
    }
    job = post_job(client, auth, body).get_json()
    assert job["counts"] == {"PENDING": 1, "WAITING": 2, "SCHEDULED": 1}
    a, b, c, _ = (client.get(f"/api/task/{t}", headers=auth()).get_json() for t in job["taskIds"])
    assert b["dependsOn"] == [a["id"], running] and c["dependsOn"] == [b["id"]] and c["runAt"]
    # A dependency that ended without completing is refused, naming the item.
    r = post_job(client, auth, {"tasks": [{"type": "echo"}, {"type": "echo", "dependsOn": [done]}]})
    assert r.status_code == 422
    assert r.get_json()["details"]["json"]["tasks"] == {"1": {"dependsOn": {done: "already CANCELLED"}}}


def test_unknown_or_foreign_dependencies_and_cycles_refuse_the_job(client, auth, ctx):
    theirs = client.post("/api/task", json={"type": "echo"}, headers=auth("bob")).get_json()["id"]
    body = {
        "tasks": [
            {"type": "echo", "key": "a", "dependsOn": ["c"]},
            {"type": "echo", "key": "b", "dependsOn": ["a"]},
            {"type": "echo", "key": "c", "dependsOn": ["b"]},
            {"type": "echo", "key": "d", "dependsOn": ["nope"]},
            {"type": "echo", "dependsOn": [theirs]},
            {"type": "echo", "key": "f"},
        ]
    }
    r = post_job(client, auth, body)
    assert r.status_code == 422
    bad = r.get_json()["details"]["json"]["tasks"]
    assert set(bad) == {"0", "1", "2", "3", "4"}
    assert "cycle" in bad["0"]["dependsOn"][0]
    assert bad["3"]["dependsOn"] == {"nope": "no such task"} and bad["4"]["dependsOn"] == {
        theirs: "no such task"
    }
    with ctx.db.session() as s:
        assert s.query(JobRow).count() == 0 and s.query(TaskRow).count() == 1
    # An admin may wait for anyone's task.
    admin_job = client.post(
        "/api/jobs",
        json={"tasks": [{"type": "echo", "dependsOn": [theirs]}]},
        headers=auth("root", ("admin",)),
    )
    assert admin_job.status_code == 201


def test_an_item_that_fails_ends_its_dependents_in_the_job_as_upstream_failed(client, auth, ctx):
    body = {
        "tasks": [
            {"type": "echo", "key": "a"},
            {"type": "echo", "key": "b", "dependsOn": ["a"]},
            {"type": "echo", "key": "c", "dependsOn": ["b"]},
        ]
    }
    job = post_job(client, auth, body).get_json()
    client.post(f"/api/task/{job['taskIds'][0]}/cancel", headers=auth())
    ended = client.get(f"/api/jobs/{job['id']}", headers=auth()).get_json()
    assert ended["status"] == "FAILED" and ended["counts"] == {"CANCELLED": 1, "FAILED": 2}
    c = client.get(f"/api/task/{job['taskIds'][2]}", headers=auth()).get_json()
    assert "upstream_failed" in c["error"] and job["taskIds"][1] in c["error"]
