"""Races on real Redis and real Postgres: one winner per transition, one task per
Idempotency-Key, and never more in flight than a server's maxConcurrent."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import create_app
from app.core.errors import Conflict
from app.core.states import FINAL_STATUSES, TaskStatus
from app.demo_backend import DemoBackend
from app.devstack import free_port
from app.services import control, dispatch, outcomes, waiting
from app.store import tasks_repo
from tests.services.helpers import register_backend, start_attempt, submit_task


def test_fifty_threads_racing_callbacks_against_cancels_leave_one_winner(real_ctx, backend):
    ctx = real_ctx
    _, port = backend
    register_backend(ctx, port, max_concurrent=50)
    for round_ in range(5):
        task_id = submit_task(ctx)
        start_attempt(ctx, task_id)
        barrier = threading.Barrier(50)

        def act(i, task_id=task_id, barrier=barrier):
            barrier.wait()
            try:
                if i % 2:
                    return ("cancel", control.cancel(ctx, task_id, "alice").status)
                return (
                    "callback",
                    outcomes.callback(ctx, task_id, 1, {"status": "COMPLETED", "result": {"by": i}}).status,
                )
            except Conflict:
                return None

        with ThreadPoolExecutor(50) as pool:
            results = [r for r in pool.map(act, range(50)) if r is not None]
        hot = ctx.tasks.get(task_id)
        with ctx.db.session() as s:
            row = tasks_repo.get_row(s, task_id)
            transitions = [t.to_status for t in tasks_repo.transitions_of(s, task_id)]
        assert hot.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED), round_
        assert transitions == ["PENDING", "PROCESSING", hot.status.value]
        assert (row.status, row.version) == (hot.status.value, hot.version) == (hot.status.value, 3)
        winners = {kind for kind, _ in results}
        assert len(winners) == 1  # a duplicate of the winning callback may repeat it; no other kind wins
        assert ctx.fleet.in_flight("s1") == 0
        assert ctx.fleet.leases("s1") == []


def test_one_idempotency_key_used_concurrently_yields_one_task(real_ctx, auth):
    app = create_app(context=real_ctx)
    headers = {**auth(), "Idempotency-Key": "same-key"}
    barrier = threading.Barrier(20)

    def post(_):
        client = app.test_client()
        barrier.wait()
        r = client.post("/api/task", json={"type": "echo"}, headers=headers)
        return r.status_code, r.get_json()["id"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(post, range(20)))
    assert len({task_id for _, task_id in results}) == 1
    assert sorted(code for code, _ in results).count(201) == 1
    assert len(real_ctx.queue.take()) == 1
    with real_ctx.db.session() as s:
        rows, _ = tasks_repo.list_tasks(s, "alice", None, None, 100, None)
    assert len(rows) == 1


@pytest.fixture
def ten_backends():
    backends, servers = [], []
    for i in range(10):
        demo = DemoBackend(f"b{i}", delay_s=0.02)
        port = free_port()
        server = demo.serve("127.0.0.1", port)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        backends.append((demo, port))
        servers.append(server)
    yield backends
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("algorithm", ["weighted-round-robin", "p2c-ewma"])
def test_sixty_four_dispatchers_never_exceed_capacity_and_free_every_slot(real_ctx, ten_backends, algorithm):
    """64 threads dispatch 400 tasks over 10 servers of capacity 3 through real HTTP:
    no backend ever sees more than 3 calls at once, and every slot is free at the end."""
    from app.core.balancing import Algorithm

    ctx = real_ctx
    for demo, port in ten_backends:
        register_backend(ctx, port, server_id=demo.name, max_concurrent=3)
    ctx.fleet.set_algorithm(Algorithm(algorithm), ctx.now_ms())
    task_ids = [submit_task(ctx, {"i": i}) for i in range(400)]
    stop = time.monotonic() + 90
    peak = {"redis": 0}

    def worker(_):
        while time.monotonic() < stop:
            job = _take_one(ctx.queue)
            if job is not None:
                dispatch.dispatch(ctx, job[0], job[1])
                peak["redis"] = max(peak["redis"], max(ctx.fleet.in_flight(d.name) for d, _ in ten_backends))
            elif all(ctx.tasks.get(t).status in FINAL_STATUSES for t in task_ids):
                return
            else:
                waiting.wake_for_free_slots(ctx)  # what the beat safety net does
                time.sleep(0.005)

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(worker, range(64)))
    assert {ctx.tasks.get(t).status for t in task_ids} == {TaskStatus.COMPLETED}
    assert peak["redis"] <= 3
    for demo, _ in ten_backends:
        assert demo.stats()["max_in_flight"] <= 3
        assert ctx.fleet.in_flight(demo.name) == 0
    assert sum(demo.stats()["calls"] for demo, _ in ten_backends) == 400
    assert ctx.fleet.free_slots() == 30


def _take_one(queue):
    with queue.lock:
        return queue.jobs.pop(0) if queue.jobs else None
