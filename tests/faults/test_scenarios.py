"""Fault-injection scenarios (``make faults``): break a real stack, check every invariant."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_lib
import requests

from app.core.events import EventId
from app.services.maintenance import RECLAIM_AFTER_S
from tests import sse_client
from tests.faults.conftest import record

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


def test_a_worker_killed_mid_dispatch_loses_no_task(stack):
    stack.start()
    stack.add_backend("b1", capacity=10, delay_s=0.5)
    stack.add_backend("b2", capacity=10, delay_s=0.5)
    ids = stack.submit(300)
    time.sleep(4)  # the worker holds 20 calls in flight and has prefetched the rest
    stack.kill("worker-1")
    killed_at = time.monotonic()
    stack.start_worker()
    recovery = stack.wait_final(ids, timeout_s=240)
    # A slot the killed worker held past its attempt's end (killed between the end and
    # the release) is taken back by reclaim_slots (every 30 s, leases over a minute old).
    figures = stack.check(ids, idle_within_s=RECLAIM_AFTER_S + 45)
    assert figures["statuses"] == {"COMPLETED": 300}
    record(
        "kill -9 worker mid-dispatch",
        {
            **figures,
            "recovery_s": round(time.monotonic() - killed_at, 1),
            "final_after_s": round(recovery, 1),
        },
    )


def test_a_redis_restart_that_loses_all_data_loses_no_task(stack):
    stack.start()
    stack.add_backend("b1", capacity=10, delay_s=0.3)
    ids = stack.submit(300)
    time.sleep(3)
    stack.redis.restart()  # no persistence: queues, hot state, slots, scripts all gone
    restarted_at = time.monotonic()
    recovery = stack.wait_final(ids, timeout_s=240)
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": 300}
    later = stack.submit(20)  # consumers resumed without a restart of the workers
    stack.wait_final(later, timeout_s=60)
    record(
        "redis restart (data lost)",
        {
            **figures,
            "recovery_s": round(time.monotonic() - restarted_at, 1),
            "final_after_s": round(recovery, 1),
        },
    )


def test_script_flush_mid_run_changes_nothing(stack):
    stack.start()
    stack.add_backend("b1", capacity=10, delay_s=0.1)
    ids = stack.submit(300)
    client = redis_lib.Redis.from_url(stack.redis.url)
    for _ in range(10):
        client.script_flush()
        time.sleep(0.5)
    elapsed = stack.wait_final(ids, timeout_s=180)
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": 300}
    record("SCRIPT FLUSH x10", {**figures, "final_after_s": round(elapsed, 1)})


def test_postgres_down_for_20_seconds(stack):
    stack.start()
    stack.add_backend("b1", capacity=10, delay_s=0.3)
    ids = stack.submit(300)
    time.sleep(2)
    stack.postgres.stop()
    time.sleep(1)
    r = stack.client.post(f"{stack.api}/task", json={"type": "echo", "capabilities": ["echo"]}, timeout=30)
    assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
    time.sleep(19)
    stack.postgres.start()
    back_at = time.monotonic()
    stack.wait_final(ids, timeout_s=240)
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": 300}
    record(
        "postgres down 20 s",
        {
            **figures,
            "converged_after_s": round(time.monotonic() - back_at, 1),
            "api_while_down": r.status_code,
        },
    )


def test_backends_that_fail_hang_or_answer_garbage(stack):
    """Three broken backends beside two good ones: attempts that fail are retried on
    another server, the broken ones' circuits open, and nearly every task completes."""
    stack.start()
    stack.add_backend("good-1", capacity=8, delay_s=0.05)
    stack.add_backend("good-2", capacity=8, delay_s=0.05)
    for fault in ("500", "hang", "garbage"):
        # A call may take the task's whole timeout; the hanging server caps its own at 3 s.
        stack.add_backend(f"bad-{fault}", capacity=4, fault=fault, timeoutSeconds=3)
    ids = stack.submit(300, maxRetries=3)
    elapsed = stack.wait_final(ids, timeout_s=300)
    # Calls that timed out on the hanging backend keep their slots until reclaimed
    # (60 s after the timeout, by a job that runs every 30 s).
    figures = stack.check(ids, max_retries=3, idle_within_s=120)
    counts = figures["statuses"]
    assert set(counts) <= {"COMPLETED", "FAILED"} and counts.get("COMPLETED", 0) >= 270, counts
    for fault in ("500", "hang", "garbage"):
        server = requests.get(f"{stack.api}/servers/bad-{fault}", headers=stack.admin, timeout=5).json()
        assert server["metrics"]["failureCount"] >= 1 and server["metrics"]["successCount"] == 0
    record("backend 500s / hangs / garbage", {**figures, "final_after_s": round(elapsed, 1)})


def test_duplicate_and_late_callbacks_change_nothing(stack):
    stack.start()
    stack.add_backend("b1", capacity=10, delay_s=0.2)
    ids = stack.submit(200, payload=lambda i: {"i": i, "duplicate": True, "late": True}, **{"async": True})
    elapsed = stack.wait_final(ids, timeout_s=180)
    time.sleep(2)  # let the late callbacks arrive
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": 200}
    task = requests.get(f"{stack.api}/task/{ids[0]}", headers=stack.client.headers, timeout=5).json()
    assert task["progress"] == 100 and task["result"]["echo"]["i"] == 0
    record("duplicate and late callbacks", {**figures, "final_after_s": round(elapsed, 1)})


def test_two_beat_processes_break_nothing(stack):
    """Two beats run every periodic job twice: deadlines, retries, wake-ups, reconcile."""
    stack.start(beats=2)
    stack.add_backend("good", capacity=5, delay_s=0.2)
    stack.add_backend("silent", capacity=5, fault="silent")  # its tasks time out
    ids = stack.submit(200, maxRetries=2, timeout=10, **{"async": True})
    elapsed = stack.wait_final(ids, timeout_s=300)
    figures = stack.check(ids, max_retries=2)
    counts = figures["statuses"]
    assert set(counts) <= {"COMPLETED", "TIMEOUT"} and counts.get("COMPLETED", 0) >= 180, counts
    record("two beat processes", {**figures, "final_after_s": round(elapsed, 1)})


def test_a_burst_of_ten_thousand_tasks(stack):
    stack.start()
    stack.add_backend("b1", capacity=50, delay_s=0.01)
    stack.add_backend("b2", capacity=50, delay_s=0.01)
    started = time.monotonic()
    ids = stack.submit(10_000, threads=16)
    submitted = time.monotonic() - started
    stack.wait_final(ids, timeout_s=600)
    total = time.monotonic() - started
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": 10_000}
    record(
        "10,000-task burst",
        {
            **figures,
            "submit_s": round(submitted, 1),
            "all_final_s": round(total, 1),
            "tasks_per_s": round(10_000 / total, 1),
        },
    )


def test_a_worker_killed_while_polling_loses_nothing_and_sends_nothing_twice(stack):
    """Poll-mode tasks whose jobs run 4 s: the worker is killed while their polls wait
    in Redis and while poll jobs run; a new worker goes on polling. Each task reached
    its backend once (its job id was known), and every task completes."""
    stack.start()
    demo = stack.add_backend("poller", capacity=40, delay_s=4.0)
    ids = stack.submit(120, mode="poll", pollInterval=1)
    time.sleep(3)
    stack.kill("worker-1")
    killed_at = time.monotonic()
    time.sleep(2)
    stack.start_worker()
    elapsed = stack.wait_final(ids, timeout_s=240)
    figures = stack.check(ids, idle_within_s=30)
    assert figures["statuses"] == {"COMPLETED": 120}
    sent = demo.stats()["predicted"]
    assert sum(sent.values()) == 120 and max(sent.values()) == 1, "a task was sent to its backend twice"
    record(
        "kill -9 worker while polling",
        {
            **figures,
            "polls": demo.stats()["polls"],
            "sent_twice": 0,
            "recovery_s": round(time.monotonic() - killed_at, 1),
            "final_after_s": round(elapsed, 1),
        },
    )


def test_a_worker_killed_while_batches_gather_loses_nothing(stack):
    """A batching server (8 a call, or whatever gathered after 3 s) and a worker killed
    while batches gather: the gathering batches go out from Redis (beat sends them), no
    task is completed twice, and only tasks whose batch was on the wire at the kill
    (the backend's answer unheard) are sent again."""
    stack.start()
    demo = stack.add_backend("batcher", capacity=24, delay_s=1.0, batch={"maxSize": 8, "maxWaitMs": 3000})
    ids = stack.submit(150)
    time.sleep(2)
    stack.kill("worker-1")
    stack.start_worker()
    elapsed = stack.wait_final(ids, timeout_s=240)
    figures = stack.check(ids, idle_within_s=RECLAIM_AFTER_S + 45)
    assert figures["statuses"] == {"COMPLETED": 150}
    stats = demo.stats()
    sent_twice = sum(1 for n in stats["predicted"].values() if n > 1)
    assert max(stats["batches"]) <= 8
    assert sent_twice <= 24, "more tasks sent again than were on the wire at the kill"
    record(
        "kill -9 worker while batches gather",
        {
            **figures,
            "batches": len(stats["batches"]),
            "largest_batch": max(stats["batches"]),
            "sent_twice": sent_twice,
            "final_after_s": round(elapsed, 1),
        },
    )


def test_limited_tasks_survive_a_redis_loss_and_a_killed_worker_without_running_early(stack):
    stack.start()
    demo = stack.add_backend("b1", capacity=12, delay_s=0.3)
    r = requests.put(f"{stack.api}/limits/llm", json={"maxConcurrent": 3}, headers=stack.admin, timeout=10)
    assert r.status_code == 200, r.text
    ids = stack.submit(80, type="llm") + stack.submit(80)
    time.sleep(3)
    stack.redis.restart()  # the limit's copy, its holds and its waiting line are all gone
    restarted_at = time.monotonic()
    time.sleep(6)
    stack.kill("worker-1")
    stack.start_worker()
    recovery = stack.wait_final(ids, timeout_s=300)
    figures = stack.check(ids, idle_within_s=RECLAIM_AFTER_S + 45)
    assert figures["statuses"] == {"COMPLETED": 160}
    by_type = demo.stats()["max_in_flight_by_type"]
    assert by_type["llm"] <= 3, f"the limit of 3 was exceeded: {by_type}"
    assert by_type["echo"] > 3, by_type
    record(
        "limited tasks: redis restart, then kill -9 worker",
        {
            **figures,
            "llm_max_in_flight": by_type["llm"],
            "recovery_s": round(time.monotonic() - restarted_at, 1),
            "final_after_s": round(recovery, 1),
        },
    )


def test_clients_holding_event_streams_across_a_redis_loss_all_get_their_result(stack):
    """Clients follow their tasks' event streams (reconnecting with Last-Event-ID when a
    connection drops, as an EventSource does) while Redis restarts and loses everything:
    each still gets its task's result, and no event twice."""
    stack.start()
    stack.add_backend("b1", capacity=20, delay_s=4.0)
    ids = stack.submit(40, payload=lambda i: {"tokens": [f"{i}-{n}" for n in range(8)]}, stream=True)
    headers = dict(stack.client.headers)
    received: dict[str, list[sse_client.Received]] = {task_id: [] for task_id in ids}
    reconnections: dict[str, int] = {}

    def follow(task_id: str) -> None:
        _, reconnections[task_id] = sse_client.follow(
            f"{stack.api}/task/{task_id}/events", headers, deadline_s=240, into=received[task_id]
        )

    readers = [threading.Thread(target=follow, args=(task_id,), daemon=True) for task_id in ids]
    for reader in readers:
        reader.start()
    time.sleep(3)
    stack.redis.restart()
    restarted_at = time.monotonic()
    for reader in readers:
        reader.join(timeout=250)
    assert not any(reader.is_alive() for reader in readers)
    for task_id, got in received.items():
        assert got[-1].event == "result" and got[-1].data["status"] == "COMPLETED", (task_id, got[-3:])
        assert got[-1].data["result"]["text"] == "".join(f"{ids.index(task_id)}-{n}" for n in range(8))
        event_ids = [e.id for e in got]
        assert len(event_ids) == len(set(event_ids)), event_ids
        assert event_ids == sorted(event_ids, key=EventId.parse)
        statuses = [e.data["status"] for e in got if e.event == "status"]
        assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED"
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": 40}
    record(
        "event streams across a redis restart (data lost)",
        {
            **figures,
            "streams": len(ids),
            "reconnections": sum(reconnections.values()),
            "all_results_after_s": round(time.monotonic() - restarted_at, 1),
        },
    )
