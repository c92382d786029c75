"""Dispatch through a real HTTP backend, on fakeredis+SQLite and real Redis+Postgres."""

import pytest

from app.core.errors import Conflict
from app.core.states import TaskMode, TaskStatus
from app.services import control, dispatch, outcomes, state_sync, waiting
from app.store import keys, tasks_repo
from tests.services.helpers import drain, register_backend, start_attempt, submit_task


def status(ctx, task_id):
    return state_sync.load(ctx, task_id)


def db_row(ctx, task_id):
    with ctx.db.session() as s:
        return tasks_repo.get_row(s, task_id)


def test_a_sync_task_completes_with_the_backends_answer_and_frees_its_slot(ctx, backend):
    demo, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"x": 1})
    assert drain(ctx) == ["completed"]
    state = status(ctx, task_id)
    assert state.status is TaskStatus.COMPLETED
    assert state.result == {"echo": {"x": 1}, "server": "test-backend"}
    assert ctx.fleet.in_flight("s1") == 0
    row = db_row(ctx, task_id)
    assert (row.status, row.version, row.attempts, row.result) == (
        "COMPLETED",
        state.version,
        1,
        state.result,
    )
    with ctx.db.session() as s:
        assert [t.to_status for t in tasks_repo.transitions_of(s, task_id)] == [
            "PENDING",
            "PROCESSING",
            "COMPLETED",
        ]
        (attempt,) = tasks_repo.attempts_of(s, task_id)
        assert (attempt.server_id, attempt.outcome) == ("s1", "COMPLETED")
    assert demo.stats()["calls"] == 1


def test_a_failing_backend_is_retried_until_the_budget_is_spent(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"fail": 500}, max_retries=2)
    assert drain(ctx) == ["failed", "failed", "failed"]
    state = status(ctx, task_id)
    assert state.status is TaskStatus.FAILED
    assert state.attempt == 3
    assert "HTTP 500" in state.error and "attempt 3 of 3" in state.error
    with ctx.db.session() as s:
        assert [a.outcome for a in tasks_repo.attempts_of(s, task_id)] == ["FAILED"] * 3
    assert ctx.fleet.in_flight("s1") == 0


def test_a_non_json_answer_is_a_malformed_failure(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"garbage": True}, max_retries=0)
    drain(ctx)
    assert "not JSON" in status(ctx, task_id).error


def test_a_4xx_answer_is_not_retried(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"fail": 400}, max_retries=3)
    assert drain(ctx) == ["failed"]
    assert status(ctx, task_id).status is TaskStatus.FAILED
    assert "not retryable" in status(ctx, task_id).error


def test_busy_answers_requeue_without_spending_the_budget_and_rest_the_server(ctx, backend):
    from app.core.clock import ManualClock
    from app.services import fleet_health

    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"fail": 503}, max_retries=0)
    assert drain(ctx) == ["busy"]  # the only server is resting: the task waits in line
    state = status(ctx, task_id)
    assert state.status is TaskStatus.PENDING and state.retry_base == 1
    assert waiting.which_parked(ctx, [state]) == [True]
    assert ctx.fleet.in_flight("s1") == 0
    assert ctx.fleet.state("s1").failures == 0
    ctx.clock = ManualClock(ctx.now_ms() + 1_500)  # past the default busy period
    assert fleet_health.wake_servers(ctx) == 1  # and its wake-up starts the waiting task
    assert drain(ctx) == ["busy"]
    assert status(ctx, task_id).retry_base == 2


def test_a_task_waits_when_no_server_has_room_and_starts_when_a_slot_frees(ctx, backend):
    _, port = backend
    register_backend(ctx, port, max_concurrent=1)
    first = submit_task(ctx, {"n": 1}, priority=1)
    ctx.fleet.reserve("blocker", 1, ("echo",))
    low = submit_task(ctx, {"n": 2}, priority=1)
    high = submit_task(ctx, {"n": 3}, priority=9)
    assert drain(ctx) == ["waiting", "waiting", "waiting"]
    ctx.fleet.release("s1", "blocker", 1, ctx.now_ms())
    assert waiting.wake(ctx, 1, "s1") == 1
    drain(ctx)  # the high-priority task runs first, then its release wakes the next
    order = [t for t in (first, low, high) if status(ctx, t).status is TaskStatus.COMPLETED]
    assert set(order) == {first, low, high}
    with ctx.db.session() as s:
        started = {t: tasks_repo.attempts_of(s, t)[0].started_at for t in (first, low, high)}
    assert started[high] <= started[first] <= started[low]


def test_a_stale_or_duplicate_dispatch_job_does_nothing(ctx, backend):
    demo, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    jobs = ctx.queue.take()
    assert dispatch.dispatch(ctx, task_id, 0).value == "completed"
    assert dispatch.dispatch(ctx, *jobs[0][:2]).value == "stale"
    assert demo.stats()["calls"] == 1 and ctx.fleet.in_flight("s1") == 0


def test_cancelling_a_running_task_keeps_its_slot_until_the_backend_answers(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    start_attempt(ctx, task_id)
    assert control.cancel(ctx, task_id, "alice").status is TaskStatus.CANCELLED
    assert ctx.fleet.in_flight("s1") == 1  # the backend is still working on it
    with pytest.raises(Conflict):
        outcomes.complete(ctx, task_id, 1, {"late": True})  # its answer is ignored ...
    assert ctx.fleet.in_flight("s1") == 0  # ... and frees the slot
    assert status(ctx, task_id).status is TaskStatus.CANCELLED
    assert db_row(ctx, task_id).status == "CANCELLED"
    assert ctx.fleet.state("s1").successes == 0


def test_a_cancelled_callback_task_frees_its_slot_when_the_backend_reports(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, mode=TaskMode.CALLBACK)
    start_attempt(ctx, task_id)
    control.cancel(ctx, task_id, "alice")
    with pytest.raises(Conflict):
        outcomes.callback(ctx, task_id, 1, {"status": "COMPLETED", "result": 1})
    assert ctx.fleet.in_flight("s1") == 0


def test_a_predict_timeout_keeps_the_slot_until_it_is_reclaimed(ctx, backend):
    from app.core.clock import ManualClock
    from app.services import maintenance

    demo, port = backend
    register_backend(ctx, port, timeout_s=1)  # the server's own cap on a call
    ctx.clock = ManualClock(ctx.now_ms())
    task_id = submit_task(ctx, {"sleep": 2}, max_retries=0)
    assert drain(ctx) == ["failed"]
    assert "timed out" in status(ctx, task_id).error
    assert ctx.fleet.in_flight("s1") == 1  # the backend is still sleeping on it
    assert ctx.fleet.state("s1").failures == 1
    ctx.clock.advance(maintenance.RECLAIM_AFTER_S)
    assert maintenance.reclaim_slots(ctx) == 1
    assert ctx.fleet.in_flight("s1") == 0 and ctx.fleet.state("s1").failures == 1


def test_a_manual_retry_starts_a_fresh_budget_and_keeps_the_history(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx, {"fail": 500}, max_retries=1)
    drain(ctx)
    assert status(ctx, task_id).status is TaskStatus.FAILED
    with pytest.raises(Conflict):
        control.cancel(ctx, task_id, "alice")
    control.retry(ctx, task_id, "alice")
    drain(ctx)
    state = status(ctx, task_id)
    assert (state.status, state.attempt, state.retry_base) == (TaskStatus.FAILED, 4, 2)
    with ctx.db.session() as s:
        assert [a.attempt for a in tasks_repo.attempts_of(s, task_id)] == [1, 2, 3, 4]


def test_hot_state_lost_from_redis_is_rebuilt_from_the_database(ctx, backend):
    _, port = backend
    register_backend(ctx, port)
    task_id = submit_task(ctx)
    ctx.redis.delete(keys.task(task_id))
    assert drain(ctx) == ["completed"]
    assert db_row(ctx, task_id).status == "COMPLETED"


def test_the_predict_call_carries_the_seed_protocol_and_api_key(ctx):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            seen["auth"] = self.headers["Authorization"]
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from app.core.servers import ServerConfig
        from app.services import servers

        servers.register(
            ctx,
            ServerConfig(
                name="k",
                api_key="sekret-key",
                capabilities=("echo",),
                endpoints={
                    "predict": f"http://127.0.0.1:{server.server_port}/p",
                    "health": f"http://127.0.0.1:{server.server_port}/h",
                },
            ),
            "k",
        )
        task_id = submit_task(ctx, {"q": 1}, priority=7)
        drain(ctx)
    finally:
        server.shutdown()
        server.server_close()
    assert seen["auth"] == "Bearer sekret-key"
    body = seen["body"]
    assert body["task_id"] == task_id
    assert body["request"] == {
        "type": "echo",
        "payload": {"q": 1},
        "mode": "sync",
        "async": False,
        "priority": 7,
    }
    assert body["callback_url"].startswith(f"{ctx.settings.public_url}/api/task/{task_id}?token=")


def test_at_info_a_task_that_runs_once_logs_its_end_only_and_its_start_at_debug(ctx, backend, caplog):
    import logging

    register_backend(ctx, backend[1])
    task_id = submit_task(ctx, {"x": 1})
    with caplog.at_level(logging.DEBUG, logger="taskfleet.transitions"):
        assert drain(ctx) == ["completed"]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "taskfleet.transitions"]
    assert lines == [
        (logging.DEBUG, f"task {task_id} PENDING -> PROCESSING (attempt 1, server s1)"),
        (logging.INFO, f"task {task_id} PROCESSING -> COMPLETED (attempt 1, server s1)"),
    ]
