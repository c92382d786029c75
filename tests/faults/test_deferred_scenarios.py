"""Fault scenarios for delayed tasks and dependencies (``make faults``): SCHEDULED and
WAITING tasks live through a Redis loss and a worker killed with -9, with nothing lost
and nothing run early (``FaultStack.check`` holds every task to its runAt and its
dependencies' ends). Part of the workload is one job whose items wait for
siblings by key and start later."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.services.maintenance import RECLAIM_AFTER_S
from tests.faults.conftest import FaultStack, record

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

#: Chains of three (A <- B <- C) and scheduled tasks, spread over ``DELAYS_S``.
CHAINS = 40
SCHEDULED_PER_DELAY = 12
DELAYS_S = range(5, 15)
#: The job: chains of three by sibling keys (their last step delayed too), delayed items
#: and items that start at once.
JOB_CHAINS, JOB_DELAYED, JOB_NOW = 20, 40, 40


def _post(stack: FaultStack, body: dict[str, Any]) -> str:
    body = {"type": "echo", "capabilities": ["echo"], **body}
    for _ in range(50):
        r = stack.client.post(f"{stack.api}/task", json=body, timeout=10)
        if r.status_code == 201:
            return r.json()["id"]
        time.sleep(0.2)
    raise AssertionError(f"submission kept failing: {r.status_code} {r.text}")


def _post_all(stack: FaultStack, bodies: list[dict[str, Any]]) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda body: _post(stack, body), bodies))


def submit_workload(stack: FaultStack) -> dict[str, list[str]]:
    """Scheduled tasks due 5-14 s from now, chains of three, and plain tasks beside them."""
    scheduled = _post_all(
        stack,
        [{"payload": {"d": d, "i": i}, "delay": d} for d in DELAYS_S for i in range(SCHEDULED_PER_DELAY)],
    )
    heads = _post_all(stack, [{"payload": {"chain": i, "step": "a"}} for i in range(CHAINS)])
    middles = _post_all(
        stack, [{"payload": {"chain": i, "step": "b"}, "dependsOn": [a]} for i, a in enumerate(heads)]
    )
    tails = _post_all(
        stack, [{"payload": {"chain": i, "step": "c"}, "dependsOn": [b]} for i, b in enumerate(middles)]
    )
    plain = stack.submit(100)
    return {
        "scheduled": scheduled,
        "chains": heads + middles + tails,
        "plain": plain,
        "job": _post_job(stack),
    }


def _post_job(stack: FaultStack) -> list[str]:
    """One job: chains of three named by sibling keys, delayed items, and items that
    start at once and wait in their line."""
    items: list[dict[str, Any]] = []
    for i in range(JOB_CHAINS):
        items.append({"key": f"a{i}", "payload": {"job_chain": i, "step": "a"}})
        items.append({"key": f"b{i}", "payload": {"job_chain": i, "step": "b"}, "dependsOn": [f"a{i}"]})
        items.append({"payload": {"job_chain": i, "step": "c"}, "dependsOn": [f"b{i}"], "delay": 3})
    items += [{"payload": {"job_item": i}, "delay": 2 + i % 10} for i in range(JOB_DELAYED)]
    items += [{"payload": {"job_now": i}} for i in range(JOB_NOW)]
    body = {"tasks": [{"type": "echo", "capabilities": ["echo"], **item} for item in items]}
    r = stack.client.post(
        f"{stack.api}/jobs", json=body, headers={"Idempotency-Key": "fault-job"}, timeout=30
    )
    assert r.status_code == 201, r.text
    return r.json()["taskIds"]


def test_scheduled_and_waiting_tasks_survive_a_redis_loss(stack):
    stack.start()
    stack.add_backend("b1", capacity=6, delay_s=0.4)
    groups = submit_workload(stack)
    ids = [task_id for group in groups.values() for task_id in group]
    time.sleep(2)
    waiting = sum(1 for status in stack.statuses(ids).values() if status in ("SCHEDULED", "WAITING"))
    stack.redis.restart()  # the start schedule, hot state and queues are gone
    restarted_at = time.monotonic()
    recovery = stack.wait_final(ids, timeout_s=240)
    figures = stack.check(ids)
    assert figures["statuses"] == {"COMPLETED": len(ids)}
    record(
        "redis restart with scheduled and waiting tasks",
        {
            **figures,
            "deferred_at_loss": waiting,
            "recovery_s": round(time.monotonic() - restarted_at, 1),
            "final_after_s": round(recovery, 1),
        },
    )


def test_scheduled_and_waiting_tasks_survive_a_worker_killed_mid_run(stack):
    stack.start()
    stack.add_backend("b1", capacity=6, delay_s=0.4)
    groups = submit_workload(stack)
    ids = [task_id for group in groups.values() for task_id in group]
    time.sleep(6)  # starts are due, chains are releasing, calls are in flight
    stack.kill("worker-1")
    killed_at = time.monotonic()
    time.sleep(2)
    stack.start_worker()
    recovery = stack.wait_final(ids, timeout_s=240)
    figures = stack.check(ids, idle_within_s=RECLAIM_AFTER_S + 45)
    assert figures["statuses"] == {"COMPLETED": len(ids)}
    record(
        "kill -9 worker with scheduled and waiting tasks",
        {
            **figures,
            "recovery_s": round(time.monotonic() - killed_at, 1),
            "final_after_s": round(recovery, 1),
        },
    )
