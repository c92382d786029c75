"""/api/ready for load balancers and /api/status for operators."""

from __future__ import annotations

from tests.services.helpers import drain, register_backend, submit_task


def test_ready_needs_redis_the_database_and_a_live_worker(ctx, client):
    response = client.get("/api/ready")
    assert response.status_code == 503
    assert response.get_json() == {
        "ready": False,
        "checks": {"redis": "ok", "database": "ok", "workers": "0 alive"},
    }
    ctx.workers.beat("celery@w1", ctx.now_ms())
    response = client.get("/api/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"]["workers"] == "1 alive"
    ctx.workers.beat("celery@w2", ctx.now_ms() - 31_000)  # silent too long: not counted
    assert client.get("/api/ready").get_json()["checks"]["workers"] == "1 alive"


def test_status_shows_queues_load_by_type_slots_and_rate(ctx, client, auth, backend):
    _, port = backend
    register_backend(ctx, port, "s1", max_concurrent=4)
    register_backend(ctx, port, "s2", max_concurrent=6, capabilities=("echo", "gpu"))
    for _ in range(3):
        submit_task(ctx, {"n": 1})
    drain(ctx)
    submit_task(ctx, capabilities=("tpu",))  # no server: waits
    later = submit_task(ctx, run_at_ms=ctx.now_ms() + 60_000)  # SCHEDULED
    submit_task(ctx, depends_on=(later,))  # WAITING
    drain(ctx)
    ctx.queue.enqueue("not-run-yet", 0)  # a job still in the queue
    ctx.workers.beat("celery@w1", ctx.now_ms())

    assert client.get("/api/status", headers=auth()).status_code == 403
    status = client.get("/api/status", headers=auth("root", ("admin",))).get_json()
    assert status["redis"] == status["database"] == "ok"
    assert status["workers"] == ["celery@w1"]
    assert status["byType"] == [{"type": "echo", "scheduled": 1, "waiting": 1, "pending": 1, "running": 0}]
    assert (status["slotsInUse"], status["slotCapacity"]) == (0, 10)
    assert status["waitingForSlot"] == 1
    assert status["finishedLastMinute"] == 3
    assert status["processingRate"] == 0.05
    assert set(status["queues"]) == {"dispatch", "maintenance"}


def test_alerts_lists_what_the_last_check_left_firing_to_admins(ctx, client, auth, backend):
    from app.services import alerts

    admin = auth("root", ("admin",))
    assert client.get("/api/alerts", headers=auth()).status_code == 403
    assert client.get("/api/alerts", headers=admin).get_json() == {"alerts": []}
    submit_task(ctx, capabilities=("gpu",))
    drain(ctx)  # parked: nobody offers "gpu"
    alerts.check(ctx)
    [alert] = client.get("/api/alerts", headers=admin).get_json()["alerts"]
    assert alert["alert"] == "no_server:gpu|"
    assert "no healthy server" in alert["message"] and alert["since"].endswith("Z")
    _, port = backend
    register_backend(ctx, port, "g1", capabilities=("gpu",))
    alerts.check(ctx)
    assert client.get("/api/alerts", headers=admin).get_json() == {"alerts": []}
