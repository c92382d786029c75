"""A job's event stream from the database: its tasks' statuses in row order, job events
with its counts, resume after an id, the end when the job ends."""

from __future__ import annotations

import threading

from app.core.events import START, EventId
from app.core.task import TaskSpec
from app.services import job_events, jobs, outcomes
from tests.services.helpers import register_backend, start_attempt


def _render(job):
    return {"status": job.status.value, "counts": job.tally.counts, "progress": job.progress}


def _job(ctx, n=3):
    job, _ = jobs.submit(
        ctx, "alice", "j", [TaskSpec(type="echo", capabilities=("echo",), payload=i) for i in range(n)]
    )
    ctx.queue.take()
    return job


def _finish(ctx, task_id):
    start_attempt(ctx, task_id)
    outcomes.callback(ctx, task_id, 1, {"status": "PROCESSING", "progress": 50})  # left out
    outcomes.complete(ctx, task_id, 1, "ok")


def test_a_finished_jobs_stream_replays_its_tasks_statuses_and_ends_with_its_counts(ctx, backend):
    register_backend(ctx, backend[1])
    job = _job(ctx)
    for task_id in job.task_ids:
        _finish(ctx, task_id)
    got = list(job_events.follow(ctx, job.id, START, _render, poll_s=0.01))
    statuses = [(e.data["taskId"], e.data["status"]) for e in got if e.name == "status"]
    assert len(statuses) == 9
    for task_id in job.task_ids:
        assert [s for t, s in statuses if t == task_id] == ["PENDING", "PROCESSING", "COMPLETED"]
    assert got[-1].name == "job" and got[-1].data == {
        "status": "COMPLETED",
        "counts": {"COMPLETED": 3},
        "progress": 100,
    }
    assert [e.id for e in got] == sorted(e.id for e in got) and len({e.id for e in got}) == len(got)
    resumed = list(job_events.follow(ctx, job.id, got[4].id, _render, poll_s=0.01))
    assert [e.id for e in resumed if e.name == "status"] == [e.id for e in got[5:] if e.name == "status"]
    assert list(job_events.follow(ctx, job.id, got[-1].id, _render, poll_s=0.01)) == []


def test_a_running_jobs_stream_follows_it_to_its_end(ctx, backend):
    register_backend(ctx, backend[1])
    job = _job(ctx, 2)
    got = []
    reader = threading.Thread(
        target=lambda: got.extend(
            job_events.follow(ctx, job.id, START, _render, keepalive_s=0.05, poll_s=0.02)
        )
    )
    reader.start()
    for task_id in job.task_ids:
        _finish(ctx, task_id)
    reader.join(timeout=10)
    assert not reader.is_alive()
    jobs_seen = [e.data["status"] for e in got if e is not None and e.name == "job"]
    assert jobs_seen[0] == "RUNNING" and jobs_seen[-1] == "COMPLETED"
    assert len([e for e in got if e is not None and e.name == "status"]) == 6
    assert all(isinstance(e.id, EventId) for e in got if e is not None)


def test_the_job_stream_endpoint_ends_for_a_finished_job_and_hides_others_jobs(client, ctx, auth, backend):
    register_backend(ctx, backend[1])
    r = client.post("/api/jobs", json={"tasks": [{"type": "echo", "capabilities": ["echo"]}]}, headers=auth())
    job = r.get_json()
    _finish(ctx, job["taskIds"][0])
    ctx.queue.take()
    body = client.get(f"/api/jobs/{job['id']}/events", headers=auth())
    assert body.status_code == 200 and body.mimetype == "text/event-stream"
    text = body.data.decode()
    assert text.count("event: status") == 3 and '"status":"COMPLETED"' in text and '"taskIds"' not in text
    assert client.get(f"/api/jobs/{job['id']}/events", headers=auth("bob")).status_code == 404
    bad = client.get(f"/api/jobs/{job['id']}/events", headers={**auth(), "Last-Event-ID": "nope"})
    assert bad.status_code == 422
