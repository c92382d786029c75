"""The sync client on the real stack: submit, wait, watch, list, cancel, retry."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from taskfleet_client import Client, Conflict, Task, WaitTimeout


@pytest.fixture
def alice(fleet):
    with Client(fleet.url, fleet.alice) as client:
        yield client


def test_a_submitted_task_is_waited_for_until_completed(alice):
    task = alice.submit("echo", {"hello": "fleet"}, capabilities=["echo"], priority=8, max_retries=1)
    assert isinstance(task, Task) and task.status == task["status"] == "PENDING"
    assert (task.priority, task.max_retries, task["maxRetries"]) == (8, 1, 1)
    done = alice.wait(task.id, timeout=30)
    assert done.ok and done.done and done.status == "COMPLETED"
    assert done.result == {"echo": {"hello": "fleet"}, "server": "fleet-backend"}
    assert done.server_id == done["serverId"] == "echo-1"
    assert isinstance(done.created_at, datetime) and done.finished_at >= done.created_at
    assert done.raw["result"] == done.result and dict(done) == done.raw


def test_the_same_idempotency_key_returns_the_first_task(alice):
    key = f"job-{uuid.uuid4()}"
    first = alice.submit("echo", {"n": 1}, capabilities=["echo"], idempotency_key=key)
    again = alice.submit("echo", {"n": 2}, capabilities=["echo"], idempotency_key=key)
    assert again.id == first.id and again.payload == {"n": 1}


def test_watch_reports_progress_of_a_callback_task_then_its_end(alice):
    task = alice.submit("echo", {"hi": 1}, capabilities=["echo"], mode="callback")
    seen = [(t.status, t.progress) for t in alice.watch(task.id, timeout=30)]
    assert seen[-1][0] == "COMPLETED"
    assert len(seen) == len(set(seen))  # only changes are reported
    assert set(seen) <= {("PENDING", 0), ("PROCESSING", 0), ("PROCESSING", 50), ("COMPLETED", 100)}


def test_wait_gives_up_at_its_timeout_with_the_last_state(alice):
    task = alice.submit("echo", capabilities=["no-such-capability"])
    with pytest.raises(WaitTimeout) as caught:
        alice.wait(task.id, timeout=0.5)
    assert caught.value.task.status == "PENDING" and isinstance(caught.value, TimeoutError)
    alice.cancel(task.id)


def test_list_pages_through_the_tasks_newest_first(alice, fleet):
    kind = f"page-{uuid.uuid4().hex[:8]}"
    ids = [alice.submit(kind, {"i": i}, capabilities=["no-such-capability"]).id for i in range(5)]
    first = alice.list(type=kind, limit=2)
    assert [t.id for t in first.tasks] == ids[::-1][:2] and first.next_cursor
    second = alice.list(type=kind, limit=2, cursor=first.next_cursor)
    assert [t.id for t in second.tasks] == ids[::-1][2:4]
    assert [t.id for t in alice.iter_tasks(type=kind, page_size=2)] == ids[::-1]
    assert [t.id for t in alice.iter_tasks(status="PENDING", type=kind)] == ids[::-1]
    with Client(fleet.url, fleet.bob) as bob:  # another client sees none of them
        assert bob.list(type=kind).tasks == []
    for task_id in ids:
        alice.cancel(task_id)


def test_cancel_then_cancel_again_is_a_conflict_with_the_current_status(alice):
    task = alice.submit("echo", capabilities=["no-such-capability"])
    assert alice.cancel(task.id).status == "CANCELLED"
    with pytest.raises(Conflict) as caught:
        alice.cancel(task.id)
    assert caught.value.status == 409 and caught.value.error == "conflict"
    assert caught.value.details == {"currentStatus": "CANCELLED"}
    assert str(caught.value) == f"{caught.value.message} (409)" and task.id in caught.value.message


def test_a_failed_task_is_retried_with_a_fresh_budget(alice):
    task = alice.submit("echo", {"fail": 500}, capabilities=["echo"], max_retries=0)
    failed = alice.wait(task.id, timeout=30)
    assert failed.status == "FAILED" and not failed.ok and failed.error
    again = alice.retry(task.id)
    assert again.id == task.id and again.status in ("PENDING", "PROCESSING", "FAILED")
    assert alice.wait(task.id, timeout=30).attempts == 2
    with pytest.raises(Conflict):
        alice.retry(alice.submit("echo", capabilities=["echo"]).id)  # not FAILED: 409


def test_the_attempts_of_a_task_come_back_typed(alice):
    task = alice.submit("echo", {"fail": 500}, capabilities=["echo"], max_retries=1)
    assert alice.wait(task.id, timeout=60).status == "FAILED"
    attempts = alice.attempts(task.id)
    assert [a.attempt for a in attempts] == [1, 2]
    assert all(a.outcome == "FAILED" and a.error and a.duration_ms is not None for a in attempts)
    assert attempts[0]["serverId"] == attempts[0].server_id
