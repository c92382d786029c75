"""Fault scenarios where a store goes away while clients keep calling (``make faults``):
Redis paused with SIGSTOP for 20 s (a network partition as clients and workers see it:
connections open, nothing answers) and Postgres restarted mid-run. Clients submit and
poll throughout and get 503s or slow answers, never a 500; afterwards every invariant
of ``FaultStack.check`` holds, slot drift included, for the tasks submitted before and
for every task accepted during the fault."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from app.core.slot_ledger import RECLAIM_AFTER_S
from app.store.models import TaskAttemptRow
from tests.faults.conftest import FaultStack, record

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

#: Seconds an answer may take before it counts as slow.
SLOW_S = 5


class Traffic:
    """Clients that keep submitting tasks and reading them back while a fault lasts:
    every answer's status, how many were slow, and the tasks accepted (201)."""

    def __init__(self, stack: FaultStack, known: list[str], threads: int = 4) -> None:
        self.stack = stack
        self.known = list(known)
        self.accepted: list[str] = []
        self.codes: Counter[str] = Counter()
        self.slow = 0
        self.slowest_s = 0.0
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(threads)
        ]

    def start(self) -> None:
        self._running.set()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._running.clear()
        for thread in self._threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in self._threads), "a client is stuck"

    def _client(self, n: int) -> None:
        session = requests.Session()
        session.headers.update(self.stack.client.headers)
        i = 0
        while self._running.is_set():
            i += 1
            if i % 2:
                body = {"type": "echo", "capabilities": ["echo"], "payload": {"client": n, "i": i}}
                self._call(session, "POST", f"{self.stack.api}/task", json=body)
            else:
                task_id = self.known[(n * 7919 + i) % len(self.known)]
                self._call(session, "GET", f"{self.stack.api}/task/{task_id}")
            time.sleep(0.2)

    def _call(self, session: requests.Session, method: str, url: str, **kwargs: Any) -> None:
        started = time.monotonic()
        try:
            r = session.request(method, url, timeout=90, **kwargs)
            code = str(r.status_code)
        except requests.RequestException as exc:
            r, code = None, type(exc).__name__
        took = time.monotonic() - started
        with self._lock:
            self.codes[code] += 1
            self.slow += took > SLOW_S
            self.slowest_s = max(self.slowest_s, took)
            if r is not None and method == "POST" and r.status_code == 201:
                self.accepted.append(r.json()["id"])

    def figures(self) -> dict[str, Any]:
        return {
            "client_answers": dict(sorted(self.codes.items())),
            "client_slow_answers": self.slow,
            "client_slowest_s": round(self.slowest_s, 1),
            "accepted_during_fault": len(self.accepted),
        }

    def assert_no_server_error(self) -> None:
        """503 (with Retry-After) is the answer for a store away; any other 5xx, or no
        answer at all, is a failure."""
        bad = {code: n for code, n in self.codes.items() if code != "503" and code[0] not in "234"}
        assert not bad, f"answers other than 2xx/3xx/4xx/503 while the store was away: {bad}"


def _sent_twice(stack: FaultStack) -> int:
    """Tasks whose predict call reached the backends more than once."""
    sent: Counter[str] = Counter()
    for demo, _, _ in stack.backends:
        sent.update(demo.stats()["predicted"])
    return sum(1 for n in sent.values() if n > 1)


def _timed_out(stack: FaultStack, ids: list[str]) -> int:
    """Attempts of these tasks that ended as TIMEOUT."""
    with stack.db.session() as session:
        return session.scalar(
            select(func.count())
            .select_from(TaskAttemptRow)
            .where(TaskAttemptRow.task_id.in_(ids), TaskAttemptRow.outcome == "TIMEOUT")
        )


def test_redis_paused_for_20_seconds_loses_nothing_and_answers_no_500(stack):
    stack.start()
    # 400 calls of 1 s on 20 slots: the pause finds calls in flight and tasks waiting.
    stack.add_backend("b1", capacity=10, delay_s=1.0)
    stack.add_backend("b2", capacity=10, delay_s=1.0)
    ids = stack.submit(400)
    traffic = Traffic(stack, ids)
    traffic.start()
    time.sleep(3)
    pid = stack.redis.process.pid
    os.kill(pid, signal.SIGSTOP)  # connections stay open; nothing answers
    try:
        time.sleep(20)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    time.sleep(5)
    traffic.stop()
    every = ids + traffic.accepted
    elapsed = stack.wait_final(every, timeout_s=300)
    # A call whose end could not be recorded while Redis was away is taken over by the
    # lost-worker recovery; a slot left behind is repaired after the grace.
    figures = stack.check(every, idle_within_s=RECLAIM_AFTER_S + 45)
    assert figures["statuses"] == {"COMPLETED": len(every)}
    traffic.assert_no_server_error()
    record(
        "redis paused (SIGSTOP) 20 s",
        {
            **figures,
            **traffic.figures(),
            "sent_twice": _sent_twice(stack),
            "converged_after_s": round(time.monotonic() - resumed_at, 1),
            "final_after_s": round(elapsed, 1),
        },
    )


def test_postgres_restarted_mid_run_loses_nothing_and_answers_no_500(stack):
    stack.start()
    # Calls of 1 s on 20 slots: the restart finds attempts starting and ending, and
    # tasks waiting. (Sync calls only: see the report of issue 17's drift branch for a
    # callback attempt whose start reached Redis but not the database; it is never
    # sent and waits out its whole timeout.)
    stack.add_backend("b1", capacity=10, delay_s=1.0)
    stack.add_backend("b2", capacity=10, delay_s=1.0)
    ids = stack.submit(300)
    traffic = Traffic(stack, ids)
    traffic.start()
    time.sleep(3)
    stack.postgres.stop()  # pg_ctl stop -m fast: every open connection is cut
    time.sleep(5)
    stack.postgres.start()
    back_at = time.monotonic()
    time.sleep(5)
    traffic.stop()
    every = ids + traffic.accepted
    elapsed = stack.wait_final(every, timeout_s=300)
    figures = stack.check(every, idle_within_s=RECLAIM_AFTER_S + 45)
    assert figures["statuses"] == {"COMPLETED": len(every)}
    traffic.assert_no_server_error()
    record(
        "postgres restarted mid-run",
        {
            **figures,
            "retried_after_timeout": _timed_out(stack, every),
            **traffic.figures(),
            "sent_twice": _sent_twice(stack),
            "converged_after_s": round(time.monotonic() - back_at, 1),
            "final_after_s": round(elapsed, 1),
        },
    )
